//! # tokenwarden-conformance
//!
//! One store conformance suite (CONVENTIONS "Shape": "One shared conformance suite runs against
//! every backend"). Every storage backend — memory, SQLite, PostgreSQL — must behave exactly like
//! the reference, [`tokenwarden_core::store::memory::MemoryStore`], on every case here.
//!
//! Each case is a `pub async fn` generic over [`AccountStore`] (which implies
//! [`AdminStore`](tokenwarden_core::store::AdminStore) and [`Store`](tokenwarden_core::store::Store))
//! that takes a **fresh, empty** store. A backend runs them all with one line in a test
//! file (its crate needs `tokio` as a dev-dependency):
//!
//! ```text
//! tokenwarden_conformance::conformance_suite!(async { MyStore::open(":memory:").await.unwrap() });
//! ```
//!
//! which expands into one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per case,
//! each awaiting the expression for its own store. A backend whose store needs setting up and
//! tearing down around each case (a temporary database file, a schema to drop) names a runner
//! instead, which gets the case's name and the case, and calls the case with a fresh store:
//!
//! ```text
//! tokenwarden_conformance::conformance_suite!(run = on_temp_file);
//!
//! async fn on_temp_file<F, Fut>(name: &'static str, case: F)
//! where
//!     F: FnOnce(MyStore) -> Fut,
//!     Fut: std::future::Future<Output = ()>,
//! { /* create, case(store).await, clean up */ }
//! ```
//!
//! Either way the list of cases lives in this crate only, so a case added here runs on every
//! backend without touching it.
//!
//! All data is built with fixed timestamps around [`T0`]; nothing reads the wall clock, so a
//! backend must take `now` from its arguments only.
#![warn(missing_docs)]
// This crate is test code: a failed expectation must panic with a message, exactly as in a
// `#[test]` function (clippy.toml allows these lints in tests; this crate is nothing but tests).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod differential;
pub mod fixtures;

use futures_util::future::join_all;
use tokenwarden_core::clock::Timestamp;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::feed::{FeedPage, RevocationEvent, RevocationKind};
use tokenwarden_core::model::{
    AccessTokenRecord, AuthorizationCodeRecord, AuthorizationCodeState, Client, Consent, Grant,
    GrantType, RefreshTokenRecord, Scope, Session, User,
};
use tokenwarden_core::store::{
    AccountStore, FoundToken, GrantFilter, PurgeCounts, PurgePolicy, Redemption, Rotation,
    RotationInput, StoreError,
};

/// The instant every case starts at (2023-11-14T22:13:20Z).
pub const T0: Timestamp = 1_700_000_000;
/// Access-token lifetime used by the fixtures.
pub const ACCESS_TTL: i64 = 3600;
/// Refresh-token lifetime used by the fixtures.
pub const REFRESH_TTL: i64 = 30 * 24 * 3600;
/// Revoked-row retention used by the purge cases (and how long a code is kept past its expiry).
pub const RETENTION: i64 = 24 * 3600;
/// Authorization-code lifetime used by the fixtures (RFC 6749 §4.1.2 recommends at most 10
/// minutes).
pub const CODE_TTL: i64 = 600;
/// Browser-session lifetime used by the fixtures.
pub const SESSION_TTL: i64 = 8 * 3600;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn scope(s: &str) -> Scope {
    Scope::parse(s).unwrap()
}

/// A confidential client `id` allowed every grant type, with every field set to something
/// non-default so a backend that drops a column is caught.
fn client(id: &str) -> Client {
    Client {
        client_id: id.to_owned(),
        name: format!("{id} name"),
        secret_digest: Some(TokenDigest::of(&format!("{id}-secret"))),
        grant_types: vec![
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ],
        redirect_uris: vec![
            format!("https://{id}.example/cb"),
            "http://127.0.0.1:9/cb".to_owned(),
        ],
        scope: scope("read write"),
        introspect: false,
        cors_origins: vec![format!("https://{id}.example")],
        created_at: T0 - 100,
    }
}

fn user(name: &str) -> User {
    User {
        username: name.to_owned(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$hash-of-{name}"),
        created_at: T0 - 50,
    }
}

fn grant(id: &str, client_id: &str, username: &str, created_at: Timestamp) -> Grant {
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

fn digest(label: &str) -> TokenDigest {
    TokenDigest::of(&format!("conformance-token/{label}"))
}

/// An access token in `grant` (or grant-less, as `client_credentials` makes them).
fn access(
    label: &str,
    g: Option<&Grant>,
    client_id: &str,
    issued_at: Timestamp,
) -> AccessTokenRecord {
    AccessTokenRecord {
        digest: digest(label),
        grant_id: g.map(|g| g.grant_id.clone()),
        client_id: client_id.to_owned(),
        username: g.map(|g| g.username.clone()),
        scope: g.map_or_else(|| scope("read"), |g| g.scope.clone()),
        issued_at,
        expires_at: issued_at + ACCESS_TTL,
    }
}

fn refresh(label: &str, g: &Grant, issued_at: Timestamp) -> RefreshTokenRecord {
    RefreshTokenRecord {
        digest: digest(label),
        grant_id: g.grant_id.clone(),
        client_id: g.client_id.clone(),
        username: g.username.clone(),
        scope: g.scope.clone(),
        issued_at,
        expires_at: issued_at + REFRESH_TTL,
    }
}

/// The successor tokens of `old` minted at `now`, labelled `label`.
fn rotation(label: &str, old: &RefreshTokenRecord, now: Timestamp) -> RotationInput {
    RotationInput {
        access: AccessTokenRecord {
            digest: digest(&format!("{label}/access")),
            grant_id: Some(old.grant_id.clone()),
            client_id: old.client_id.clone(),
            username: Some(old.username.clone()),
            scope: scope("read"),
            issued_at: now,
            expires_at: now + ACCESS_TTL,
        },
        refresh: RefreshTokenRecord {
            digest: digest(&format!("{label}/refresh")),
            grant_id: old.grant_id.clone(),
            client_id: old.client_id.clone(),
            username: old.username.clone(),
            scope: old.scope.clone(),
            issued_at: now,
            expires_at: now + REFRESH_TTL,
        },
        sealed_response: format!("sealed response of {label}").into_bytes(),
    }
}

/// An authorization code `label` for `client_id` and `username`, issued at `issued_at`, with a
/// PKCE challenge (the RFC 7636 Appendix B one) and every field set.
fn code(
    label: &str,
    client_id: &str,
    username: &str,
    issued_at: Timestamp,
) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        digest: digest(&format!("code/{label}")),
        client_id: client_id.to_owned(),
        username: username.to_owned(),
        redirect_uri: format!("https://{client_id}.example/cb?tenant=1"),
        redirect_uri_given: true,
        scope: scope("read write"),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        issued_at,
        expires_at: issued_at + CODE_TTL,
    }
}

/// A code `label` expiring at `expires_at`.
fn code_expiring(label: &str, expires_at: Timestamp) -> AuthorizationCodeRecord {
    code(label, "app", "alice", expires_at - CODE_TTL)
}

/// What the token endpoint mints when it redeems `c` at `now`: grant `grant_id` with an access
/// token and, when `with_refresh`, a refresh token, labelled after the grant.
struct Issue {
    grant: Grant,
    access: AccessTokenRecord,
    refresh: Option<RefreshTokenRecord>,
}

fn issue(grant_id: &str, c: &AuthorizationCodeRecord, now: Timestamp, with_refresh: bool) -> Issue {
    let mut g = grant(grant_id, &c.client_id, &c.username, now);
    g.scope = c.scope.clone();
    let access = access(&format!("{grant_id}/access"), Some(&g), &c.client_id, now);
    let refresh = with_refresh.then(|| refresh(&format!("{grant_id}/refresh"), &g, now));
    Issue {
        grant: g,
        access,
        refresh,
    }
}

async fn redeem<S: AccountStore>(
    store: &S,
    c: &TokenDigest,
    i: &Issue,
    now: Timestamp,
) -> Result<Redemption, StoreError> {
    store
        .redeem_authorization_code(c, &i.grant, &i.access, i.refresh.as_ref(), now)
        .await
}

async fn code_state<S: AccountStore>(store: &S, c: &TokenDigest) -> AuthorizationCodeState {
    store
        .find_authorization_code(c)
        .await
        .unwrap()
        .expect("authorization code should exist")
}

/// Nothing of `i` was stored: no grant, no access token, no refresh token.
async fn assert_not_issued<S: AccountStore>(store: &S, i: &Issue, why: &str) {
    assert_eq!(
        grant_by_id(store, &i.grant.grant_id).await,
        None,
        "{why}: no grant {}",
        i.grant.grant_id
    );
    assert_eq!(
        store.find_access_token(&i.access.digest).await.unwrap(),
        None,
        "{why}: no access token of {}",
        i.grant.grant_id
    );
    if let Some(r) = &i.refresh {
        assert_eq!(
            store.find_refresh_token(&r.digest).await.unwrap(),
            None,
            "{why}: no refresh token of {}",
            i.grant.grant_id
        );
    }
}

fn session(label: &str, username: &str, created_at: Timestamp) -> Session {
    Session {
        digest: digest(&format!("session/{label}")),
        username: username.to_owned(),
        created_at,
        expires_at: created_at + SESSION_TTL,
    }
}

fn consent(username: &str, client_id: &str, s: &str, granted_at: Timestamp) -> Consent {
    Consent {
        username: username.to_owned(),
        client_id: client_id.to_owned(),
        scope: scope(s),
        granted_at,
    }
}

async fn seed_client_and_user<S: AccountStore>(store: &S, client_id: &str, username: &str) {
    if store.find_client(client_id).await.unwrap().is_none() {
        store.create_client(&client(client_id)).await.unwrap();
    }
    if store.find_user(username).await.unwrap().is_none() {
        store.create_user(&user(username)).await.unwrap();
    }
}

/// A grant with its first access token and, when `with_refresh`, its first refresh token, all
/// issued at `created_at`. Labels are derived from the grant id.
async fn seed_grant<S: AccountStore>(
    store: &S,
    grant_id: &str,
    client_id: &str,
    username: &str,
    created_at: Timestamp,
    with_refresh: bool,
) -> (Grant, AccessTokenRecord, Option<RefreshTokenRecord>) {
    seed_client_and_user(store, client_id, username).await;
    let g = grant(grant_id, client_id, username, created_at);
    let a = access(
        &format!("{grant_id}/access"),
        Some(&g),
        client_id,
        created_at,
    );
    let r = with_refresh.then(|| refresh(&format!("{grant_id}/refresh"), &g, created_at));
    store.create_grant(&g, &a, r.as_ref()).await.unwrap();
    (g, a, r)
}

async fn grant_by_id<S: AccountStore>(store: &S, grant_id: &str) -> Option<Grant> {
    store
        .list_grants(&GrantFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.grant_id == grant_id)
}

async fn access_revoked<S: AccountStore>(store: &S, d: &TokenDigest) -> bool {
    store
        .find_access_token(d)
        .await
        .unwrap()
        .expect("access token should exist")
        .revoked
}

async fn refresh_revoked<S: AccountStore>(store: &S, d: &TokenDigest) -> bool {
    store
        .find_refresh_token(d)
        .await
        .unwrap()
        .expect("refresh token should exist")
        .revoked
}

/// A token is dead when it is gone or reads as revoked: either way no endpoint accepts it.
async fn access_dead<S: AccountStore>(store: &S, d: &TokenDigest) -> bool {
    store
        .find_access_token(d)
        .await
        .unwrap()
        .is_none_or(|t| t.revoked)
}

async fn refresh_dead<S: AccountStore>(store: &S, d: &TokenDigest) -> bool {
    store
        .find_refresh_token(d)
        .await
        .unwrap()
        .is_none_or(|t| t.revoked)
}

fn by_user(u: &str) -> GrantFilter {
    GrantFilter {
        username: Some(u.to_owned()),
        client_id: None,
    }
}

fn by_client(c: &str) -> GrantFilter {
    GrantFilter {
        username: None,
        client_id: Some(c.to_owned()),
    }
}

fn ids(grants: &[Grant]) -> Vec<&str> {
    grants.iter().map(|g| g.grant_id.as_str()).collect()
}

