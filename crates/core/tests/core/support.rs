//! The harness: an [`AuthorizationServer`] over an in-memory store with a [`ManualClock`], seeded
//! clients, a request builder and response assertions. No sockets, no sleeping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;
use tokenwarden_core::clock::{ManualClock, Timestamp};
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::{
    AccessTokenRecord, AccessTokenState, AuthorizationCodeRecord, AuthorizationCodeState, Client,
    Grant, GrantType, RefreshTokenRecord, RefreshTokenState, Scope,
};
use tokenwarden_core::random::OsRandom;
use tokenwarden_core::store::memory::MemoryStore;
use tokenwarden_core::store::{
    AdminStore, GrantFilter, PurgeCounts, PurgePolicy, Redemption, Rotation, RotationInput, Store,
    StoreError,
};
use tokenwarden_core::{AuthorizationServer, Config, Outcome};

pub const T0: Timestamp = 1_700_000_000;
pub const ISSUER: &str = "https://auth.example.test";
pub const TOKEN: &str = "/oauth2/token";
pub const REVOKE: &str = "/oauth2/revoke";
pub const INTROSPECT: &str = "/oauth2/introspect";
pub const FORM: &str = "application/x-www-form-urlencoded";

/// Seeded clients: `(client_id, secret)`; `None` secret = public client.
pub const APP: (&str, &str) = ("app", "app-secret");
pub const OTHER: (&str, &str) = ("other", "other-secret");
/// A resource server: `introspect = true`, no grant types.
pub const RS: (&str, &str) = ("rs", "rs-secret");
/// Confidential, `client_credentials` only.
pub const CC_ONLY: (&str, &str) = ("cc-only", "cc-only-secret");
/// RFC 6749 §2.3.1: id and secret with characters that must be form-encoded in Basic.
pub const ODD: (&str, &str) = ("a:b", "p@ss");
/// A public client (no secret).
pub const SPA: &str = "spa";

fn client(id: &str, secret: Option<&str>, grant_types: &[GrantType], introspect: bool) -> Client {
    Client {
        client_id: id.to_owned(),
        name: format!("{id} app"),
        secret_digest: secret.map(TokenDigest::of),
        grant_types: grant_types.to_vec(),
        redirect_uris: vec![],
        scope: Scope::parse("read write").unwrap(),
        introspect,
        cors_origins: vec![],
        created_at: T0 - 1000,
    }
}

/// Registers the standard clients directly in the store (secret digest = `TokenDigest::of`).
pub async fn seed_clients<S: AdminStore>(store: &S) {
    use GrantType::*;
    let all = [AuthorizationCode, RefreshToken, ClientCredentials];
    for c in [
        client(APP.0, Some(APP.1), &all, false),
        client(OTHER.0, Some(OTHER.1), &all, false),
        client(RS.0, Some(RS.1), &[], true),
        client(CC_ONLY.0, Some(CC_ONLY.1), &[ClientCredentials], false),
        client(ODD.0, Some(ODD.1), &[ClientCredentials], false),
        client(SPA, None, &[AuthorizationCode, RefreshToken], false),
    ] {
        store.create_client(&c).await.unwrap();
    }
}

pub struct Harness<S = MemoryStore> {
    pub server: Arc<AuthorizationServer<S>>,
    pub clock: Arc<ManualClock>,
}

impl Harness<MemoryStore> {
    /// Default configuration, clock at [`T0`], standard clients seeded.
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(configure: impl FnOnce(&mut Config)) -> Self {
        let store = MemoryStore::default();
        seed_clients(&store).await;
        Self::with_store(store, configure)
    }
}

impl<S: Store> Harness<S> {
    pub fn with_store(store: S, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::new(ISSUER);
        configure(&mut config);
        let clock = Arc::new(ManualClock::new(T0));
        let server = AuthorizationServer::new(store, config, clock.clone(), Arc::new(OsRandom));
        Self {
            server: Arc::new(server),
            clock,
        }
    }

    pub fn store(&self) -> &S {
        self.server.store()
    }

    pub fn advance(&self, seconds: i64) {
        self.clock.advance(seconds);
    }

    pub async fn token(&self, request: Request<Bytes>) -> Resp {
        Resp::from(self.server.token(request).await)
    }

    pub async fn revoke(&self, request: Request<Bytes>) -> Resp {
        Resp::from(self.server.revoke(request).await)
    }

    pub async fn introspect(&self, request: Request<Bytes>) -> Resp {
        Resp::from(self.server.introspect(request).await)
    }

    /// Calls the POST endpoint at `path`.
    pub async fn call(&self, path: &str, request: Request<Bytes>) -> Resp {
        match path {
            TOKEN => self.token(request).await,
            REVOKE => self.revoke(request).await,
            INTROSPECT => self.introspect(request).await,
            other => panic!("no endpoint {other}"),
        }
    }

