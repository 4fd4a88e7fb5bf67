//! The admin commands' logic (`client`, `user`, `grant`, `token issue`, `purge`), generic over the
//! store so tests can run them on memory or SQLite. Each returns the JSON the CLI prints.

use anyhow::{anyhow, bail, Context as _};
use argon2::password_hash::{PasswordHasher as _, SaltString};
use argon2::Argon2;
use serde_json::{json, Value};
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::{Client, Grant, GrantType, Scope, User};
use tokenwarden_core::random::{new_client_secret, new_id, Random};
use tokenwarden_core::secret::Password;
use tokenwarden_core::store::{AdminStore, GrantFilter, PurgePolicy, Store, StoreError};
use tokenwarden_core::AuthorizationServer;

/// What `client create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Display name.
    pub name: String,
    /// Chosen id, or a random one.
    pub client_id: Option<String>,
    /// A public client: no secret (RFC 6749 §2.1).
    pub public: bool,
    /// Grant types; empty means the default for the client kind.
    pub grant_types: Vec<GrantType>,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Scope.
    pub scope: String,
    /// A resource server: may introspect any token.
    pub introspect: bool,
    /// CORS origins.
    pub cors_origins: Vec<String>,
}

/// RFC 6749 Appendix A.1: `client-id = *VSCHAR` (%x20-7E). We also refuse empty and over-long ids
/// and spaces, which only cause trouble in Basic credentials and logs.
fn validate_client_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
        bail!("client id must be 1-128 printable ASCII characters without spaces");
    }
    Ok(())
}

/// RFC 6749 §3.1.2: "The redirection endpoint URI MUST be an absolute URI … MUST NOT include a
/// fragment component."
fn validate_redirect_uri(uri: &str) -> anyhow::Result<()> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|_| anyhow!("redirect URI `{uri}` is not a URI"))?;
    if parsed.scheme().is_none() || uri.contains('#') {
        bail!("redirect URI `{uri}` must be absolute and without a fragment");
    }
    Ok(())
}

/// The JSON shape of a client (never its secret or digest).
pub fn client_json(c: &Client) -> Value {
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "public": c.is_public(),
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "redirect_uris": c.redirect_uris,
        "scope": c.scope.to_string(),
        "introspect": c.introspect,
        "cors_origins": c.cors_origins,
        "created_at": c.created_at,
    })
}

/// The JSON shape of a grant.
pub fn grant_json(g: &Grant) -> Value {
    json!({
        "grant_id": g.grant_id,
        "user": g.username,
        "client_id": g.client_id,
        "scope": g.scope.to_string(),
        "created_at": g.created_at,
        "last_refreshed_at": g.last_refreshed_at,
        "revoked_at": g.revoked_at,
        "state": if g.revoked_at.is_some() { "revoked" } else { "active" },
    })
}

/// `client create`: registers the client and returns `{"client_id", "client_secret"}` (the secret
/// only here, once; `null` for a public client).
pub async fn create_client<S: AdminStore>(
    store: &S,
    random: &dyn Random,
    now: i64,
    new: NewClient,
) -> anyhow::Result<Value> {
    let client_id = match new.client_id {
        Some(id) => id,
        None => new_id(random)?,
    };
    validate_client_id(&client_id)?;
    if new.name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    for uri in &new.redirect_uris {
        validate_redirect_uri(uri)?;
    }
    let mut grant_types = new.grant_types;
    if grant_types.is_empty() {
        grant_types = if new.public {
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        } else {
            vec![GrantType::ClientCredentials]
        };
    }
    grant_types.sort();
    grant_types.dedup();
    // RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential clients."
    if new.public && grant_types.contains(&GrantType::ClientCredentials) {
        bail!("a public client cannot use the client_credentials grant");
    }
    let scope = Scope::parse(&new.scope).map_err(|e| anyhow!("--scope: {e}"))?;
    let secret = if new.public {
        None
    } else {
        Some(new_client_secret(random)?)
    };
    let client = Client {
        client_id: client_id.clone(),
        name: new.name,
        secret_digest: secret.as_ref().map(|s| TokenDigest::of(s.secret())),
        grant_types,
        redirect_uris: new.redirect_uris,
        scope,
        introspect: new.introspect,
        cors_origins: new.cors_origins,
        created_at: now,
    };
    match store.create_client(&client).await {
        Err(StoreError::Conflict) => bail!("a client with id `{client_id}` already exists"),
        other => other?,
    }
    Ok(json!({ "client_id": client_id, "client_secret": secret.as_ref().map(|s| s.secret()) }))
}