fn policy(batch_size: u32) -> PurgePolicy {
    PurgePolicy {
        revoked_retention: RETENTION,
        batch_size,
        // The token purge cases keep every feed event; the feed cases set their own retention.
        event_retention: 100 * 365 * 24 * 3600,
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// `create_client` stores every field; `find_client` returns it unchanged (confidential and
/// public alike) and `None` for an unknown id.
pub async fn created_client_is_found_with_every_field<S: AccountStore>(store: S) {
    let confidential = client("app");
    let mut public = client("spa");
    public.secret_digest = None;
    public.introspect = true;
    public.grant_types = vec![GrantType::RefreshToken];
    public.redirect_uris = vec![];
    public.cors_origins = vec![];
    public.scope = scope("");
    store.create_client(&confidential).await.unwrap();
    store.create_client(&public).await.unwrap();

    assert_eq!(
        store.find_client("app").await.unwrap(),
        Some(confidential),
        "confidential client must round-trip every field, including the secret digest"
    );
    let found = store.find_client("spa").await.unwrap();
    assert_eq!(found, Some(public), "public client must round-trip");
    assert!(found.unwrap().is_public());
    assert_eq!(store.find_client("nobody").await.unwrap(), None);
    // Ids are compared exactly.
    assert_eq!(store.find_client("APP").await.unwrap(), None);
}

/// A second `create_client` with a taken id is `Conflict` and leaves the first one intact.
pub async fn create_client_with_taken_id_conflicts<S: AccountStore>(store: S) {
    let first = client("app");
    store.create_client(&first).await.unwrap();
    let mut second = client("app");
    second.name = "impostor".into();
    second.secret_digest = Some(TokenDigest::of("impostor"));
    let result = store.create_client(&second).await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "expected Conflict, got {result:?}"
    );
    assert_eq!(store.find_client("app").await.unwrap(), Some(first));
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
}

/// `list_clients` returns every client ordered by `client_id`, whatever the insertion order;
/// an empty store lists nothing.
pub async fn list_clients_is_ordered_by_client_id<S: AccountStore>(store: S) {
    assert!(store.list_clients().await.unwrap().is_empty());
    for id in ["m-client", "b-client", "z-client", "a-client", "k-client"] {
        store.create_client(&client(id)).await.unwrap();
    }
    let listed = store.list_clients().await.unwrap();
    let listed_ids: Vec<&str> = listed.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(
        listed_ids,
        ["a-client", "b-client", "k-client", "m-client", "z-client"]
    );
    assert_eq!(
        listed[0],
        client("a-client"),
        "listed clients carry every field"
    );
}

/// `set_client_secret` replaces the digest and answers `true`; for an unknown client it answers
/// `false` and creates nothing.
pub async fn set_client_secret_replaces_digest_or_reports_missing_client<S: AccountStore>(
    store: S,
) {
    store.create_client(&client("app")).await.unwrap();
    store.create_client(&client("other")).await.unwrap();
    let new = TokenDigest::of("rotated-secret");
    assert!(store.set_client_secret("app", &new).await.unwrap());
    let found = store.find_client("app").await.unwrap().unwrap();
    assert_eq!(found.secret_digest, Some(new));
    let mut expected = client("app");
    expected.secret_digest = Some(new);
    assert_eq!(found, expected, "only the secret digest changes");
    assert_eq!(
        store.find_client("other").await.unwrap(),
        Some(client("other")),
        "other clients keep their secret"
    );

    assert!(!store.set_client_secret("ghost", &new).await.unwrap());
    assert_eq!(store.find_client("ghost").await.unwrap(), None);
}

/// `delete_client` removes the client, revokes its active grants (counting them; an already
/// revoked grant is not counted) with all their tokens, and its grant-less access tokens; other
/// clients' grants and tokens are untouched.
pub async fn delete_client_revokes_its_grants_and_grantless_tokens<S: AccountStore>(store: S) {
    let (_, a1, r1) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let (_, a2, _) = seed_grant(&store, "g2", "app", "bob", T0 + 1, false).await;
    let (_, a3, r3) = seed_grant(&store, "g3", "app", "alice", T0 + 2, true).await;
    assert!(store.revoke_grant("g3", T0 + 3).await.unwrap());
    let cc = access("app-cc", None, "app", T0);
    store.insert_access_token(&cc).await.unwrap();
    let (_, other_a, other_r) = seed_grant(&store, "other-g", "other", "alice", T0, true).await;
    let other_cc = access("other-cc", None, "other", T0);
    store.insert_access_token(&other_cc).await.unwrap();

    let revoked = store.delete_client("app", T0 + 10).await.unwrap();
    assert_eq!(
        revoked,
        Some(2),
        "counts the grants that were active (g1, g2), not the already revoked g3"
    );
    assert_eq!(store.find_client("app").await.unwrap(), None);
    assert_eq!(
        store.list_clients().await.unwrap(),
        vec![client("other")],
        "only the deleted client is gone"
    );
    for d in [&a1.digest, &a2.digest, &a3.digest, &cc.digest] {
        assert!(
            access_dead(&store, d).await,
            "access token {d:?} must be dead"
        );
    }
    for d in [&r1.unwrap().digest, &r3.unwrap().digest] {
        assert!(
            refresh_dead(&store, d).await,
            "refresh token {d:?} must be dead"
        );
    }
    for g in store.list_grants(&by_client("app")).await.unwrap() {
        assert!(
            g.revoked_at.is_some(),
            "grant {} must be revoked",
            g.grant_id
        );
    }

    assert!(!access_revoked(&store, &other_a.digest).await);
    assert!(!refresh_revoked(&store, &other_r.unwrap().digest).await);
    assert!(!access_revoked(&store, &other_cc.digest).await);
    assert_eq!(
        grant_by_id(&store, "other-g").await.unwrap().revoked_at,
        None
    );
}

/// `delete_client` of an unknown id answers `None` and touches nothing (not even consents that
/// name that id).
pub async fn delete_missing_client_returns_none<S: AccountStore>(store: S) {
    let (_, a, _) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    // A consent naming a client that does not exist is not the business of `delete_client`.
    let stray = consent("alice", "ghost", "read", T0);
    store.save_consent(&stray).await.unwrap();
    assert_eq!(store.delete_client("ghost", T0).await.unwrap(), None);
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
    assert!(!access_revoked(&store, &a.digest).await);
    assert_eq!(
        store.find_consent("alice", "ghost").await.unwrap(),
        Some(stray)
    );
    // Deleting twice: the second time the client is missing.
    assert_eq!(store.delete_client("app", T0).await.unwrap(), Some(1));
    assert_eq!(store.delete_client("app", T0).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

/// `create_user` stores the user; `find_user` returns it unchanged, and `None` for an unknown
/// name.
pub async fn created_user_is_found_by_name<S: AccountStore>(store: S) {
    let alice = user("alice");
    store.create_user(&alice).await.unwrap();
    store.create_user(&user("bob")).await.unwrap();
    assert_eq!(store.find_user("alice").await.unwrap(), Some(alice));
    assert_eq!(store.find_user("bob").await.unwrap(), Some(user("bob")));
    assert_eq!(store.find_user("carol").await.unwrap(), None);
    assert_eq!(store.find_user("Alice").await.unwrap(), None);
}

/// A second `create_user` with a taken name is `Conflict` and keeps the first password hash.
pub async fn create_user_with_taken_name_conflicts<S: AccountStore>(store: S) {
    let alice = user("alice");
    store.create_user(&alice).await.unwrap();
    let mut again = user("alice");
    again.password_hash = "$argon2id$different".into();
    let result = store.create_user(&again).await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "expected Conflict, got {result:?}"
    );
    assert_eq!(store.find_user("alice").await.unwrap(), Some(alice));
}

// ---------------------------------------------------------------------------------------------
// Access tokens and grants
// ---------------------------------------------------------------------------------------------

/// `insert_access_token` stores a grant-less token; `find_access_token` returns its record,
/// not revoked, and `None` for an unknown digest.
pub async fn inserted_access_token_is_found_by_digest<S: AccountStore>(store: S) {
    store.create_client(&client("app")).await.unwrap();
    let token = access("cc", None, "app", T0);
    store.insert_access_token(&token).await.unwrap();
    let found = store
        .find_access_token(&token.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.record, token);
    assert!(!found.revoked);
    assert!(found.is_active(T0));
    assert_eq!(
        store.find_access_token(&digest("unknown")).await.unwrap(),
        None
    );
    // An access digest is not a refresh digest.
    assert_eq!(store.find_refresh_token(&token.digest).await.unwrap(), None);
}

/// Inserting an access token whose digest exists fails and leaves the stored record unchanged.
pub async fn insert_access_token_with_existing_digest_fails<S: AccountStore>(store: S) {
    store.create_client(&client("app")).await.unwrap();
    store.create_client(&client("other")).await.unwrap();
    let token = access("cc", None, "app", T0);
    store.insert_access_token(&token).await.unwrap();
    let mut clash = access("cc", None, "other", T0 + 5);
    clash.scope = scope("write");
    assert!(store.insert_access_token(&clash).await.is_err());
    assert_eq!(
        store
            .find_access_token(&token.digest)
            .await
            .unwrap()
            .unwrap()
            .record,
        token
    );
}

/// `create_grant` with a refresh token stores the grant, its access token and its refresh token
/// (unused, no sealed successor, not revoked).
pub async fn create_grant_with_refresh_stores_all_three<S: AccountStore>(store: S) {
    seed_client_and_user(&store, "app", "alice").await;
    let g = grant("g1", "app", "alice", T0);
    let a = access("a1", Some(&g), "app", T0);
    let r = refresh("r1", &g, T0);
    store.create_grant(&g, &a, Some(&r)).await.unwrap();

    assert_eq!(
        store.list_grants(&GrantFilter::default()).await.unwrap(),
        vec![g]
    );
    let found_a = store.find_access_token(&a.digest).await.unwrap().unwrap();
    assert_eq!(found_a.record, a);
    assert!(!found_a.revoked);
    let found_r = store.find_refresh_token(&r.digest).await.unwrap().unwrap();
    assert_eq!(found_r.record, r);
    assert_eq!(found_r.used_at, None);
    assert_eq!(found_r.sealed_successor, None);
    assert!(!found_r.revoked);
    assert!(found_r.is_active(T0));
}

/// `create_grant` without a refresh token stores the grant and its access token only.
pub async fn create_grant_without_refresh_stores_no_refresh_token<S: AccountStore>(store: S) {
    seed_client_and_user(&store, "app", "alice").await;
    let g = grant("g1", "app", "alice", T0);
    let a = access("a1", Some(&g), "app", T0);
    store.create_grant(&g, &a, None).await.unwrap();
    assert_eq!(grant_by_id(&store, "g1").await, Some(g.clone()));
    assert_eq!(
        store
            .find_access_token(&a.digest)
            .await
            .unwrap()
            .unwrap()
            .record,
        a
    );
    assert_eq!(store.find_refresh_token(&digest("r1")).await.unwrap(), None);
}

/// `create_grant` is atomic: when its refresh digest already exists, it fails and stores
/// neither the grant nor its access token.
pub async fn create_grant_is_all_or_nothing<S: AccountStore>(store: S) {
    let (_, _, existing) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let existing = existing.unwrap();
    let g2 = grant("g2", "app", "alice", T0 + 1);
    let a2 = access("g2/access", Some(&g2), "app", T0 + 1);
    let mut r2 = refresh("g2/refresh", &g2, T0 + 1);
    r2.digest = existing.digest; // collides
    assert!(store.create_grant(&g2, &a2, Some(&r2)).await.is_err());
    assert_eq!(
        grant_by_id(&store, "g2").await,
        None,
        "no grant left behind"
    );
    assert_eq!(
        store.find_access_token(&a2.digest).await.unwrap(),
        None,
        "no access token left behind"
    );
    assert_eq!(
        store
            .find_refresh_token(&existing.digest)
            .await
            .unwrap()
            .unwrap()
            .record,
        existing,
        "the existing refresh token is untouched"
    );
}

// ---------------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------------

/// Revoking a grant makes every access and refresh token of it read as revoked, stamps the
/// grant's `revoked_at`, and leaves other grants and grant-less tokens alone.
pub async fn revoking_grant_makes_its_tokens_read_revoked<S: AccountStore>(store: S) {
    let (_, a1, r1) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let r1 = r1.unwrap();
    // A second generation in the same grant, via rotation.
    let next = rotation("gen2", &r1, T0 + 10);
    assert!(matches!(
        store
            .rotate_refresh_token(&r1.digest, &next, T0 + 10)
            .await
            .unwrap(),
        Rotation::Rotated
    ));
    let (_, other_a, other_r) = seed_grant(&store, "g2", "app", "alice", T0, true).await;
    let cc = access("cc", None, "app", T0);
    store.insert_access_token(&cc).await.unwrap();

    assert!(store.revoke_grant("g1", T0 + 20).await.unwrap());

    for d in [&a1.digest, &next.access.digest] {
        let t = store.find_access_token(d).await.unwrap().unwrap();
        assert!(t.revoked, "access token of a revoked grant reads revoked");
        assert!(!t.is_active(T0 + 20));
    }
    for d in [&r1.digest, &next.refresh.digest] {
        assert!(
            refresh_revoked(&store, d).await,
            "refresh token of a revoked grant reads revoked"
        );
    }
    assert_eq!(
        grant_by_id(&store, "g1").await.unwrap().revoked_at,
        Some(T0 + 20)
    );
    assert!(!access_revoked(&store, &other_a.digest).await);
    assert!(!refresh_revoked(&store, &other_r.unwrap().digest).await);
    assert!(!access_revoked(&store, &cc.digest).await);
    assert_eq!(grant_by_id(&store, "g2").await.unwrap().revoked_at, None);
}

/// `find_any_token` finds an access token (revoked or not) as `Access`, a refresh token (used,
/// revoked or not) as `Refresh`, and nothing as `Neither` — the same states `find_access_token`
/// and `find_refresh_token` report.
pub async fn find_any_token_finds_either_type_with_its_state<S: AccountStore>(store: S) {
    let (_, a1, r1) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let r1 = r1.unwrap();
    let cc = access("cc", None, "app", T0);
    store.insert_access_token(&cc).await.unwrap();
    for (digest, want_access) in [(&a1.digest, true), (&cc.digest, true), (&r1.digest, false)] {
        match store.find_any_token(digest).await.unwrap() {
            FoundToken::Access(t) if want_access => {
                assert_eq!(Some(t), store.find_access_token(digest).await.unwrap());
            }
            FoundToken::Refresh(t) if !want_access => {
                assert_eq!(Some(t), store.find_refresh_token(digest).await.unwrap());
            }
            other => panic!("{digest:?}: {other:?}"),
        }
    }
    assert_eq!(
        store
            .find_any_token(&TokenDigest::of("nobody"))
            .await
            .unwrap(),
        FoundToken::Neither
    );
    // Revoked ones are still found, and read revoked.
    assert!(store.revoke_grant("g1", T0 + 5).await.unwrap());
    store.revoke_access_token(&cc.digest, T0 + 5).await.unwrap();
    for digest in [&a1.digest, &cc.digest] {
        let FoundToken::Access(t) = store.find_any_token(digest).await.unwrap() else {
            panic!("{digest:?} not found");
        };
        assert!(t.revoked);
    }
    let FoundToken::Refresh(t) = store.find_any_token(&r1.digest).await.unwrap() else {
        panic!("refresh token not found");
    };
    assert!(t.revoked);
}

/// `revoke_grant` answers `true` the first time and `false` after (idempotent, keeping the first
/// `revoked_at`), and `false` for an unknown grant.
pub async fn revoke_grant_returns_true_once_then_false<S: AccountStore>(store: S) {
    seed_grant(&store, "g1", "app", "alice", T0, true).await;
    assert!(store.revoke_grant("g1", T0 + 1).await.unwrap());
    assert!(!store.revoke_grant("g1", T0 + 2).await.unwrap());
    assert!(!store.revoke_grant("g1", T0 + 3).await.unwrap());
    assert_eq!(
        grant_by_id(&store, "g1").await.unwrap().revoked_at,
        Some(T0 + 1),
        "a repeated revocation keeps the first revoked_at"
    );
    assert!(!store.revoke_grant("no-such-grant", T0).await.unwrap());
}

/// `revoke_access_token` revokes one access token, idempotently; its grant, the grant's refresh
/// token and sibling tokens stay active; an unknown digest is `Ok`.
pub async fn revoke_access_token_is_idempotent_and_leaves_grant_alone<S: AccountStore>(store: S) {
    let (_, a, r) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let r = r.unwrap();
    let next = rotation("gen2", &r, T0 + 1);
    store
        .rotate_refresh_token(&r.digest, &next, T0 + 1)
        .await
        .unwrap();

    store.revoke_access_token(&a.digest, T0 + 5).await.unwrap();
    store.revoke_access_token(&a.digest, T0 + 6).await.unwrap();
    assert!(access_revoked(&store, &a.digest).await);
    assert!(!access_revoked(&store, &next.access.digest).await);
    assert!(!refresh_revoked(&store, &next.refresh.digest).await);
    assert_eq!(grant_by_id(&store, "g1").await.unwrap().revoked_at, None);

    store
        .revoke_access_token(&digest("unknown"), T0)
        .await
        .unwrap();
    assert_eq!(
        store.find_access_token(&digest("unknown")).await.unwrap(),
        None
    );
}

/// A second `revoke_access_token` does not move the revocation time: purge (which deletes rows
/// revoked longer ago than the retention) still sees the first one.
pub async fn revoke_access_token_keeps_the_first_revocation_time<S: AccountStore>(store: S) {
    store.create_client(&client("app")).await.unwrap();
    let mut token = access("cc", None, "app", T0);
    token.expires_at = T0 + 10 * RETENTION;
    store.insert_access_token(&token).await.unwrap();
    store.revoke_access_token(&token.digest, T0).await.unwrap();
    store
        .revoke_access_token(&token.digest, T0 + 1000)
        .await
        .unwrap();
    let counts = store
        .purge(T0 + RETENTION + 1, policy(1000), false)
        .await
        .unwrap();
    assert_eq!(counts.access_tokens, 1, "revoked at T0, past retention");
    assert_eq!(store.find_access_token(&token.digest).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Rotation
// ---------------------------------------------------------------------------------------------

/// The first rotation is `Rotated`: the old token is marked used with the sealed response, the
/// successor access and refresh tokens are stored, and the successor can rotate in turn. A second
/// rotation of the old token is `NotRotated`, carrying the first `used_at` and sealed response,
/// not revoked, and stores none of its candidate tokens.
pub async fn rotate_rotates_once_then_reports_not_rotated<S: AccountStore>(store: S) {
    let (_, _, r) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let r = r.unwrap();
    let first = rotation("first", &r, T0 + 10);
    assert!(matches!(
        store
            .rotate_refresh_token(&r.digest, &first, T0 + 10)
            .await
            .unwrap(),
        Rotation::Rotated
    ));

    let old = store.find_refresh_token(&r.digest).await.unwrap().unwrap();
    assert_eq!(old.record, r, "the old record itself is unchanged");
    assert_eq!(old.used_at, Some(T0 + 10));
    assert_eq!(
        old.sealed_successor.as_deref(),
        Some(&first.sealed_response[..])
    );
    assert!(!old.revoked, "a used token is not a revoked one");
    assert!(!old.is_active(T0 + 10));

    let new_r = store
        .find_refresh_token(&first.refresh.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new_r.record, first.refresh);
    assert_eq!(new_r.used_at, None);
    assert_eq!(new_r.sealed_successor, None);
    assert!(!new_r.revoked);
    let new_a = store
        .find_access_token(&first.access.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new_a.record, first.access);
    assert!(!new_a.revoked);

    let second = rotation("second", &r, T0 + 11);
    match store
        .rotate_refresh_token(&r.digest, &second, T0 + 11)
        .await
        .unwrap()
    {
        Rotation::NotRotated(state) => {
            assert_eq!(state.record, r);
            assert_eq!(state.used_at, Some(T0 + 10), "the first use's time");
            assert_eq!(
                state.sealed_successor.as_deref(),
                Some(&first.sealed_response[..]),
                "the first rotation's sealed response"
            );
            assert!(!state.revoked);
        }
        other => panic!("expected NotRotated, got {other:?}"),
    }
    assert_eq!(
        store
            .find_refresh_token(&second.refresh.digest)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_access_token(&second.access.digest)
            .await
            .unwrap(),
        None
    );

    // The successor is the grant's current refresh token and rotates in turn.
    let third = rotation("third", &first.refresh, T0 + 12);
    assert!(matches!(
        store
            .rotate_refresh_token(&first.refresh.digest, &third, T0 + 12)
            .await
            .unwrap(),
        Rotation::Rotated
    ));
}

/// Rotating a digest that was never stored is `Unknown` and stores nothing.
pub async fn rotate_unknown_digest_is_unknown<S: AccountStore>(store: S) {
    let (g, _, _) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let ghost = refresh("ghost", &g, T0);
    let input = rotation("from-ghost", &ghost, T0 + 1);
    assert!(matches!(
        store
            .rotate_refresh_token(&ghost.digest, &input, T0 + 1)
            .await
            .unwrap(),
        Rotation::Unknown
    ));
    assert_eq!(
        store
            .find_refresh_token(&input.refresh.digest)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_access_token(&input.access.digest).await.unwrap(),
        None
    );
    assert_eq!(
        grant_by_id(&store, "g1").await.unwrap().last_refreshed_at,
        None
    );
}

/// A refresh token is expired from `expires_at` on: rotating at `expires_at` is `NotRotated`
/// (unused, not revoked) and stores nothing; one second earlier it rotates.
pub async fn rotate_at_or_after_expiry_is_not_rotated<S: AccountStore>(store: S) {
    let (_, _, r1) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let r1 = r1.unwrap();
    let at_expiry = r1.expires_at;
    let input = rotation("late", &r1, at_expiry);
    match store
        .rotate_refresh_token(&r1.digest, &input, at_expiry)
        .await
        .unwrap()
    {
        Rotation::NotRotated(state) => {
            assert_eq!(state.used_at, None);
            assert!(!state.revoked);
            assert_eq!(state.sealed_successor, None);
        }
        other => panic!("expected NotRotated at expires_at, got {other:?}"),
    }
    let after = rotation("later", &r1, at_expiry + 100);
    assert!(matches!(
        store
            .rotate_refresh_token(&r1.digest, &after, at_expiry + 100)
            .await
            .unwrap(),
        Rotation::NotRotated(_)
    ));
    for i in [&input, &after] {
        assert_eq!(
            store.find_refresh_token(&i.refresh.digest).await.unwrap(),
            None
        );
        assert_eq!(
            store.find_access_token(&i.access.digest).await.unwrap(),
            None
        );
    }
    let still = store.find_refresh_token(&r1.digest).await.unwrap().unwrap();
    assert_eq!(
        still.used_at, None,
        "a failed rotation does not mark the token used"
    );
    assert_eq!(
        grant_by_id(&store, "g1").await.unwrap().last_refreshed_at,
        None
    );

    let (_, _, r2) = seed_grant(&store, "g2", "app", "alice", T0, true).await;
    let r2 = r2.unwrap();
    let just_in_time = rotation("just-in-time", &r2, r2.expires_at - 1);
    assert!(matches!(
        store
            .rotate_refresh_token(&r2.digest, &just_in_time, r2.expires_at - 1)
            .await
            .unwrap(),
        Rotation::Rotated
    ));
}

/// Rotating a refresh token of a revoked grant is `NotRotated` with `revoked`, and stores
/// nothing.
pub async fn rotate_revoked_token_is_not_rotated<S: AccountStore>(store: S) {
    let (_, _, r) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let r = r.unwrap();
    store.revoke_grant("g1", T0 + 1).await.unwrap();
    let input = rotation("after-revoke", &r, T0 + 2);
    match store
        .rotate_refresh_token(&r.digest, &input, T0 + 2)
        .await
        .unwrap()
    {
        Rotation::NotRotated(state) => {
            assert!(state.revoked);
            assert_eq!(state.used_at, None);
        }
        other => panic!("expected NotRotated for a revoked token, got {other:?}"),
    }
    assert_eq!(
        store
            .find_refresh_token(&input.refresh.digest)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_access_token(&input.access.digest).await.unwrap(),
        None
    );
    assert_eq!(
        grant_by_id(&store, "g1").await.unwrap().last_refreshed_at,
        None
    );
}

/// Each successful rotation stamps the grant's `last_refreshed_at` with its `now`; other grants
/// are not stamped.
pub async fn rotation_stamps_grant_last_refreshed_at<S: AccountStore>(store: S) {
    let (_, _, r) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    seed_grant(&store, "g2", "app", "alice", T0, true).await;
    let r = r.unwrap();
    assert_eq!(
        grant_by_id(&store, "g1").await.unwrap().last_refreshed_at,
        None
    );
    let first = rotation("first", &r, T0 + 100);
    store
        .rotate_refresh_token(&r.digest, &first, T0 + 100)
        .await
        .unwrap();
    assert_eq!(
        grant_by_id(&store, "g1").await.unwrap().last_refreshed_at,
        Some(T0 + 100)
    );
    let second = rotation("second", &first.refresh, T0 + 5000);
    store
        .rotate_refresh_token(&first.refresh.digest, &second, T0 + 5000)
        .await
        .unwrap();
    let g1 = grant_by_id(&store, "g1").await.unwrap();
    assert_eq!(g1.last_refreshed_at, Some(T0 + 5000));
    assert_eq!(g1.created_at, T0, "created_at never moves");
    assert_eq!(
        grant_by_id(&store, "g2").await.unwrap().last_refreshed_at,
        None
    );
}

/// 20 concurrent rotations of the same old token, each with its own successors: exactly one is
/// `Rotated`, every other is `NotRotated` (used, not revoked), and exactly one candidate
/// successor pair — the winner's — exists afterwards, with the winner's sealed response on the
/// old token.
pub async fn concurrent_rotations_of_one_token_rotate_exactly_once<S: AccountStore>(store: S) {
    const N: usize = 20;
    let (_, _, r) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let r = r.unwrap();
    let inputs: Vec<RotationInput> = (0..N)
        .map(|i| rotation(&format!("candidate-{i}"), &r, T0 + 1))
        .collect();
    let results = join_all(
        inputs
            .iter()
            .map(|input| store.rotate_refresh_token(&r.digest, input, T0 + 1)),
    )
    .await;

    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result.unwrap() {
            Rotation::Rotated => winners.push(i),
            Rotation::NotRotated(state) => {
                assert_eq!(state.used_at, Some(T0 + 1));
                assert!(!state.revoked);
            }
            Rotation::Unknown => panic!("candidate {i}: Unknown for an existing token"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one Rotated, got {winners:?}");
    let winner = winners[0];

    let mut refresh_present = Vec::new();
    let mut access_present = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        if store
            .find_refresh_token(&input.refresh.digest)
            .await
            .unwrap()
            .is_some()
        {
            refresh_present.push(i);
        }
        if store
            .find_access_token(&input.access.digest)
            .await
            .unwrap()
            .is_some()
        {
            access_present.push(i);
        }
    }
    assert_eq!(
        refresh_present,
        [winner],
        "exactly the winner's refresh successor exists"
    );
    assert_eq!(
        access_present,
        [winner],
        "exactly the winner's access token exists"
    );
    let old = store.find_refresh_token(&r.digest).await.unwrap().unwrap();
    assert_eq!(
        old.sealed_successor.as_deref(),
        Some(&inputs[winner].sealed_response[..])
    );
}

// ---------------------------------------------------------------------------------------------
// Authorization codes
// ---------------------------------------------------------------------------------------------

/// `insert_authorization_code` stores every field; `find_authorization_code` returns the code
/// unused and without a grant, and `None` for an unknown digest.
pub async fn inserted_authorization_code_is_found_unused_with_every_field<S: AccountStore>(
    store: S,
) {
    let full = code("full", "app", "alice", T0);
    let mut bare = code("bare", "spa", "bob", T0 + 1);
    bare.code_challenge = None;
    bare.redirect_uri_given = false;
    bare.scope = scope("");
    store.insert_authorization_code(&full).await.unwrap();
    store.insert_authorization_code(&bare).await.unwrap();

    for c in [&full, &bare] {
        assert_eq!(
            store.find_authorization_code(&c.digest).await.unwrap(),
            Some(AuthorizationCodeState {
                record: c.clone(),
                used_at: None,
                grant_id: None,
            }),
            "code must round-trip every field"
        );
    }
    assert_eq!(
        store
            .find_authorization_code(&digest("code/unknown"))
            .await
            .unwrap(),
        None
    );
    // A code digest is not a token digest.
    assert_eq!(store.find_access_token(&full.digest).await.unwrap(), None);
    assert_eq!(store.find_refresh_token(&full.digest).await.unwrap(), None);
}

/// Inserting a code whose digest exists is `Conflict` and leaves the stored code unchanged.
pub async fn insert_authorization_code_with_existing_digest_conflicts<S: AccountStore>(store: S) {
    let first = code("c", "app", "alice", T0);
    store.insert_authorization_code(&first).await.unwrap();
    let mut clash = code("c", "other", "mallory", T0 + 5);
    clash.redirect_uri = "https://evil.example/cb".into();
    let result = store.insert_authorization_code(&clash).await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "expected Conflict, got {result:?}"
    );
    assert_eq!(code_state(&store, &first.digest).await.record, first);
}

/// The first redemption is `Redeemed`: the code is marked used at `now` with the new grant's id,
/// and the grant with its access and refresh tokens is stored. A second redemption, with other
/// candidate tokens, is `AlreadyUsed` carrying the first grant's id (so the caller can revoke
/// it, RFC 6749 §4.1.2), stores none of its candidates and leaves the code as the first use left
/// it.
pub async fn redeem_redeems_once_then_reports_already_used_with_its_grant<S: AccountStore>(
    store: S,
) {
    seed_client_and_user(&store, "app", "alice").await;
    let c = code("c", "app", "alice", T0);
    store.insert_authorization_code(&c).await.unwrap();
    let first = issue("g1", &c, T0 + 10, true);
    assert_eq!(
        redeem(&store, &c.digest, &first, T0 + 10).await.unwrap(),
        Redemption::Redeemed
    );

    let used = code_state(&store, &c.digest).await;
    assert_eq!(used.record, c, "the code record itself is unchanged");
    assert_eq!(used.used_at, Some(T0 + 10));
    assert_eq!(used.grant_id.as_deref(), Some("g1"));
    assert_eq!(grant_by_id(&store, "g1").await, Some(first.grant.clone()));
    let a = store
        .find_access_token(&first.access.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.record, first.access);
    assert!(!a.revoked);
    let first_refresh = first.refresh.clone().unwrap();
    let r = store
        .find_refresh_token(&first_refresh.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.record, first_refresh);
    assert_eq!(r.used_at, None);
    assert!(!r.revoked);

    let second = issue("g2", &c, T0 + 11, true);
    assert_eq!(
        redeem(&store, &c.digest, &second, T0 + 11).await.unwrap(),
        Redemption::AlreadyUsed {
            grant_id: Some("g1".into())
        }
    );
    assert_not_issued(&store, &second, "a second redemption").await;
    assert_eq!(
        code_state(&store, &c.digest).await,
        used,
        "a second redemption changes nothing on the code"
    );
    assert!(
        !access_revoked(&store, &first.access.digest).await,
        "the store reports reuse; revoking the grant is the caller's decision"
    );
}

/// A code is expired from `expires_at` on: redeeming it then is `AlreadyUsed` without a grant id,
/// stores nothing and does not mark the code used; one second earlier it redeems.
pub async fn redeem_at_or_after_expiry_is_already_used_without_a_grant<S: AccountStore>(store: S) {
    seed_client_and_user(&store, "app", "alice").await;
    let c = code("late", "app", "alice", T0);
    store.insert_authorization_code(&c).await.unwrap();
    for (n, at) in [(1, c.expires_at), (2, c.expires_at + 100)] {
        let late = issue(&format!("g-late-{n}"), &c, at, true);
        assert_eq!(
            redeem(&store, &c.digest, &late, at).await.unwrap(),
            Redemption::AlreadyUsed { grant_id: None },
            "redeemed at expires_at{}",
            if n == 1 { "" } else { " + 100" }
        );
        assert_not_issued(&store, &late, "an expired code").await;
    }
    assert_eq!(
        code_state(&store, &c.digest).await,
        AuthorizationCodeState {
            record: c.clone(),
            used_at: None,
            grant_id: None,
        },
        "a refused redemption does not mark the code used"
    );
    assert!(store
        .list_grants(&GrantFilter::default())
        .await
        .unwrap()
        .is_empty());

    let c2 = code("just-in-time", "app", "alice", T0);
    store.insert_authorization_code(&c2).await.unwrap();
    let in_time = issue("g-in-time", &c2, c2.expires_at - 1, false);
    assert_eq!(
        redeem(&store, &c2.digest, &in_time, c2.expires_at - 1)
            .await
            .unwrap(),
        Redemption::Redeemed
    );
}

/// Redeeming a digest that was never stored is `Unknown` and stores nothing.
pub async fn redeem_unknown_code_is_unknown<S: AccountStore>(store: S) {
    let stored = code("stored", "app", "alice", T0);
    store.insert_authorization_code(&stored).await.unwrap();
    let ghost = code("ghost", "app", "alice", T0);
    let i = issue("g-ghost", &ghost, T0 + 1, true);
    assert_eq!(
        redeem(&store, &ghost.digest, &i, T0 + 1).await.unwrap(),
        Redemption::Unknown
    );
    assert_not_issued(&store, &i, "an unknown code").await;
    assert_eq!(
        store.find_authorization_code(&ghost.digest).await.unwrap(),
        None
    );
    assert_eq!(code_state(&store, &stored.digest).await.used_at, None);
}

/// A redemption without a refresh token stores the grant and its access token only.
pub async fn redeem_without_refresh_token_stores_no_refresh_token<S: AccountStore>(store: S) {
    let c = code("c", "app", "alice", T0);
    store.insert_authorization_code(&c).await.unwrap();
    let i = issue("g1", &c, T0 + 1, false);
    assert_eq!(
        redeem(&store, &c.digest, &i, T0 + 1).await.unwrap(),
        Redemption::Redeemed
    );
    assert_eq!(grant_by_id(&store, "g1").await, Some(i.grant.clone()));
    assert!(!access_revoked(&store, &i.access.digest).await);
    assert_eq!(
        store
            .find_refresh_token(&digest("g1/refresh"))
            .await
            .unwrap(),
        None
    );
}

/// A redemption whose grant id, access digest or refresh digest already exists is `Conflict` and
/// atomic: the code stays unused and redeemable, and nothing of the attempt is stored.
pub async fn redeem_with_colliding_grant_or_digest_conflicts_and_leaves_the_code_unused<
    S: AccountStore,
>(
    store: S,
) {
    let (_, existing_a, existing_r) = seed_grant(&store, "g-old", "app", "alice", T0, true).await;
    let existing_r = existing_r.unwrap();
    let c = code("c", "app", "alice", T0);
    store.insert_authorization_code(&c).await.unwrap();

    let same_grant = issue("g-old", &c, T0 + 1, true);
    let mut same_access = issue("g-new", &c, T0 + 1, true);
    same_access.access.digest = existing_a.digest;
    let mut same_refresh = issue("g-new", &c, T0 + 1, true);
    if let Some(r) = same_refresh.refresh.as_mut() {
        r.digest = existing_r.digest;
    }
    for (what, attempt) in [
        ("grant id", &same_grant),
        ("access digest", &same_access),
        ("refresh digest", &same_refresh),
    ] {
        let result = redeem(&store, &c.digest, attempt, T0 + 1).await;
        assert!(
            matches!(result, Err(StoreError::Conflict)),
            "colliding {what}: expected Conflict, got {result:?}"
        );
        assert_eq!(
            code_state(&store, &c.digest).await,
            AuthorizationCodeState {
                record: c.clone(),
                used_at: None,
                grant_id: None,
            },
            "colliding {what}: the code stays unused"
        );
        assert_eq!(grant_by_id(&store, "g-new").await, None, "colliding {what}");
    }
    assert_eq!(
        store
            .find_access_token(&same_refresh.access.digest)
            .await
            .unwrap(),
        None,
        "the access token of the attempt with a colliding refresh digest is rolled back"
    );
    let old = grant_by_id(&store, "g-old").await.unwrap();
    assert_eq!(
        old,
        grant("g-old", "app", "alice", T0),
        "g-old is untouched"
    );
    assert_eq!(
        store
            .find_access_token(&existing_a.digest)
            .await
            .unwrap()
            .unwrap()
            .record,
        existing_a
    );

    let clean = issue("g-new", &c, T0 + 2, true);
    assert_eq!(
        redeem(&store, &c.digest, &clean, T0 + 2).await.unwrap(),
        Redemption::Redeemed,
        "the code is still redeemable"
    );
}

/// 20 concurrent redemptions of one code, each with its own grant and tokens: exactly one is
/// `Redeemed`, every other is `AlreadyUsed` naming the winner's grant, and exactly one grant —
/// the winner's, with its tokens — exists afterwards.
pub async fn concurrent_redemptions_of_one_code_redeem_exactly_once<S: AccountStore>(store: S) {
    const N: usize = 20;
    let c = code("contested", "app", "alice", T0);
    store.insert_authorization_code(&c).await.unwrap();
    let candidates: Vec<Issue> = (0..N)
        .map(|i| issue(&format!("candidate-{i}"), &c, T0 + 1, true))
        .collect();
    let results = join_all(
        candidates
            .iter()
            .map(|i| redeem(&store, &c.digest, i, T0 + 1)),
    )
    .await;

    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Ok(Redemption::Redeemed)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one Redeemed, got {results:?}");
    let winner = &candidates[winners[0]];
    for (i, result) in results.into_iter().enumerate() {
        if i != winners[0] {
            assert_eq!(
                result.unwrap(),
                Redemption::AlreadyUsed {
                    grant_id: Some(winner.grant.grant_id.clone())
                },
                "candidate {i}"
            );
        }
    }
    assert_eq!(
        store.list_grants(&GrantFilter::default()).await.unwrap(),
        vec![winner.grant.clone()],
        "exactly the winner's grant exists"
    );
    for (i, candidate) in candidates.iter().enumerate() {
        let won = i == winners[0];
        assert_eq!(
            store
                .find_access_token(&candidate.access.digest)
                .await
                .unwrap()
                .is_some(),
            won,
            "access token of candidate {i}"
        );
        assert_eq!(
            store
                .find_refresh_token(&candidate.refresh.as_ref().unwrap().digest)
                .await
                .unwrap()
                .is_some(),
            won,
            "refresh token of candidate {i}"
        );
    }
    let state = code_state(&store, &c.digest).await;
    assert_eq!(
        state.grant_id.as_deref(),
        Some(winner.grant.grant_id.as_str())
    );
    assert_eq!(state.used_at, Some(T0 + 1));
}

/// The grant a redemption creates is an ordinary grant: its access token is found and revocable,
/// its refresh token rotates, and revoking it — the caller's answer to a reused code — revokes
/// every token in it, including those issued by rotation since.
pub async fn grant_from_redemption_is_readable_rotatable_and_revocable<S: AccountStore>(store: S) {
    seed_client_and_user(&store, "app", "alice").await;
    let c = code("c", "app", "alice", T0);
    store.insert_authorization_code(&c).await.unwrap();
    let first = issue("g1", &c, T0 + 1, true);
    assert_eq!(
        redeem(&store, &c.digest, &first, T0 + 1).await.unwrap(),
        Redemption::Redeemed
    );
    let r = first.refresh.clone().unwrap();
    assert!(store
        .find_access_token(&first.access.digest)
        .await
        .unwrap()
        .unwrap()
        .is_active(T0 + 1));
    assert!(store
        .find_refresh_token(&r.digest)
        .await
        .unwrap()
        .unwrap()
        .is_active(T0 + 1));

    let next = rotation("next", &r, T0 + 100);
    assert_eq!(
        store
            .rotate_refresh_token(&r.digest, &next, T0 + 100)
            .await
            .unwrap(),
        Rotation::Rotated
    );
    store
        .revoke_access_token(&first.access.digest, T0 + 150)
        .await
        .unwrap();
    assert!(access_revoked(&store, &first.access.digest).await);
    assert!(
        !access_revoked(&store, &next.access.digest).await,
        "revoking one access token leaves the grant alone"
    );

    // The code comes back: the store names the grant, the caller revokes it.
    let again = issue("g-again", &c, T0 + 200, true);
    let Redemption::AlreadyUsed {
        grant_id: Some(reused),
    } = redeem(&store, &c.digest, &again, T0 + 200).await.unwrap()
    else {
        panic!("a reused code must name its grant");
    };
    assert!(store.revoke_grant(&reused, T0 + 200).await.unwrap());
    assert!(!store.revoke_grant(&reused, T0 + 201).await.unwrap());
    for d in [&first.access.digest, &next.access.digest] {
        assert!(access_revoked(&store, d).await);
    }
    for d in [&r.digest, &next.refresh.digest] {
        assert!(refresh_revoked(&store, d).await);
    }
    assert_eq!(
        grant_by_id(&store, "g1").await.unwrap().revoked_at,
        Some(T0 + 200)
    );
}

// ---------------------------------------------------------------------------------------------
// Sessions and consents
// ---------------------------------------------------------------------------------------------

/// `create_session` stores a session; `find_session` returns it unchanged — an expired one too,
/// the caller checks `expires_at` — and `None` for an unknown digest; `delete_session` removes
/// it and is idempotent.
pub async fn created_session_is_found_and_deleted_idempotently<S: AccountStore>(store: S) {
    let live = session("live", "alice", T0);
    let expired = session("expired", "bob", T0 - 2 * SESSION_TTL);
    store.create_session(&live).await.unwrap();
    store.create_session(&expired).await.unwrap();
    assert_eq!(
        store.find_session(&live.digest).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        store.find_session(&expired.digest).await.unwrap(),
        Some(expired.clone()),
        "an expired session is still found"
    );
    let unknown = digest("session/unknown");
    assert_eq!(store.find_session(&unknown).await.unwrap(), None);

    store.delete_session(&live.digest).await.unwrap();
    assert_eq!(store.find_session(&live.digest).await.unwrap(), None);
    store.delete_session(&live.digest).await.unwrap();
    store.delete_session(&unknown).await.unwrap();
    assert_eq!(
        store.find_session(&expired.digest).await.unwrap(),
        Some(expired),
        "other sessions stay"
    );
}

/// A second session with a digest that exists is `Conflict` and keeps the first; once the first
/// is deleted the digest can be used again.
pub async fn create_session_with_existing_digest_conflicts<S: AccountStore>(store: S) {
    let first = session("s", "alice", T0);
    store.create_session(&first).await.unwrap();
    let mut clash = session("s", "mallory", T0 + 10);
    clash.expires_at += 1000;
    let result = store.create_session(&clash).await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "expected Conflict, got {result:?}"
    );
    assert_eq!(
        store.find_session(&first.digest).await.unwrap(),
        Some(first.clone())
    );
    store.delete_session(&first.digest).await.unwrap();
    store.create_session(&clash).await.unwrap();
    assert_eq!(
        store.find_session(&first.digest).await.unwrap(),
        Some(clash)
    );
}

/// `save_consent` records a consent per (user, client); saving again replaces scope and time;
/// `delete_consent` forgets one, idempotently, leaving the others.
pub async fn saved_consent_is_found_replaced_and_deleted<S: AccountStore>(store: S) {
    assert_eq!(store.find_consent("alice", "app").await.unwrap(), None);
    let first = consent("alice", "app", "read", T0);
    store.save_consent(&first).await.unwrap();
    assert_eq!(
        store.find_consent("alice", "app").await.unwrap(),
        Some(first)
    );

    let widened = consent("alice", "app", "write read", T0 + 100);
    store.save_consent(&widened).await.unwrap();
    assert_eq!(
        store.find_consent("alice", "app").await.unwrap(),
        Some(widened.clone()),
        "saving again replaces scope and granted_at"
    );

    let bob = consent("bob", "app", "read", T0 + 1);
    let other = consent("alice", "other", "write", T0 + 2);
    store.save_consent(&bob).await.unwrap();
    store.save_consent(&other).await.unwrap();
    assert_eq!(
        store.find_consent("alice", "app").await.unwrap(),
        Some(widened),
        "consents are per user and client"
    );
    assert_eq!(
        store.find_consent("bob", "app").await.unwrap(),
        Some(bob.clone())
    );
    assert_eq!(
        store.find_consent("alice", "other").await.unwrap(),
        Some(other.clone())
    );
    assert_eq!(store.find_consent("bob", "other").await.unwrap(), None);
    assert_eq!(
        store.find_consent("Alice", "app").await.unwrap(),
        None,
        "names are compared exactly"
    );

    store.delete_consent("alice", "app").await.unwrap();
    assert_eq!(store.find_consent("alice", "app").await.unwrap(), None);
    store.delete_consent("alice", "app").await.unwrap();
    store.delete_consent("nobody", "app").await.unwrap();
    assert_eq!(store.find_consent("bob", "app").await.unwrap(), Some(bob));
    assert_eq!(
        store.find_consent("alice", "other").await.unwrap(),
        Some(other)
    );
}

/// `delete_client` forgets every consent given to that client — a client registered later under
/// the same id must ask again — and keeps other clients' consents and the users' sessions.
pub async fn delete_client_forgets_its_consents<S: AccountStore>(store: S) {
    store.create_client(&client("app")).await.unwrap();
    store.create_client(&client("other")).await.unwrap();
    for c in [
        consent("alice", "app", "read", T0),
        consent("bob", "app", "read write", T0),
        consent("alice", "other", "read", T0),
    ] {
        store.save_consent(&c).await.unwrap();
    }
    let s = session("alice", "alice", T0);
    store.create_session(&s).await.unwrap();

    assert_eq!(store.delete_client("app", T0 + 10).await.unwrap(), Some(0));
    assert_eq!(store.find_consent("alice", "app").await.unwrap(), None);
    assert_eq!(store.find_consent("bob", "app").await.unwrap(), None);
    assert_eq!(
        store.find_consent("alice", "other").await.unwrap(),
        Some(consent("alice", "other", "read", T0))
    );
    assert_eq!(store.find_session(&s.digest).await.unwrap(), Some(s));

    store.create_client(&client("app")).await.unwrap();
    assert_eq!(
        store.find_consent("alice", "app").await.unwrap(),
        None,
        "a re-registered client does not inherit consents"
    );
}

/// `delete_client` discards the client's unused authorization codes (a client re-registered
/// under the same id must not redeem them) and keeps used ones, which reuse detection needs.
pub async fn delete_client_discards_its_unused_codes<S: AccountStore>(store: S) {
    store.create_client(&client("app")).await.unwrap();
    let unused = code("unused", "app", "alice", T0);
    let used = code("used", "app", "alice", T0);
    let others = code("others", "other", "alice", T0);
    for c in [&unused, &used, &others] {
        store.insert_authorization_code(c).await.unwrap();
    }
    let i = issue("g-used", &used, T0 + 1, true);
    assert_eq!(
        redeem(&store, &used.digest, &i, T0 + 1).await.unwrap(),
        Redemption::Redeemed
    );

    assert_eq!(store.delete_client("app", T0 + 2).await.unwrap(), Some(1));
    assert_eq!(
        store.find_authorization_code(&unused.digest).await.unwrap(),
        None
    );
    assert_eq!(
        code_state(&store, &used.digest).await.grant_id.as_deref(),
        Some("g-used")
    );
    assert!(store
        .find_authorization_code(&others.digest)
        .await
        .unwrap()
        .is_some());
}

// ---------------------------------------------------------------------------------------------
// Grant administration
// ---------------------------------------------------------------------------------------------

/// `list_grants` returns matching grants oldest first (ties by `grant_id`), filtering by user,
/// by client, or both; revoked grants are listed too, with their state.
pub async fn list_grants_filters_and_orders_oldest_first<S: AccountStore>(store: S) {
    seed_grant(&store, "g-late", "app", "alice", T0 + 30, true).await;
    seed_grant(&store, "g-early", "app", "bob", T0, false).await;
    seed_grant(&store, "g-mid-b", "other", "alice", T0 + 10, true).await;
    seed_grant(&store, "g-mid-a", "app", "alice", T0 + 10, true).await;
    store.revoke_grant("g-mid-b", T0 + 40).await.unwrap();

    let all = store.list_grants(&GrantFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["g-early", "g-mid-a", "g-mid-b", "g-late"]);
    assert_eq!(
        all[2].revoked_at,
        Some(T0 + 40),
        "revoked grants are listed"
    );
    assert_eq!(all[0], grant("g-early", "app", "bob", T0), "every field");

    assert_eq!(
        ids(&store.list_grants(&by_user("alice")).await.unwrap()),
        ["g-mid-a", "g-mid-b", "g-late"]
    );
    assert_eq!(
        ids(&store.list_grants(&by_client("app")).await.unwrap()),
        ["g-early", "g-mid-a", "g-late"]
    );
    let both = GrantFilter {
        username: Some("alice".into()),
        client_id: Some("other".into()),
    };
    assert_eq!(ids(&store.list_grants(&both).await.unwrap()), ["g-mid-b"]);
    assert!(store
        .list_grants(&by_user("carol"))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_grants(&by_client("ghost"))
        .await
        .unwrap()
        .is_empty());
}

/// `revoke_grants` revokes the matching active grants with their tokens and returns how many;
/// grants already revoked are not counted again, and non-matching grants are untouched.
pub async fn revoke_grants_by_user_or_client_counts_active_grants<S: AccountStore>(store: S) {
    let (_, a1, r1) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    seed_grant(&store, "g2", "other", "alice", T0 + 1, true).await;
    let (_, a3, r3) = seed_grant(&store, "g3", "app", "bob", T0 + 2, true).await;
    seed_grant(&store, "g4", "other", "bob", T0 + 3, false).await;
    let (_, a5, _) = seed_grant(&store, "g5", "third", "carol", T0 + 4, false).await;

    assert_eq!(
        store
            .revoke_grants(&by_user("alice"), T0 + 10)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .revoke_grants(&by_user("alice"), T0 + 11)
            .await
            .unwrap(),
        0,
        "already revoked grants are not counted again"
    );
    assert!(access_revoked(&store, &a1.digest).await);
    assert!(refresh_revoked(&store, &r1.unwrap().digest).await);
    assert!(
        !access_revoked(&store, &a3.digest).await,
        "bob's grants are untouched"
    );

    // g2 (alice/other) is already revoked: only g4 counts.
    assert_eq!(
        store
            .revoke_grants(&by_client("other"), T0 + 12)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        grant_by_id(&store, "g2").await.unwrap().revoked_at,
        Some(T0 + 10)
    );
    assert_eq!(
        grant_by_id(&store, "g4").await.unwrap().revoked_at,
        Some(T0 + 12)
    );

    let both = GrantFilter {
        username: Some("bob".into()),
        client_id: Some("app".into()),
    };
    assert_eq!(store.revoke_grants(&both, T0 + 13).await.unwrap(), 1);
    assert!(access_revoked(&store, &a3.digest).await);
    assert!(refresh_revoked(&store, &r3.unwrap().digest).await);

    assert_eq!(
        store
            .revoke_grants(&by_user("nobody"), T0 + 14)
            .await
            .unwrap(),
        0
    );
    assert!(!access_revoked(&store, &a5.digest).await);
    assert_eq!(grant_by_id(&store, "g5").await.unwrap().revoked_at, None);
}

// ---------------------------------------------------------------------------------------------
// Purge
// ---------------------------------------------------------------------------------------------

/// Purge deletes access and refresh tokens from `expires_at` on (a token expiring exactly at
/// `now` goes; one expiring a second later stays) and counts them.
pub async fn purge_removes_expired_access_and_refresh_tokens<S: AccountStore>(store: S) {
    store.create_client(&client("app")).await.unwrap();
    let now = T0 + ACCESS_TTL; // the cc tokens issued at T0 expire exactly now
    let expired = access("expired", None, "app", T0 - 1);
    let at_boundary = access("at-boundary", None, "app", T0);
    let alive = access("alive", None, "app", T0 + 1);
    for t in [&expired, &at_boundary, &alive] {
        store.insert_access_token(t).await.unwrap();
    }
    // A grant whose refresh token has expired but whose access token is alive.
    seed_client_and_user(&store, "app", "alice").await;
    let g = grant("g1", "app", "alice", T0);
    let a = access("g1/access", Some(&g), "app", now - 10);
    let mut r = refresh("g1/refresh", &g, T0);
    r.expires_at = now;
    store.create_grant(&g, &a, Some(&r)).await.unwrap();

    let counts = store.purge(now, policy(1000), false).await.unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            access_tokens: 2,
            refresh_tokens: 1,
            grants: 0,
            authorization_codes: 0,
            sessions: 0,
            revocation_events: 0
        }
    );
    assert_eq!(
        store.find_access_token(&expired.digest).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_access_token(&at_boundary.digest).await.unwrap(),
        None
    );
    assert!(store
        .find_access_token(&alive.digest)
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.find_refresh_token(&r.digest).await.unwrap(), None);
    assert!(store.find_access_token(&a.digest).await.unwrap().is_some());
    assert!(
        grant_by_id(&store, "g1").await.is_some(),
        "a grant with a live token stays"
    );
}

/// Purge keeps a used refresh token until it expires (reuse detection needs it), then deletes it.
pub async fn purge_keeps_used_but_unexpired_refresh_tokens<S: AccountStore>(store: S) {
    let (_, _, r) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let r = r.unwrap();
    let next = rotation("next", &r, T0 + 1);
    store
        .rotate_refresh_token(&r.digest, &next, T0 + 1)
        .await
        .unwrap();

    let counts = store
        .purge(T0 + 2 * ACCESS_TTL, policy(1000), false)
        .await
        .unwrap();
    assert_eq!(
        counts.refresh_tokens, 0,
        "used but unexpired refresh tokens stay"
    );
    assert_eq!(counts.access_tokens, 2, "both access tokens expired");
    let used = store.find_refresh_token(&r.digest).await.unwrap().unwrap();
    assert_eq!(used.used_at, Some(T0 + 1));
    assert!(used.sealed_successor.is_some());

    let counts = store
        .purge(r.expires_at, policy(1000), false)
        .await
        .unwrap();
    assert_eq!(counts.refresh_tokens, 1, "the used token goes once expired");
    assert_eq!(store.find_refresh_token(&r.digest).await.unwrap(), None);
    assert!(store
        .find_refresh_token(&next.refresh.digest)
        .await
        .unwrap()
        .is_some());
}

/// Purge deletes rows revoked longer ago than the retention — tokens revoked one by one and
/// tokens of revoked grants alike — and keeps recently revoked ones.
pub async fn purge_removes_long_revoked_rows_but_not_recent_ones<S: AccountStore>(store: S) {
    let long_lived = |mut t: AccessTokenRecord| {
        t.expires_at = T0 + 100 * RETENTION;
        t
    };
    store.create_client(&client("app")).await.unwrap();
    let old_revoked = long_lived(access("old-revoked", None, "app", T0));
    let new_revoked = long_lived(access("new-revoked", None, "app", T0));
    let never_revoked = long_lived(access("never-revoked", None, "app", T0));
    for t in [&old_revoked, &new_revoked, &never_revoked] {
        store.insert_access_token(t).await.unwrap();
    }
    seed_client_and_user(&store, "app", "alice").await;
    let mk = |id: &str| {
        let g = grant(id, "app", "alice", T0);
        let a = long_lived(access(&format!("{id}/access"), Some(&g), "app", T0));
        let r = refresh(&format!("{id}/refresh"), &g, T0);
        (g, a, r)
    };
    let (g_old, a_old, r_old) = mk("g-old");
    let (g_new, a_new, r_new) = mk("g-new");
    store
        .create_grant(&g_old, &a_old, Some(&r_old))
        .await
        .unwrap();
    store
        .create_grant(&g_new, &a_new, Some(&r_new))
        .await
        .unwrap();

    store
        .revoke_access_token(&old_revoked.digest, T0 + 10)
        .await
        .unwrap();
    store.revoke_grant("g-old", T0 + 10).await.unwrap();
    let now = T0 + 10 + RETENTION + 1;
    store
        .revoke_access_token(&new_revoked.digest, now - 5)
        .await
        .unwrap();
    store.revoke_grant("g-new", now - 5).await.unwrap();

    let counts = store.purge(now, policy(1000), false).await.unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            access_tokens: 2,
            refresh_tokens: 1,
            grants: 1,
            authorization_codes: 0,
            sessions: 0,
            revocation_events: 0
        },
        "old-revoked, g-old's access and refresh tokens, and g-old itself"
    );
    assert_eq!(
        store.find_access_token(&old_revoked.digest).await.unwrap(),
        None
    );
    assert_eq!(store.find_access_token(&a_old.digest).await.unwrap(), None);
    assert_eq!(store.find_refresh_token(&r_old.digest).await.unwrap(), None);
    assert_eq!(grant_by_id(&store, "g-old").await, None);

    assert!(access_revoked(&store, &new_revoked.digest).await);
    assert!(access_revoked(&store, &a_new.digest).await);
    assert!(refresh_revoked(&store, &r_new.digest).await);
    assert!(grant_by_id(&store, "g-new")
        .await
        .unwrap()
        .revoked_at
        .is_some());
    assert!(!access_revoked(&store, &never_revoked.digest).await);

    // Within the retention the row is kept; once past it, it goes.
    let counts = store
        .purge(now - 5 + RETENTION - 1, policy(1000), false)
        .await
        .unwrap();
    assert_eq!(counts, PurgeCounts::default());
    let counts = store
        .purge(now - 5 + RETENTION + 1, policy(1000), false)
        .await
        .unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            access_tokens: 2,
            refresh_tokens: 1,
            grants: 1,
            authorization_codes: 0,
            sessions: 0,
            revocation_events: 0
        }
    );
    assert!(store
        .find_access_token(&never_revoked.digest)
        .await
        .unwrap()
        .is_some());
}

