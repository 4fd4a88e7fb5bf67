//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).
//!
//! Every use rotates: the presented token is marked used and a successor issued, in one
//! compare-and-set ([`Store::rotate_refresh_token`]). The successor response is stored sealed
//! under a key derived from the presented token, so a retry of that token within the grace window
//! (a client that lost the response) gets **the same** response back, byte for byte, instead of a
//! new branch or a logout. After the grace window, re-presenting a used token is reuse: somebody
//! else may hold it, so the whole grant is revoked.

use bytes::Bytes;

use super::{resolve_scope, token_response_body};
use crate::clock::Timestamp;
use crate::crypto::{open_successor, seal_successor, TokenDigest};
use crate::error::OAuthError;
use crate::model::{AccessTokenRecord, Client, RefreshTokenRecord, RefreshTokenState};
use crate::random::{new_access_token, new_refresh_token};
use crate::server::{AuthorizationServer, Outcome};
use crate::store::{Rotation, RotationInput, Store};
use crate::token::{Failure, TokenResponse};
use crate::wire::Form;

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("refresh token is invalid, expired or revoked")
}

/// Exchanges a refresh token for a new access token and a new refresh token.
pub(crate) async fn exchange<S: Store>(
    server: &AuthorizationServer<S>,
    client: &Client,
    form: &Form,
) -> Result<(Bytes, Outcome), Failure> {
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("missing refresh_token"))?;
    let old_digest = TokenDigest::of(presented);
    let now = server.clock.now();
    let state = server
        .store
        .find_refresh_token(&old_digest)
        .await?
        .ok_or_else(invalid)?;
    // RFC 6749 §6: the server MUST "ensure that the refresh token was issued to the authenticated
    // client". Another client's token is answered like an unknown one, so it reveals nothing.
    if state.record.client_id != client.client_id {
        return Err(invalid().into());
    }
    if state.used_at.is_some() {
        return replay_or_reuse(server, presented, state, now).await;
    }
    if state.revoked || now >= state.record.expires_at {
        return Err(invalid().into());
    }
    // RFC 6749 §6: the requested scope "MUST NOT include any scope not originally granted by the
    // resource owner, and if omitted is treated as equal to the scope originally granted".
    let access_scope = resolve_scope(form.get("scope"), &state.record.scope)?;

    let random = server.random.as_ref();
    let millis = server.clock.now_millis();
    let access_token = new_access_token(random, millis)?;
    let refresh_token = new_refresh_token(random, millis)?;
    let old = &state.record;
    let body = token_response_body(&TokenResponse {
        access_token: access_token.secret(),
        token_type: "Bearer",
        expires_in: server.config.access_token_ttl,
        refresh_token: Some(refresh_token.secret()),
        scope: access_scope.to_string(),
    })?;
    let input = RotationInput {
        access: AccessTokenRecord {
            digest: TokenDigest::of(access_token.secret()),
            grant_id: Some(old.grant_id.clone()),
            client_id: old.client_id.clone(),
            username: Some(old.username.clone()),
            scope: access_scope,
            issued_at: now,
            expires_at: now + server.config.access_token_ttl,
        },
        // RFC 6749 §6: "the refresh token scope MUST be identical to that of the refresh token
        // included by the client in the request."
        refresh: RefreshTokenRecord {
            digest: TokenDigest::of(refresh_token.secret()),
            grant_id: old.grant_id.clone(),
            client_id: old.client_id.clone(),
            username: old.username.clone(),
            scope: old.scope.clone(),
            issued_at: now,
            expires_at: now + server.config.refresh_token_ttl,
        },
        sealed_response: seal_successor(presented, &body, random)
            .map_err(|_| OAuthError::server_error())?,
    };
    match server
        .store
        .rotate_refresh_token(&old_digest, &input, now)
        .await?
    {
        Rotation::Rotated => Ok((body, Outcome::TokenRefreshed)),
        // Lost the race to a concurrent refresh with the same token: answer as its retry.
        Rotation::NotRotated(state) => replay_or_reuse(server, presented, state, now).await,
        Rotation::Unknown => Err(invalid().into()),
    }
}

/// A used refresh token was presented. Within the grace window, and while its successor is still
/// the grant's current refresh token, return the successor response again; otherwise it is reuse
/// and the grant is revoked.
async fn replay_or_reuse<S: Store>(
    server: &AuthorizationServer<S>,
    presented: &str,
    state: RefreshTokenState,
    now: Timestamp,
) -> Result<(Bytes, Outcome), Failure> {
    if state.revoked {
        return Err(invalid().into());
    }
    let Some(used_at) = state.used_at else {
        // Not used, so the compare-and-set failed on expiry.
        return Err(invalid().into());
    };
    let grace = server.config.refresh_grace;
    if grace > 0 && now - used_at <= grace {
        if let Some(body) = successor_if_current(server, presented, &state).await? {
            return Ok((body, Outcome::GraceReplay));
        }
    }
    // RFC 9700 §4.14.2: if a used refresh token is presented, "the authorization server cannot
    // determine which party submitted the invalid refresh token … it will revoke the active
    // refresh token", here the whole grant.
    server
        .store
        .revoke_grant(&state.record.grant_id, now)
        .await?;
    Err(Failure {
        error: OAuthError::invalid_grant(
            "refresh token was already used; the grant has been revoked",
        )
        .into(),
        outcome: Outcome::ReuseDetected,
    })
}

/// Opens the sealed successor response and checks that its refresh token has not itself been
/// used: a retry is of the *previous* token only.
async fn successor_if_current<S: Store>(
    server: &AuthorizationServer<S>,
    presented: &str,
    state: &RefreshTokenState,
) -> Result<Option<Bytes>, Failure> {
    let Some(sealed) = state.sealed_successor.as_deref() else {
        return Ok(None);
    };
    let Ok(body) = open_successor(presented, sealed) else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Successor {
        refresh_token: String,
    }
    let Ok(successor) = serde_json::from_slice::<Successor>(&body) else {
        return Ok(None);
    };
    let current = server
        .store
        .find_refresh_token(&TokenDigest::of(&successor.refresh_token))
        .await?;
    match current {
        Some(s) if s.used_at.is_none() && !s.revoked => Ok(Some(Bytes::copy_from_slice(&body))),
        _ => Ok(None),
    }
}
