//! `reqwest-middleware` integration: with [`AuthMiddleware`] in the stack, `client.get(url)
//! .send()` is authorized, refreshed and retried transparently.
//!
//! Errors from the manager arrive as `reqwest_middleware::Error::Middleware`; downcast the
//! `anyhow::Error` to [`crate::Error`] to tell [`crate::Error::ReconnectRequired`] or
//! [`crate::Error::NotReplayable`] apart.

use http::header::AUTHORIZATION;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use tracing::debug;

use crate::error::Error;
use crate::manager::{bearer_header, TokenManager};

/// Adds `Authorization: Bearer` from a [`TokenManager`]; on a 401 refreshes (if the token is still
/// the one that failed) and sends the request exactly once more, when its body can be replayed. A
/// streaming body cannot: the caller gets [`Error::NotReplayable`] (after the refresh). A second
/// 401 is returned to the caller as a response: no loops.
#[derive(Clone, Debug)]
pub struct AuthMiddleware {
    manager: TokenManager,
}

impl AuthMiddleware {
    /// Middleware over `manager`.
    pub fn new(manager: TokenManager) -> Self {
        Self { manager }
    }
}

impl TokenManager {
    /// `client` with [`AuthMiddleware`] on top.
    pub fn authorized_client(
        &self,
        client: reqwest::Client,
    ) -> reqwest_middleware::ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(client)
            .with(AuthMiddleware::new(self.clone()))
            .build()
    }
}

fn to_middleware_error(error: Error) -> reqwest_middleware::Error {
    reqwest_middleware::Error::Middleware(anyhow::Error::new(error))
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let token = self
            .manager
            .access_token()
            .await
            .map_err(to_middleware_error)?;
        let replay = request.try_clone();
        request.headers_mut().insert(
            AUTHORIZATION,
            bearer_header(&token).map_err(to_middleware_error)?,
        );
        let response = next.clone().run(request, extensions).await?;
        if response.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        debug!("the resource server answered 401; refreshing");
        let renewed = self
            .manager
            .refresh_after_unauthorized(&token)
            .await
            .map_err(to_middleware_error)?;
        let Some(mut replay) = replay else {
            debug!("the request body is a stream and cannot be replayed");
            return Err(to_middleware_error(Error::NotReplayable));
        };
        replay.headers_mut().insert(
            AUTHORIZATION,
            bearer_header(&renewed).map_err(to_middleware_error)?,
        );
        // Exactly one retry; whatever it answers goes back to the caller.
        next.run(replay, extensions).await
    }
}