/// Purge deletes a grant once none of its tokens remain — whether they expired or were revoked
/// long ago — and keeps a grant with any token left, even an expired grant's used refresh token.
pub async fn purge_removes_grants_left_without_tokens<S: AccountStore>(store: S) {
    // g-dead: access token only, expired.
    seed_grant(&store, "g-dead", "app", "alice", T0, false).await;
    // g-live: access expired but refresh token alive.
    seed_grant(&store, "g-live", "app", "alice", T0, true).await;
    // g-fresh: everything alive.
    let (_, fresh_a, _) =
        seed_grant(&store, "g-fresh", "app", "bob", T0 + 2 * ACCESS_TTL, false).await;

    let now = T0 + 2 * ACCESS_TTL;
    let counts = store.purge(now, policy(1000), false).await.unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            access_tokens: 2,
            refresh_tokens: 0,
            grants: 1,
            authorization_codes: 0,
            sessions: 0,
            revocation_events: 0
        }
    );
    assert_eq!(
        ids(&store.list_grants(&GrantFilter::default()).await.unwrap()),
        ["g-live", "g-fresh"]
    );
    assert!(store
        .find_access_token(&fresh_a.digest)
        .await
        .unwrap()
        .is_some());

    // Once g-live's refresh token expires, the grant goes with it.
    let counts = store
        .purge(T0 + REFRESH_TTL, policy(1000), false)
        .await
        .unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            access_tokens: 1,
            refresh_tokens: 1,
            grants: 2,
            authorization_codes: 0,
            sessions: 0,
            revocation_events: 0
        }
    );
    assert!(store
        .list_grants(&GrantFilter::default())
        .await
        .unwrap()
        .is_empty());
}