    /// Mints a user grant for `client_id` as the authorization-code flow would.
    pub async fn user_grant(&self, client_id: &str, username: &str) -> Tokens {
        let client = self.store().find_client(client_id).await.unwrap().unwrap();
        let body = self
            .server
            .issue_user_grant(&client, username, None)
            .await
            .unwrap();
        Tokens::from_body(&body)
    }

    /// `client_credentials` for a confidential client (Basic); returns the access token.
    pub async fn client_credentials(&self, (id, secret): (&str, &str)) -> String {
        let r = self
            .token(
                Req::post(TOKEN)
                    .basic(id, secret)
                    .form(&[("grant_type", "client_credentials")])
                    .build(),
            )
            .await;
        r.assert_status(StatusCode::OK);
        r.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// The refresh grant, authenticating with Basic.
    pub async fn refresh(&self, (id, secret): (&str, &str), refresh_token: &str) -> Resp {
        self.token(
            Req::post(TOKEN)
                .basic(id, secret)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ])
                .build(),
        )
        .await
    }

    /// Introspects `token` as `caller` (Basic) and returns the JSON answer.
    pub async fn introspect_as(&self, (id, secret): (&str, &str), token: &str) -> Value {
        let r = self
            .introspect(
                Req::post(INTROSPECT)
                    .basic(id, secret)
                    .form(&[("token", token)])
                    .build(),
            )
            .await;
        r.assert_status(StatusCode::OK);
        r.assert_json_headers();
        r.json()
    }

    /// Whether `token` introspects active, asked by the resource server (which sees any token).
    pub async fn is_active(&self, token: &str) -> bool {
        self.introspect_as(RS, token).await["active"] == Value::Bool(true)
    }

    /// Revokes `token` as `caller` with optional hint.
    pub async fn revoke_as(
        &self,
        (id, secret): (&str, &str),
        token: &str,
        hint: Option<&str>,
    ) -> Resp {
        let mut form = vec![("token", token)];
        if let Some(h) = hint {
            form.push(("token_type_hint", h));
        }
        self.revoke(Req::post(REVOKE).basic(id, secret).form(&form).build())
            .await
    }
}

impl<S: AdminStore> Harness<S> {
    pub async fn access_state(&self, token: &str) -> Option<AccessTokenState> {
        self.store()
            .find_access_token(&TokenDigest::of(token))
            .await
            .unwrap()
    }

    pub async fn refresh_state(&self, token: &str) -> Option<RefreshTokenState> {
        self.store()
            .find_refresh_token(&TokenDigest::of(token))
            .await
            .unwrap()
    }

    pub async fn grants(&self) -> Vec<Grant> {
        self.store()
            .list_grants(&GrantFilter::default())
            .await
            .unwrap()
    }

    /// How many rows the store holds: a dry-run purge at a time when everything has expired.
    pub async fn row_counts(&self) -> PurgeCounts {
        self.store()
            .purge(Timestamp::MAX / 2, PurgePolicy::default(), true)
            .await
            .unwrap()
    }
}

/// The tokens of an RFC 6749 §5.1 response.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    pub fn from_body(body: &[u8]) -> Self {
        let v: Value = serde_json::from_slice(body).unwrap();
        Self {
            access: v["access_token"].as_str().unwrap().to_owned(),
            refresh: v["refresh_token"]
                .as_str()
                .expect("a refresh token in the response")
                .to_owned(),
        }
    }
}

/// Builds an `http::Request<Bytes>`.
#[derive(Clone)]
pub struct Req {
    method: Method,
    uri: String,
    headers: Vec<(http::HeaderName, Vec<u8>)>,
    body: Vec<u8>,
}

pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Req {
    /// A POST with `Content-Type: application/x-www-form-urlencoded`.
    pub fn post(uri: &str) -> Self {
        Self::new(Method::POST, uri).header(CONTENT_TYPE, FORM)
    }

    pub fn new(method: Method, uri: &str) -> Self {
        Self {
            method,
            uri: uri.to_owned(),
            headers: vec![],
            body: vec![],
        }
    }

    /// Same request, another URI.
    pub fn with_uri(mut self, uri: &str) -> Self {
        self.uri = uri.to_owned();
        self
    }

    pub fn header(mut self, name: http::HeaderName, value: impl AsRef<[u8]>) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name, value.as_ref().to_vec()));
        self
    }

    pub fn without_header(mut self, name: http::HeaderName) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    /// The form-encoded body.
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        self.body = form_encode(pairs).into_bytes();
        self
    }

    pub fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// `client_secret_basic`, form-encoding id and secret first (RFC 6749 §2.3.1).
    pub fn basic(self, id: &str, secret: &str) -> Self {
        let user_pass = format!(
            "{}:{}",
            utf8_percent_encode(id, NON_ALPHANUMERIC),
            utf8_percent_encode(secret, NON_ALPHANUMERIC)
        );
        self.header(
            AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(user_pass)),
        )
    }

    pub fn build(self) -> Request<Bytes> {
        let mut b = Request::builder().method(self.method).uri(self.uri);
        for (n, v) in self.headers {
            b = b.header(n, v);
        }
        b.body(Bytes::from(self.body)).unwrap()
    }
}

