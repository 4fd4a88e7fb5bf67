//! Fixtures: throwaway database files and records.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::{
    AccessTokenRecord, Client, Grant, GrantType, RefreshTokenRecord, Scope, User,
};
use tokenwarden_core::store::RotationInput;
use tokenwarden_sqlite::SqliteStore;

/// A database file in the temp directory, removed (with its `-wal` and `-shm`) on drop.
pub struct TempDb {
    pub path: PathBuf,
}

impl TempDb {
    pub fn new(name: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tokenwarden-sqlite-{name}-{}-{}.db",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let db = Self { path };
        db.remove();
        db
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    pub async fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.url()).await.unwrap()
    }

    pub fn sidecar(&self, suffix: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }

    fn remove(&self) {
        for p in [
            self.path.clone(),
            self.sidecar("-wal"),
            self.sidecar("-shm"),
        ] {
            let _ = std::fs::remove_file(&p);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Opens a second, raw connection to the file, for looking under the store.
pub async fn raw(path: &Path) -> sqlx::SqliteConnection {
    use sqlx::Connection as _;
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

pub fn d(token: &str) -> TokenDigest {
    TokenDigest::of(token)
}

pub fn scope(s: &str) -> Scope {
    Scope::parse(s).unwrap()
}

pub fn client(id: &str) -> Client {
    Client {
        client_id: id.to_owned(),
        name: format!("{id} app"),
        secret_digest: Some(d(&format!("{id}-secret"))),
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        redirect_uris: vec![format!("https://{id}.example/cb")],
        scope: scope("read write"),
        introspect: false,
        cors_origins: vec!["https://app.example".to_owned()],
        created_at: 1_000,
    }
}

pub fn user(name: &str) -> User {
    User {
        username: name.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        created_at: 1_000,
    }
}

pub fn grant(id: &str, client_id: &str, username: &str, created_at: i64) -> Grant {
    Grant {
        grant_id: id.to_owned(),
        client_id: client_id.to_owned(),
        username: username.to_owned(),
        scope: scope("read write"),
        created_at,
        last_refreshed_at: None,
        revoked_at: None,
    }
}

/// An access token `token` in `g` (or grant-less when `None`), issued at `iat`, expiring at `exp`.
pub fn access(
    token: &str,
    g: Option<&Grant>,
    client_id: &str,
    iat: i64,
    exp: i64,
) -> AccessTokenRecord {
    AccessTokenRecord {
        digest: d(token),
        grant_id: g.map(|g| g.grant_id.clone()),
        client_id: client_id.to_owned(),
        username: g.map(|g| g.username.clone()),
        scope: scope("read"),
        issued_at: iat,
        expires_at: exp,
    }
}

pub fn refresh(token: &str, g: &Grant, iat: i64, exp: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        digest: d(token),
        grant_id: g.grant_id.clone(),
        client_id: g.client_id.clone(),
        username: g.username.clone(),
        scope: g.scope.clone(),
        issued_at: iat,
        expires_at: exp,
    }
}

/// The successor of a refresh token in `g`: new tokens named after `suffix`.
pub fn successor(g: &Grant, suffix: &str, now: i64) -> RotationInput {
    RotationInput {
        access: access(
            &format!("twa_{suffix}"),
            Some(g),
            &g.client_id,
            now,
            now + 3_600,
        ),
        refresh: refresh(&format!("twr_{suffix}"), g, now, now + 86_400),
        sealed_response: format!("sealed-{suffix}").into_bytes(),
    }
}