/// Purge keeps an authorization code, used or not, for the retention past its expiry — so a late
/// second use is still recognised as reuse and names the grant to revoke, even after that grant
/// itself was purged — and deletes it from `expires_at + retention` on.
pub async fn purge_keeps_codes_for_the_retention_past_expiry<S: AccountStore>(store: S) {
    let now = T0 + 10 * RETENTION;
    let cutoff = now - RETENTION;
    let old = code_expiring("old", cutoff - 1);
    let at_boundary = code_expiring("at-boundary", cutoff);
    let recent = code_expiring("recent", cutoff + 1);
    let used = code_expiring("used", cutoff + 1);
    let live = code_expiring("live", now + 1);
    for c in [&old, &at_boundary, &recent, &used, &live] {
        store.insert_authorization_code(c).await.unwrap();
    }
    // `used` was redeemed in time; its grant's only token has long expired.
    let first = issue("g-used", &used, used.issued_at + 1, false);
    assert_eq!(
        redeem(&store, &used.digest, &first, used.issued_at + 1)
            .await
            .unwrap(),
        Redemption::Redeemed
    );

    let counts = store.purge(now, policy(1000), false).await.unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            access_tokens: 1,
            refresh_tokens: 0,
            grants: 1,
            authorization_codes: 2,
            sessions: 0,
            revocation_events: 0,
        },
        "old and at-boundary codes; g-used with its expired access token"
    );
    for c in [&old, &at_boundary] {
        assert_eq!(
            store.find_authorization_code(&c.digest).await.unwrap(),
            None
        );
    }
    assert_eq!(grant_by_id(&store, "g-used").await, None);

    // Within the retention, a late use is still detected.
    let late = issue("g-late", &recent, now, true);
    assert_eq!(
        redeem(&store, &recent.digest, &late, now).await.unwrap(),
        Redemption::AlreadyUsed { grant_id: None }
    );
    let reuse = issue("g-reuse", &used, now, true);
    assert_eq!(
        redeem(&store, &used.digest, &reuse, now).await.unwrap(),
        Redemption::AlreadyUsed {
            grant_id: Some("g-used".into())
        },
        "the code outlives its purged grant and still names it"
    );
    let in_time = issue("g-live", &live, now, true);
    assert_eq!(
        redeem(&store, &live.digest, &in_time, now).await.unwrap(),
        Redemption::Redeemed
    );

    // At the end of their retention, the rest go too.
    let counts = store
        .purge(live.expires_at + RETENTION, policy(1000), true)
        .await
        .unwrap();
    assert_eq!(counts.authorization_codes, 3);
}