/// A response, with assertions.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub outcome: Option<Outcome>,
}

impl From<Response<Bytes>> for Resp {
    fn from(r: Response<Bytes>) -> Self {
        let outcome = r.extensions().get::<Outcome>().copied();
        let (parts, body) = r.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
            outcome,
        }
    }
}

impl Resp {
    pub fn header(&self, name: http::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "body: {:?}", self.body);
    }

    /// INTERFACE: "Every JSON response: Content-Type: application/json, Cache-Control: no-store,
    /// Pragma: no-cache."
    #[track_caller]
    pub fn assert_json_headers(&self) {
        assert_eq!(self.header(CONTENT_TYPE), Some("application/json"));
        self.assert_no_store();
    }

    #[track_caller]
    pub fn assert_no_store(&self) {
        assert_eq!(self.header(CACHE_CONTROL), Some("no-store"));
        assert_eq!(self.header(PRAGMA), Some("no-cache"));
    }

    /// An RFC 6749 §5.2 error: status, JSON headers, `error` code, a string `error_description`,
    /// and `WWW-Authenticate: Basic realm="tokenwarden"` exactly when the status is 401.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        self.assert_status(status);
        self.assert_json_headers();
        let v = self.json();
        assert_eq!(v["error"], code, "body: {v}");
        assert!(v["error_description"].is_string(), "body: {v}");
        assert_eq!(
            v.as_object().unwrap().len(),
            2,
            "only error and error_description: {v}"
        );
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                self.header(WWW_AUTHENTICATE),
                Some("Basic realm=\"tokenwarden\"")
            );
        } else {
            assert_eq!(self.header(WWW_AUTHENTICATE), None);
        }
        assert_eq!(self.outcome, Some(Outcome::Rejected));
    }

    /// The RFC 7009 §2.2 success: `200`, empty body, not cacheable.
    #[track_caller]
    pub fn assert_revocation_ok(&self) {
        self.assert_status(StatusCode::OK);
        assert!(self.body.is_empty(), "body: {:?}", self.body);
        self.assert_no_store();
    }
}

/// A store wrapper that fails on demand: reads (`find_*`), writes (everything else), or both.
/// The failure cause is a string the response must never contain.
#[derive(Debug, Default)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub fail_reads: AtomicBool,
    pub fail_writes: AtomicBool,
    /// Fails only `find_access_token` / `find_refresh_token`: the client lookup still works.
    pub fail_token_reads: AtomicBool,
}

pub const LEAKY_CAUSE: &str = "disk /var/lib/secret.db on fire";

impl FlakyStore {
    fn read(&self) -> Result<(), StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(LEAKY_CAUSE.into()))
        } else {
            Ok(())
        }
    }
    fn token_read(&self) -> Result<(), StoreError> {
        self.read()?;
        if self.fail_token_reads.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(LEAKY_CAUSE.into()))
        } else {
            Ok(())
        }
    }
    fn write(&self) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(LEAKY_CAUSE.into()))
        } else {
            Ok(())
        }
    }
    pub fn set(&self, reads: bool, writes: bool) {
        self.fail_reads.store(reads, Ordering::SeqCst);
        self.fail_writes.store(writes, Ordering::SeqCst);
    }
}

impl Store for FlakyStore {
    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.read()?;
        self.inner.find_client(client_id).await
    }
    async fn insert_access_token(&self, token: &AccessTokenRecord) -> Result<(), StoreError> {
        self.write()?;
        self.inner.insert_access_token(token).await
    }
    async fn create_grant(
        &self,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
    ) -> Result<(), StoreError> {
        self.write()?;
        self.inner.create_grant(grant, access, refresh).await
    }
    async fn find_access_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AccessTokenState>, StoreError> {
        self.token_read()?;
        self.inner.find_access_token(digest).await
    }
    async fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<RefreshTokenState>, StoreError> {
        self.token_read()?;
        self.inner.find_refresh_token(digest).await
    }
    async fn rotate_refresh_token(
        &self,
        old: &TokenDigest,
        new: &RotationInput,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        self.write()?;
        self.inner.rotate_refresh_token(old, new, now).await
    }
    async fn revoke_access_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write()?;
        self.inner.revoke_access_token(digest, now).await
    }
    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.revoke_grant(grant_id, now).await
    }
    async fn revocation_events(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<tokenwarden_core::feed::FeedPage, StoreError> {
        self.inner.revocation_events(after, limit).await
    }
    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        self.write()?;
        self.inner.insert_authorization_code(code).await
    }
    async fn find_authorization_code(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AuthorizationCodeState>, StoreError> {
        self.token_read()?;
        self.inner.find_authorization_code(digest).await
    }
    async fn redeem_authorization_code(
        &self,
        code: &TokenDigest,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
        now: Timestamp,
    ) -> Result<Redemption, StoreError> {
        self.write()?;
        self.inner
            .redeem_authorization_code(code, grant, access, refresh, now)
            .await
    }
}
