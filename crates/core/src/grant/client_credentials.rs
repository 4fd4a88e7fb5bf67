//! The client credentials grant (RFC 6749 §4.4).

use bytes::Bytes;

use super::{resolve_scope, token_response_body};
use crate::crypto::TokenDigest;
use crate::model::{AccessTokenRecord, Client};
use crate::random::new_access_token;
use crate::server::{AuthorizationServer, Outcome};
use crate::store::Store;
use crate::token::{Failure, TokenResponse};
use crate::wire::Form;

/// Issues an access token to the authenticated confidential client. RFC 6749 §4.4.3: "A refresh
/// token SHOULD NOT be included." The token belongs to no grant; it is durable once this returns.
pub(crate) async fn exchange<S: Store>(
    server: &AuthorizationServer<S>,
    client: &Client,
    form: &Form,
) -> Result<(Bytes, Outcome), Failure> {
    let scope = resolve_scope(form.get("scope"), &client.scope)?;
    let now = server.clock.now();
    let token = new_access_token(server.random.as_ref(), server.clock.now_millis())?;
    let record = AccessTokenRecord {
        digest: TokenDigest::of(token.secret()),
        grant_id: None,
        client_id: client.client_id.clone(),
        username: None,
        scope: scope.clone(),
        issued_at: now,
        expires_at: now + server.config.access_token_ttl,
    };
    let body = token_response_body(&TokenResponse {
        access_token: token.secret(),
        token_type: "Bearer",
        expires_in: server.config.access_token_ttl,
        refresh_token: None,
        scope: scope.to_string(),
    })?;
    server.store.insert_access_token(&record).await?;
    Ok((body, Outcome::TokenIssued))
}