/// Purge deletes browser sessions from their `expires_at` on, whatever the retention, and keeps
/// live ones.
pub async fn purge_removes_sessions_from_their_expiry<S: AccountStore>(store: S) {
    let now = T0 + SESSION_TTL;
    let expired = session("expired", "alice", T0 - 1);
    let at_boundary = session("at-boundary", "alice", T0);
    let live = session("live", "bob", T0 + 1);
    for s in [&expired, &at_boundary, &live] {
        store.create_session(s).await.unwrap();
    }
    let counts = store.purge(now, policy(1000), false).await.unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            sessions: 2,
            ..PurgeCounts::default()
        }
    );
    assert_eq!(store.find_session(&expired.digest).await.unwrap(), None);
    assert_eq!(store.find_session(&at_boundary.digest).await.unwrap(), None);
    assert_eq!(
        store.find_session(&live.digest).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        store
            .purge(live.expires_at, policy(1000), false)
            .await
            .unwrap(),
        PurgeCounts {
            sessions: 1,
            ..PurgeCounts::default()
        }
    );
}

/// What [`seed_purge_mix`] stored, by kind.
struct PurgeMix {
    tokens: Vec<TokenDigest>,
    codes: Vec<TokenDigest>,
    sessions: Vec<TokenDigest>,
}