/// `client rotate-secret ID`: a new secret replaces the old one at once.
pub async fn rotate_secret<S: AdminStore>(
    store: &S,
    random: &dyn Random,
    client_id: &str,
) -> anyhow::Result<Value> {
    let client = store
        .find_client(client_id)
        .await?
        .ok_or_else(|| anyhow!("no client `{client_id}`"))?;
    if client.is_public() {
        bail!("client `{client_id}` is public and has no secret");
    }
    let secret = new_client_secret(random)?;
    if !store
        .set_client_secret(client_id, &TokenDigest::of(secret.secret()))
        .await?
    {
        bail!("no client `{client_id}`");
    }
    Ok(json!({ "client_id": client_id, "client_secret": secret.secret() }))
}

/// Hashes a password with argon2id (a memory-hard hash is right for low-entropy human secrets).
pub fn hash_password(password: &Password, random: &dyn Random) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    random.fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.secret().as_bytes(), &salt)
        .map_err(|e| anyhow!("password hashing failed: {e}"))?
        .to_string())
}

/// Checks a password against a stored argon2id hash. With no hash (unknown user) a fixed dummy
/// hash is checked instead, so the time taken does not reveal whether the user exists.
pub fn verify_password(password: &Password, hash: Option<&str>) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(&[7u8; 16]).ok()?;
        Argon2::default()
            .hash_password(b"not a password", &salt)
            .ok()
            .map(|h| h.to_string())
    });
    let Some(stored) = hash.or(dummy.as_deref()) else {
        return false;
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.secret().as_bytes(), &parsed)
        .is_ok()
        && hash.is_some()
}

/// `user create NAME` (password already read).
pub async fn create_user<S: AdminStore>(
    store: &S,
    random: &dyn Random,
    now: i64,
    username: &str,
    password: &Password,
) -> anyhow::Result<Value> {
    if username.is_empty()
        || username.len() > 128
        || username
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        bail!("user name must be 1-128 characters without spaces or control characters");
    }
    if password.secret().is_empty() {
        bail!("empty password");
    }
    let user = User {
        username: username.to_owned(),
        password_hash: hash_password(password, random)?,
        created_at: now,
    };
    match store.create_user(&user).await {
        Err(StoreError::Conflict) => bail!("user `{username}` already exists"),
        other => other?,
    }
    Ok(json!({ "username": username, "created_at": now }))
}

/// `token issue --client C --user U [--scope S]`.
pub async fn issue_token<S: Store, A: AdminStore>(
    server: &AuthorizationServer<S>,
    store: &A,
    client_id: &str,
    username: &str,
    scope: Option<&str>,
) -> anyhow::Result<Value> {
    let client = store
        .find_client(client_id)
        .await?
        .ok_or_else(|| anyhow!("no client `{client_id}`"))?;
    if !client.allows(GrantType::AuthorizationCode) && !client.allows(GrantType::RefreshToken) {
        bail!("client `{client_id}` is not registered for user grants (authorization_code or refresh_token)");
    }
    store
        .find_user(username)
        .await?
        .ok_or_else(|| anyhow!("no user `{username}`"))?;
    let body = server
        .issue_user_grant(&client, username, scope)
        .await
        .map_err(|e| anyhow!("{}: {}", e.code.as_str(), e.description))?;
    serde_json::from_slice(&body).context("token response")
}

/// `grant revoke`: by id, or every grant of a user and/or client.
pub async fn revoke_grants<S: AdminStore>(
    store: &S,
    now: i64,
    grant_id: Option<&str>,
    filter: GrantFilter,
) -> anyhow::Result<Value> {
    let revoked = match grant_id {
        // 0 when the id is unknown or the grant was already revoked: revocation is idempotent.
        Some(id) => u64::from(store.revoke_grant(id, now).await?),
        None => store.revoke_grants(&filter, now).await?,
    };
    Ok(json!({ "revoked": revoked }))
}

/// `purge [--dry-run]`.
pub async fn purge<S: AdminStore>(
    store: &S,
    now: i64,
    dry_run: bool,
    event_retention: i64,
) -> anyhow::Result<Value> {
    let policy = PurgePolicy {
        event_retention,
        ..PurgePolicy::default()
    };
    let counts = store.purge(now, policy, dry_run).await?;
    Ok(json!({
        "dry_run": dry_run,
        "access_tokens": counts.access_tokens,
        "refresh_tokens": counts.refresh_tokens,
        "grants": counts.grants,
        "authorization_codes": counts.authorization_codes,
        "sessions": counts.sessions,
        "revocation_events": counts.revocation_events,
    }))
}
