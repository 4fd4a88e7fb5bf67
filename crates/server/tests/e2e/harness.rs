//! Runs the real `tokenwarden` binary: CLI commands and `serve` on 127.0.0.1:0 with a fresh
//! SQLite database per test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tokenwarden");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch directory holding one test's database; removed on drop.
pub struct TempDb {
    pub dir: PathBuf,
    /// A database URL other than the SQLite file in `dir` (PostgreSQL tests).
    pub url_override: Option<String>,
}

impl TempDb {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tokenwarden-e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            dir,
            url_override: None,
        }
    }
    pub fn with_url(url: String) -> Self {
        let mut db = Self::new();
        db.url_override = Some(url);
        db
    }
    pub fn path(&self) -> PathBuf {
        self.dir.join("tokenwarden.db")
    }
    pub fn url(&self) -> String {
        self.url_override
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.path().display()))
    }

    /// Runs a CLI command against this database.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, "")
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .args(args)
            .env("TOKENWARDEN_DATABASE_URL", self.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a CLI command that must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// A confidential client; returns (id, secret).
    pub fn client(&self, id: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["client", "create", "--client-id", id];
        if !extra.contains(&"--name") {
            args.extend_from_slice(&["--name", id]);
        }
        args.extend_from_slice(extra);
        let v = self.json(&args);
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    pub fn start(&self, extra: &[&str]) -> ServerProcess {
        ServerProcess::start(&self.url(), extra)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `tokenwarden serve`.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    pub fn start(database_url: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("TOKENWARDEN_DATABASE_URL", database_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("server did not start: {:?}", lines.lock().unwrap())
            });
        Self {
            child,
            base,
            stderr: lines,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for loopback.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The server's `/metrics` text.
pub async fn metrics_text(server: &ServerProcess) -> String {
    http()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// POSTs a form with Basic client authentication.
pub async fn post_form(
    url: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    http()
        .post(url)
        .basic_auth(enc(id), Some(enc(secret)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// application/x-www-form-urlencoded encoding of one component.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

/// Reads the SQLite database directly (after the server wrote it), to assert stored state.
pub async fn db_scalar(path: &Path, sql: &str) -> i64 {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Row};
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let row = sqlx::query(sql).fetch_one(&mut conn).await.unwrap();
    row.try_get::<i64, _>(0).unwrap()
}