/// Rows of every kind, for a purge at `T0 + 2 * RETENTION`: some past their end, some not.
async fn seed_purge_mix<S: AccountStore>(store: &S) -> PurgeMix {
    let now = T0 + 2 * RETENTION;
    // A code expired beyond the retention goes; one expired within it and a live one stay.
    let codes = [
        code("long-expired", "app", "alice", T0),
        code_expiring("recently-expired", now - RETENTION + 1),
        code("live", "app", "alice", now - 1),
    ];
    for c in &codes {
        store.insert_authorization_code(c).await.unwrap();
    }
    // An expired session goes, a live one stays.
    let sessions = [
        session("expired", "alice", now - SESSION_TTL),
        session("live", "bob", now - SESSION_TTL + 1),
    ];
    for s in &sessions {
        store.create_session(s).await.unwrap();
    }
    // Expired grant-less token, long-revoked grant, expired grant, live grant.
    store.create_client(&client("app")).await.unwrap();
    let cc = access("cc-expired", None, "app", T0);
    store.insert_access_token(&cc).await.unwrap();
    let (_, a1, r1) = seed_grant(store, "g-revoked", "app", "alice", T0, true).await;
    store.revoke_grant("g-revoked", T0).await.unwrap();
    let (_, a2, _) = seed_grant(store, "g-expired", "app", "alice", T0, false).await;
    let (_, a3, r3) = seed_grant(store, "g-live", "app", "bob", T0 + 2 * RETENTION, true).await;
    PurgeMix {
        tokens: vec![
            cc.digest,
            a1.digest,
            r1.unwrap().digest,
            a2.digest,
            a3.digest,
            r3.unwrap().digest,
        ],
        codes: codes.iter().map(|c| c.digest).collect(),
        sessions: sessions.iter().map(|s| s.digest).collect(),
    }
}

