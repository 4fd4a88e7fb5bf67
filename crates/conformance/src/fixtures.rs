//! Record builders shared by the backends' own tests (the differential run, backend-specific
//! cases): plain values with every field set, named after what they build.
#![allow(missing_docs)]

use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::{
    AccessTokenRecord, AuthorizationCodeRecord, Client, Grant, GrantType, RefreshTokenRecord,
    Scope, User,
};
use tokenwarden_core::store::RotationInput;

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

/// An authorization code `token` for `client_id`/`username`, issued at `iat`, valid 600 s.
pub fn code(token: &str, client_id: &str, username: &str, iat: i64) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        digest: d(token),
        client_id: client_id.to_owned(),
        username: username.to_owned(),
        redirect_uri: format!("https://{client_id}.example/cb"),
        redirect_uri_given: true,
        scope: scope("read write"),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        issued_at: iat,
        expires_at: iat + 600,
    }
}
