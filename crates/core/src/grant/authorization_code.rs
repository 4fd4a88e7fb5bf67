//! The authorization code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.5, §4.6).

use bytes::Bytes;

use super::MintedGrant;
use crate::crypto::TokenDigest;
use crate::error::OAuthError;
use crate::model::Client;
use crate::pkce::verify_s256;
use crate::server::{AuthorizationServer, Outcome};
use crate::store::{Redemption, Store};
use crate::token::Failure;
use crate::wire::Form;

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("authorization code is invalid, expired or already used")
}

/// Exchanges a code for an access token (and a refresh token when the client is registered for
/// `refresh_token`), creating the grant that rotation and revocation then work on.
pub(crate) async fn exchange<S: Store>(
    server: &AuthorizationServer<S>,
    client: &Client,
    form: &Form,
) -> Result<(Bytes, Outcome), Failure> {
    let code = form
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("missing code"))?;
    let digest = TokenDigest::of(code);
    let now = server.clock.now();
    let state = server
        .store
        .find_authorization_code(&digest)
        .await?
        .ok_or_else(invalid)?;
    let record = &state.record;
    // RFC 6749 §4.1.3: "ensure that the authorization code was issued to the authenticated
    // confidential client, or if the client is public, ensure that the code was issued to
    // "client_id" in the request".
    if record.client_id != client.client_id {
        return Err(invalid().into());
    }
    if state.used_at.is_some() {
        return Err(code_reuse(server, state.grant_id.as_deref(), now).await);
    }
    if now >= record.expires_at {
        return Err(invalid().into());
    }
    // RFC 6749 §4.1.3: redirect_uri is "REQUIRED, if the "redirect_uri" parameter was included in
    // the authorization request …, and their values MUST be identical."
    match form.get("redirect_uri") {
        Some(uri) if uri != record.redirect_uri => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            )
            .into())
        }
        None if record.redirect_uri_given => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri is required: the authorization request had one",
            )
            .into())
        }
        _ => {}
    }
    // RFC 7636 §4.6: "If the values are not equal, an error response indicating "invalid_grant"
    // … MUST be returned." A verifier for a code issued without a challenge is refused too, so
    // PKCE cannot be stripped from one side only.
    match (&record.code_challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if verify_s256(verifier, challenge) => {}
        (None, None) => {}
        (Some(_), None) => return Err(OAuthError::invalid_grant("missing code_verifier").into()),
        _ => {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            )
            .into())
        }
    }
    let minted: MintedGrant = server.mint_user_grant(client, &record.username, &record.scope)?;
    match server
        .store
        .redeem_authorization_code(
            &digest,
            &minted.grant,
            &minted.access,
            minted.refresh.as_ref(),
            now,
        )
        .await?
    {
        Redemption::Redeemed => Ok((minted.body, Outcome::TokenIssued)),
        Redemption::AlreadyUsed { grant_id } => {
            Err(code_reuse(server, grant_id.as_deref(), now).await)
        }
        Redemption::Unknown => Err(invalid().into()),
    }
}

/// RFC 6749 §4.1.2: "If an authorization code is used more than once, the authorization server
/// MUST deny the request and SHOULD revoke (when possible) all tokens previously issued based on
/// that authorization code."
async fn code_reuse<S: Store>(
    server: &AuthorizationServer<S>,
    grant_id: Option<&str>,
    now: i64,
) -> Failure {
    if let Some(grant_id) = grant_id {
        if let Err(e) = server.store.revoke_grant(grant_id, now).await {
            return e.into();
        }
    }
    Failure {
        error: OAuthError::invalid_grant(
            "authorization code was already used; tokens issued from it are revoked",
        )
        .into(),
        outcome: Outcome::ReuseDetected,
    }
}