/// A dry run returns the same counts a real purge then returns, and deletes nothing.
pub async fn purge_dry_run_counts_the_same_and_deletes_nothing<S: AccountStore>(store: S) {
    let mix = seed_purge_mix(&store).await;
    let now = T0 + 2 * RETENTION;
    let dry = store.purge(now, policy(1000), true).await.unwrap();
    assert_eq!(
        dry,
        PurgeCounts {
            access_tokens: 3,
            refresh_tokens: 1,
            grants: 2,
            authorization_codes: 1,
            sessions: 1,
            revocation_events: 0,
        }
    );
    // Nothing was deleted.
    let dry_again = store.purge(now, policy(1000), true).await.unwrap();
    assert_eq!(dry_again, dry, "a dry run is repeatable");
    for (i, d) in mix.tokens.iter().enumerate() {
        let present = store.find_access_token(d).await.unwrap().is_some()
            || store.find_refresh_token(d).await.unwrap().is_some();
        assert!(present, "token #{i} must survive a dry run");
    }
    for (i, d) in mix.codes.iter().enumerate() {
        let present = store.find_authorization_code(d).await.unwrap().is_some();
        assert!(present, "code #{i} must survive a dry run");
    }
    for (i, d) in mix.sessions.iter().enumerate() {
        let present = store.find_session(d).await.unwrap().is_some();
        assert!(present, "session #{i} must survive a dry run");
    }
    assert_eq!(
        store
            .list_grants(&GrantFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );

    let real = store.purge(now, policy(1000), false).await.unwrap();
    assert_eq!(real, dry, "the real purge deletes what the dry run counted");
    assert_eq!(
        ids(&store.list_grants(&GrantFilter::default()).await.unwrap()),
        ["g-live"]
    );
    let codes_left: Vec<bool> =
        join_all(mix.codes.iter().map(|d| store.find_authorization_code(d)))
            .await
            .into_iter()
            .map(|r| r.unwrap().is_some())
            .collect();
    assert_eq!(
        codes_left,
        [false, true, true],
        "long-expired, recently-expired, live"
    );
    let sessions_left: Vec<bool> = join_all(mix.sessions.iter().map(|d| store.find_session(d)))
        .await
        .into_iter()
        .map(|r| r.unwrap().is_some())
        .collect();
    assert_eq!(sessions_left, [false, true], "expired, live");
    assert_eq!(
        store.purge(now, policy(1000), false).await.unwrap(),
        PurgeCounts::default(),
        "nothing left to purge"
    );
}

/// Purge (and its dry run) handles more rows than `batch_size`: every batch is processed and
/// counted, and live rows survive.
pub async fn purge_processes_more_rows_than_batch_size<S: AccountStore>(store: S) {
    store.create_client(&client("app")).await.unwrap();
    let mut expired_cc = Vec::new();
    for i in 0..10 {
        let t = access(&format!("cc-{i}"), None, "app", T0 + i);
        store.insert_access_token(&t).await.unwrap();
        expired_cc.push(t.digest);
    }
    for i in 0..4 {
        seed_grant(&store, &format!("g-{i}"), "app", "alice", T0 + i, false).await;
    }
    let live = access("live", None, "app", T0 + 2 * ACCESS_TTL);
    store.insert_access_token(&live).await.unwrap();
    let (_, live_a, live_r) =
        seed_grant(&store, "g-live", "app", "bob", T0 + 2 * ACCESS_TTL, true).await;
    let now = T0 + 2 * ACCESS_TTL;
    let mut dead_codes = Vec::new();
    for i in 0..7 {
        let c = code_expiring(&format!("dead-{i}"), now - RETENTION - i);
        store.insert_authorization_code(&c).await.unwrap();
        dead_codes.push(c.digest);
    }
    let live_code = code_expiring("live", now - RETENTION + 1);
    store.insert_authorization_code(&live_code).await.unwrap();
    let mut dead_sessions = Vec::new();
    for i in 0..5 {
        let s = session(&format!("dead-{i}"), "alice", now - SESSION_TTL - i);
        store.create_session(&s).await.unwrap();
        dead_sessions.push(s.digest);
    }
    let live_session = session("live", "alice", now - SESSION_TTL + 1);
    store.create_session(&live_session).await.unwrap();

    let expected = PurgeCounts {
        access_tokens: 14,
        refresh_tokens: 0,
        grants: 4,
        authorization_codes: 7,
        sessions: 5,
        revocation_events: 0,
    };
    assert_eq!(store.purge(now, policy(3), true).await.unwrap(), expected);
    assert_eq!(store.purge(now, policy(3), false).await.unwrap(), expected);
    for d in &expired_cc {
        assert_eq!(store.find_access_token(d).await.unwrap(), None);
    }
    for d in &dead_codes {
        assert_eq!(store.find_authorization_code(d).await.unwrap(), None);
    }
    for d in &dead_sessions {
        assert_eq!(store.find_session(d).await.unwrap(), None);
    }
    assert!(store
        .find_authorization_code(&live_code.digest)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .find_session(&live_session.digest)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        ids(&store.list_grants(&GrantFilter::default()).await.unwrap()),
        ["g-live"]
    );
    assert!(store
        .find_access_token(&live.digest)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .find_access_token(&live_a.digest)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .find_refresh_token(&live_r.unwrap().digest)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.purge(now, policy(1), false).await.unwrap(),
        PurgeCounts::default()
    );
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

/// Expands into one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per
/// conformance case, in one of two forms:
///
/// * `conformance_suite!($make)`: `$make` is an expression evaluating to a future that yields a
///   fresh, empty store; it is evaluated once per test.
/// * `conformance_suite!(run = $run)`: `$run` names an async function called once per test as
///   `$run(name, case).await`, where `name` is the case's name (`&'static str`) and `case` the
///   case function (`FnOnce(S) -> impl Future<Output = ()>`). The runner creates the store,
///   awaits `case(store)` and cleans up — for a backend whose store must be set up and torn down
///   around each case, such as a temporary database file.
///
/// ```text
/// tokenwarden_conformance::conformance_suite!(async { MemoryStore::default() });
/// tokenwarden_conformance::conformance_suite!(run = on_temp_file);
/// ```
///
/// The list of cases is written once, in [`for_each_conformance_case!`].
#[macro_export]
macro_rules! conformance_suite {
    // First: `run = f` also parses as an assignment expression.
    (run = $run:expr $(,)?) => {
        $crate::for_each_conformance_case!($crate::__conformance_test_with_runner; $run);
    };
    ($make:expr $(,)?) => {
        $crate::for_each_conformance_case!($crate::__conformance_test_with_store; $make);
    };
}

/// The one list of conformance cases: invokes `$callback!($($args)*; case)` for each case, where
/// `case` is the name of a case function of this crate. [`conformance_suite!`] is built on it; a
/// backend needing another shape of test can use it too, and still runs every case added later.
///
/// ```text
/// macro_rules! my_test {
///     ($store:expr; $case:ident) => { /* fn $case() { tokenwarden_conformance::$case(...) } */ };
/// }
/// tokenwarden_conformance::for_each_conformance_case!(my_test; make_store());
/// ```
#[macro_export]
macro_rules! for_each_conformance_case {
    ($callback:path; $($args:tt)*) => {
        $crate::__for_each_conformance_case!(
            $callback; ($($args)*);
            created_client_is_found_with_every_field,
            create_client_with_taken_id_conflicts,
            list_clients_is_ordered_by_client_id,
            set_client_secret_replaces_digest_or_reports_missing_client,
            delete_client_revokes_its_grants_and_grantless_tokens,
            delete_missing_client_returns_none,
            created_user_is_found_by_name,
            create_user_with_taken_name_conflicts,
            inserted_access_token_is_found_by_digest,
            insert_access_token_with_existing_digest_fails,
            create_grant_with_refresh_stores_all_three,
            create_grant_without_refresh_stores_no_refresh_token,
            create_grant_is_all_or_nothing,
            revoking_grant_makes_its_tokens_read_revoked,
            find_any_token_finds_either_type_with_its_state,
            revoke_grant_returns_true_once_then_false,
            revoke_access_token_is_idempotent_and_leaves_grant_alone,
            revoke_access_token_keeps_the_first_revocation_time,
            rotate_rotates_once_then_reports_not_rotated,
            rotate_unknown_digest_is_unknown,
            rotate_at_or_after_expiry_is_not_rotated,
            rotate_revoked_token_is_not_rotated,
            rotation_stamps_grant_last_refreshed_at,
            concurrent_rotations_of_one_token_rotate_exactly_once,
            inserted_authorization_code_is_found_unused_with_every_field,
            insert_authorization_code_with_existing_digest_conflicts,
            redeem_redeems_once_then_reports_already_used_with_its_grant,
            redeem_at_or_after_expiry_is_already_used_without_a_grant,
            redeem_unknown_code_is_unknown,
            redeem_without_refresh_token_stores_no_refresh_token,
            redeem_with_colliding_grant_or_digest_conflicts_and_leaves_the_code_unused,
            concurrent_redemptions_of_one_code_redeem_exactly_once,
            grant_from_redemption_is_readable_rotatable_and_revocable,
            created_session_is_found_and_deleted_idempotently,
            create_session_with_existing_digest_conflicts,
            saved_consent_is_found_replaced_and_deleted,
            delete_client_forgets_its_consents,
            delete_client_discards_its_unused_codes,
            list_grants_filters_and_orders_oldest_first,
            revoke_grants_by_user_or_client_counts_active_grants,
            purge_removes_expired_access_and_refresh_tokens,
            purge_keeps_used_but_unexpired_refresh_tokens,
            purge_removes_long_revoked_rows_but_not_recent_ones,
            purge_removes_grants_left_without_tokens,
            purge_keeps_codes_for_the_retention_past_expiry,
            purge_removes_sessions_from_their_expiry,
            purge_dry_run_counts_the_same_and_deletes_nothing,
            purge_processes_more_rows_than_batch_size,
            feed_of_a_fresh_store_is_empty,
            revoke_access_token_appends_a_token_event_only_when_it_revokes,
            revoke_grant_appends_one_grant_event,
            revoke_grants_appends_one_event_per_grant_it_revokes,
            delete_client_appends_exactly_one_client_event,
            revocation_events_pages_after_a_cursor,
            concurrent_revocations_number_events_without_gaps,
            purge_removes_feed_events_past_retention_and_raises_the_floor,
        );
    };
}

/// Implementation detail of [`for_each_conformance_case!`]: one callback invocation per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_conformance_case {
    ($callback:path; $args:tt; $($case:ident),* $(,)?) => {
        $( $crate::__conformance_invoke!($callback; $args; $case); )*
    };
}

/// Implementation detail of [`for_each_conformance_case!`]: unwraps the parenthesized arguments
/// (they repeat once per case, so they travel as one token tree).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_invoke {
    ($callback:path; ($($args:tt)*); $case:ident) => {
        $callback!($($args)*; $case);
    };
}

