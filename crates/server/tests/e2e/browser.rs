//! The whole loop in a real browser (Debian's headless Chromium via chromedriver, W3C WebDriver):
//! authorize URL → sign in → approve → redirect with code and state → exchange with the PKCE
//! verifier → refresh → /account → "Revoke access" → the refresh token gets `invalid_grant` and
//! the access token introspects inactive.
//!
//! Needs a chromedriver: `scripts/test` installs Chromium and chromedriver, starts chromedriver on
//! loopback and sets `CHROMEDRIVER_URL`. Screenshots of each page land in
//! `target/browser-screenshots/`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;
use crate::web::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct WebDriver {
    http: reqwest::Client,
    base: String,
}

impl WebDriver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }
}

struct Browser {
    wd: WebDriver,
    session: String,
    shots: std::path::PathBuf,
}

impl Browser {
    async fn start(driver: &str) -> Self {
        let wd = WebDriver {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: driver.trim_end_matches('/').to_owned(),
        };
        let profile =
            std::env::temp_dir().join(format!("tokenwarden-chromium-{}", std::process::id()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=412,915", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = wd.call(reqwest::Method::POST, "/session", Some(caps)).await;
        let session = v["sessionId"].as_str().unwrap().to_owned();
        let shots =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../browser-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Self { wd, session, shots }
    }
    async fn post(&self, path: &str, body: Value) -> Value {
        self.wd
            .call(
                reqwest::Method::POST,
                &format!("/session/{}{path}", self.session),
                Some(body),
            )
            .await
    }
    async fn get(&self, path: &str) -> Value {
        self.wd
            .call(
                reqwest::Method::GET,
                &format!("/session/{}{path}", self.session),
                None,
            )
            .await
    }
    async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }
    async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_owned()
    }
    async fn find(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }
    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/text"))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }
    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/value"), json!({"text": text}))
            .await;
    }
    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }
    async fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).unwrap();
    }
    async fn wait_for_url(&self, prefix: &str) -> String {
        for _ in 0..100 {
            let u = self.url().await;
            if u.starts_with(prefix) {
                return u;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("browser never reached {prefix}; at {}", self.url().await);
    }
    async fn quit(self) {
        let _ = self
            .wd
            .http
            .delete(format!("{}/session/{}", self.wd.base, self.session))
            .send()
            .await;
    }
}

/// A one-route callback server standing in for the client app: answers every request with a
/// small page, so the browser lands somewhere real.
async fn callback_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let body =
                    "<!doctype html><title>Example app</title><h1>Example app: signed in</h1>";
                let _ = sock
                    .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
            });
        }
    });
    format!("http://{addr}/callback")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Chromium and chromedriver (scripts/test starts them and sets CHROMEDRIVER_URL)"]
async fn browser_authorize_approve_refresh_then_revoke_from_account() {
    let driver = std::env::var("CHROMEDRIVER_URL")
        .expect("CHROMEDRIVER_URL must point at a running chromedriver");
    let callback = callback_server().await;
    let db = TempDb::new();
    let app = db.client(
        "photos",
        &[
            "--name",
            "Photo Printer",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            &callback,
            "--scope",
            "profile read",
        ],
    );
    assert!(db
        .cli_stdin(&["user", "create", "alice"], "wonderland\n")
        .status
        .success());
    let server = db.start(&[]);
    let (verifier, challenge) = pkce_pair();
    let authorize = format!(
        "{}/oauth2/authorize?response_type=code&client_id=photos&redirect_uri={}&scope=profile+read&state=st-42&code_challenge={challenge}&code_challenge_method=S256",
        server.base,
        enc(&callback)
    );

    let browser = Browser::start(&driver).await;
    browser.goto(&authorize).await;
    browser
        .wait_for_url(&format!("{}/login", server.base))
        .await;
    browser.screenshot("1-login").await;
    browser.type_into("#username", "alice").await;
    // Keyboard only: type the password and press Enter to submit.
    browser.type_into("#password", "wonderland\u{E007}").await;
    browser
        .wait_for_url(&format!("{}/oauth2/authorize", server.base))
        .await;
    assert!(browser.text("h1").await.contains("Photo Printer"));
    assert!(browser.text(".scopes").await.contains("read your data"));
    browser.screenshot("2-consent").await;
    browser.click("#approve").await;

    let landed = browser.wait_for_url(&callback).await;
    let params = query_params(&landed);
    assert_eq!(params["state"], "st-42");
    let code = params["code"].clone();
    assert!(code.starts_with("twc_"));

    let token_url = server.url("/oauth2/token");
    let (status, tokens) = json_of(
        post_form(
            &token_url,
            &app.0,
            &app.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &callback),
                ("code_verifier", &verifier),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let (status, refreshed) = json_of(
        post_form(
            &token_url,
            &app.0,
            &app.1,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();

    browser.goto(&server.url("/account")).await;
    assert!(browser
        .text("li.app[data-client-id=\"photos\"] h2")
        .await
        .contains("Photo Printer"));
    browser.screenshot("3-account").await;
    browser
        .click("li.app[data-client-id=\"photos\"] button.danger")
        .await;
    browser
        .wait_for_url(&format!("{}/account?revoked=", server.base))
        .await;
    assert!(browser.text(".notice").await.contains("Photo Printer"));
    assert!(browser.text("#no-apps").await.contains("No app"));
    browser.screenshot("4-revoked").await;
    browser.quit().await;

    let (status, body) = json_of(
        post_form(
            &token_url,
            &app.0,
            &app.1,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (_, claims) = json_of(
        post_form(
            &server.url("/oauth2/introspect"),
            &app.0,
            &app.1,
            &[("token", &access)],
        )
        .await,
    )
    .await;
    assert_eq!(claims, json!({"active": false}));
}
