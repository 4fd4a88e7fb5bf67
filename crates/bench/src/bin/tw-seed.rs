//! Seeds a tokenwarden SQLite database with bench tokens, bypassing HTTP: one transaction per
//! 10 000 rows, so 10⁶ tokens take seconds, not hours.
//!
//! `tw-seed DATABASE_URL CLIENT_ID COUNT OUT_FILE [SAMPLE]` inserts COUNT active access tokens
//! for CLIENT_ID (no grant, like client-credentials tokens) and writes SAMPLE of them (default:
//! all) to OUT_FILE, one per line, for the load scripts. The tokens are minted and digested by
//! `tokenwarden-core` exactly as the server does, as if issued at 16 a millisecond over the last
//! moments: a seeded database has the same index layout as one filled by real traffic.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};
use std::io::Write as _;
use std::str::FromStr as _;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::random::{new_access_token, OsRandom};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, client_id, count, out, rest @ ..] = args.as_slice() else {
        return Err("usage: tw-seed DATABASE_URL CLIENT_ID COUNT OUT_FILE [SAMPLE]".into());
    };
    let count: u64 = count.parse()?;
    let sample: u64 = rest
        .first()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(count);
    // Create the schema the way the server does.
    tokenwarden_sqlite::SqliteStore::open(url)
        .await?
        .close()
        .await;
    let mut conn = SqliteConnectOptions::from_str(url)?.connect().await?;
    #[allow(clippy::disallowed_methods)] // a seeding tool, not the server: wall clock is fine
    let now_millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let now = now_millis / 1000;
    let first_millis = now_millis - (count / 16) as i64;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let stride = (count / sample.max(1)).max(1);
    let mut i = 0u64;
    while i < count {
        let mut tx = conn.begin().await?;
        let end = (i + 10_000).min(count);
        for n in i..end {
            let token = new_access_token(&OsRandom, first_millis + (n / 16) as i64)?;
            let token = token.secret();
            if n % stride == 0 {
                writeln!(file, "{token}")?;
            }
            sqlx::query(
                "INSERT INTO access_tokens (digest, grant_id, client_id, username, scope, issued_at, expires_at) \
                 VALUES (?1, NULL, ?2, NULL, 'read', ?3, ?4)",
            )
            .bind(TokenDigest::of(token).as_bytes().to_vec())
            .bind(client_id.as_str())
            .bind(now)
            .bind(now + 86_400)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        i = end;
    }
    file.flush()?;
    eprintln!("seeded {count} tokens for {client_id}");
    Ok(())
}