/// Implementation detail of [`conformance_suite!`]: a test on a store made by `$make`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_with_store {
    ($make:expr; $case:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let store = $make.await;
            $crate::$case(store).await;
        }
    };
}

/// Implementation detail of [`conformance_suite!`]: a test run by `$run`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_with_runner {
    ($run:expr; $case:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            $run(::core::stringify!($case), $crate::$case).await;
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Revocation feed
// ---------------------------------------------------------------------------------------------

async fn feed<S: AccountStore>(store: &S) -> FeedPage {
    store.revocation_events(0, 10_000).await.unwrap()
}

fn token_event(seq: u64, at: Timestamp, a: &AccessTokenRecord) -> RevocationEvent {
    RevocationEvent {
        seq,
        at,
        kind: RevocationKind::Token,
        client_id: a.client_id.clone(),
        token: Some(a.digest),
        grant_id: a.grant_id.clone(),
        subject: None,
    }
}

fn grant_event(seq: u64, at: Timestamp, g: &Grant) -> RevocationEvent {
    RevocationEvent {
        seq,
        at,
        kind: RevocationKind::Grant,
        client_id: g.client_id.clone(),
        token: None,
        grant_id: Some(g.grant_id.clone()),
        subject: Some(g.username.clone()),
    }
}

/// A new store's feed has no events, head 0 and floor 0.
pub async fn feed_of_a_fresh_store_is_empty<S: AccountStore>(store: S) {
    assert_eq!(feed(&store).await, FeedPage::default());
}

/// Revoking an access token appends one `Token` event (with its grant, if any) — but only when
/// it revokes something: a second revocation, an unknown token and a token whose grant is
/// already revoked append nothing.
pub async fn revoke_access_token_appends_a_token_event_only_when_it_revokes<S: AccountStore>(
    store: S,
) {
    let (_, a1, _) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    let (g2, a2, _) = seed_grant(&store, "g2", "app", "bob", T0, false).await;
    let cc = access("cc", None, "app", T0);
    store.insert_access_token(&cc).await.unwrap();

    store.revoke_access_token(&a1.digest, T0 + 5).await.unwrap();
    store.revoke_access_token(&a1.digest, T0 + 6).await.unwrap();
    store
        .revoke_access_token(&digest("never-issued"), T0 + 6)
        .await
        .unwrap();
    store.revoke_access_token(&cc.digest, T0 + 7).await.unwrap();
    assert!(store.revoke_grant("g2", T0 + 8).await.unwrap());
    store.revoke_access_token(&a2.digest, T0 + 9).await.unwrap();

    assert_eq!(
        feed(&store).await,
        FeedPage {
            events: vec![
                token_event(1, T0 + 5, &a1),
                token_event(2, T0 + 7, &cc),
                grant_event(3, T0 + 8, &g2),
            ],
            head: 3,
            floor: 0,
        }
    );
    assert_eq!(
        feed(&store).await.events[1].grant_id,
        None,
        "cc tokens have no grant"
    );
}

/// `revoke_grant` appends one `Grant` event naming client and user, the first time only;
/// an unknown grant appends nothing.
pub async fn revoke_grant_appends_one_grant_event<S: AccountStore>(store: S) {
    let (g, _, _) = seed_grant(&store, "g1", "app", "alice", T0, true).await;
    assert!(store.revoke_grant("g1", T0 + 1).await.unwrap());
    assert!(!store.revoke_grant("g1", T0 + 2).await.unwrap());
    assert!(!store.revoke_grant("no-such-grant", T0 + 3).await.unwrap());
    assert_eq!(
        feed(&store).await,
        FeedPage {
            events: vec![grant_event(1, T0 + 1, &g)],
            head: 1,
            floor: 0,
        }
    );
}

/// `revoke_grants` appends one `Grant` event per grant it revoked (already revoked and
/// unmatched grants append nothing), numbered without gaps.
pub async fn revoke_grants_appends_one_event_per_grant_it_revokes<S: AccountStore>(store: S) {
    let (a1, _, _) = seed_grant(&store, "a1", "app", "alice", T0, true).await;
    let (a2, _, _) = seed_grant(&store, "a2", "other", "alice", T0 + 1, true).await;
    let (a3, _, _) = seed_grant(&store, "a3", "app", "alice", T0 + 2, false).await;
    seed_grant(&store, "b1", "app", "bob", T0, true).await;
    assert!(store.revoke_grant("a3", T0 + 5).await.unwrap());

    assert_eq!(
        store
            .revoke_grants(&by_user("alice"), T0 + 10)
            .await
            .unwrap(),
        2
    );
    let page = feed(&store).await;
    assert_eq!(page.head, 3);
    assert_eq!(page.events.first(), Some(&grant_event(1, T0 + 5, &a3)));
    let mut rest: Vec<RevocationEvent> = page.events.into_iter().skip(1).collect();
    assert_eq!(
        rest.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![2, 3],
        "events are numbered in order without gaps"
    );
    // The order of grants within one call is the backend's; the set is not.
    rest.sort_by(|x, y| x.grant_id.cmp(&y.grant_id));
    let mut expected = vec![grant_event(0, T0 + 10, &a1), grant_event(0, T0 + 10, &a2)];
    for (e, x) in rest.iter().zip(expected.iter_mut()) {
        x.seq = e.seq;
    }
    assert_eq!(rest, expected);
}

/// Deleting a client appends exactly one `Client` event, however many grants and tokens it had;
/// deleting a missing client appends nothing.
pub async fn delete_client_appends_exactly_one_client_event<S: AccountStore>(store: S) {
    seed_grant(&store, "g1", "app", "alice", T0, true).await;
    seed_grant(&store, "g2", "app", "bob", T0, true).await;
    store
        .insert_access_token(&access("cc", None, "app", T0))
        .await
        .unwrap();
    assert_eq!(store.delete_client("app", T0 + 3).await.unwrap(), Some(2));
    assert_eq!(store.delete_client("app", T0 + 4).await.unwrap(), None);
    assert_eq!(
        feed(&store).await,
        FeedPage {
            events: vec![RevocationEvent {
                seq: 1,
                at: T0 + 3,
                kind: RevocationKind::Client,
                client_id: "app".into(),
                token: None,
                grant_id: None,
                subject: None,
            }],
            head: 1,
            floor: 0,
        }
    );
}

/// `revocation_events(after, limit)` returns the events after the cursor, oldest first, at most
/// `limit`, with the current head.
pub async fn revocation_events_pages_after_a_cursor<S: AccountStore>(store: S) {
    seed_client_and_user(&store, "app", "alice").await;
    let mut tokens = Vec::new();
    for i in 0..5 {
        let a = access(&format!("cc{i}"), None, "app", T0);
        store.insert_access_token(&a).await.unwrap();
        store.revoke_access_token(&a.digest, T0 + i).await.unwrap();
        tokens.push(a);
    }
    let page = store.revocation_events(2, 2).await.unwrap();
    assert_eq!(
        page,
        FeedPage {
            events: vec![
                token_event(3, T0 + 2, &tokens[2]),
                token_event(4, T0 + 3, &tokens[3]),
            ],
            head: 5,
            floor: 0,
        }
    );
    assert_eq!(store.revocation_events(5, 10).await.unwrap().events, vec![]);
    assert_eq!(store.revocation_events(5, 10).await.unwrap().head, 5);
    assert_eq!(
        store
            .revocation_events(0, 10)
            .await
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
}

/// Concurrent revocations get gapless sequence numbers, one event per token.
pub async fn concurrent_revocations_number_events_without_gaps<S: AccountStore>(store: S) {
    seed_client_and_user(&store, "app", "alice").await;
    let tokens: Vec<AccessTokenRecord> = (0..30)
        .map(|i| access(&format!("cc{i}"), None, "app", T0))
        .collect();
    for a in &tokens {
        store.insert_access_token(a).await.unwrap();
    }
    // Each token twice, concurrently: still one event per token.
    join_all(
        tokens
            .iter()
            .chain(tokens.iter())
            .map(|a| store.revoke_access_token(&a.digest, T0 + 1)),
    )
    .await
    .into_iter()
    .for_each(|r| r.unwrap());
    let page = feed(&store).await;
    assert_eq!(page.head, 30);
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<u64>>()
    );
    let mut seen: Vec<TokenDigest> = page.events.iter().filter_map(|e| e.token).collect();
    seen.sort();
    let mut expected: Vec<TokenDigest> = tokens.iter().map(|a| a.digest).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

/// Purge deletes events older than the event retention, raises the floor to the last one
/// deleted and leaves the head; a dry run counts the same and deletes nothing.
pub async fn purge_removes_feed_events_past_retention_and_raises_the_floor<S: AccountStore>(
    store: S,
) {
    seed_client_and_user(&store, "app", "alice").await;
    let mut tokens = Vec::new();
    for i in 0..3 {
        let a = access(&format!("cc{i}"), None, "app", T0);
        store.insert_access_token(&a).await.unwrap();
        store
            .revoke_access_token(&a.digest, T0 + 10 * i)
            .await
            .unwrap();
        tokens.push(a);
    }
    let retention = 1000;
    let p = PurgePolicy {
        revoked_retention: 100 * 365 * 24 * 3600,
        batch_size: 1,
        event_retention: retention,
    };
    let now = T0 + 15 + retention;
    let dry = store.purge(now, p, true).await.unwrap();
    assert_eq!(dry.revocation_events, 2);
    assert_eq!(
        feed(&store).await.events.len(),
        3,
        "a dry run deletes nothing"
    );
    assert_eq!(feed(&store).await.floor, 0);

    let done = store.purge(now, p, false).await.unwrap();
    assert_eq!(done.revocation_events, 2);
    assert_eq!(
        feed(&store).await,
        FeedPage {
            events: vec![token_event(3, T0 + 20, &tokens[2])],
            head: 3,
            floor: 2,
        }
    );
    assert_eq!(
        store.purge(now, p, false).await.unwrap().revocation_events,
        0
    );
    // Numbering continues after the head, not after the remaining events.
    let a = access("after-purge", None, "app", now);
    store.insert_access_token(&a).await.unwrap();
    store.revoke_access_token(&a.digest, now).await.unwrap();
    let page = feed(&store).await;
    assert_eq!(page.head, 4);
    assert_eq!(page.floor, 2);
    assert_eq!(page.events.last(), Some(&token_event(4, now, &a)));
}
