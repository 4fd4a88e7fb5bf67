//! The axum extractor (feature `axum`): the claims [`crate::BearerLayer`] put in the request.

use std::convert::Infallible;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::claims::TokenClaims;

/// The validated token's claims, for handlers behind a [`crate::BearerLayer`]:
///
/// ```no_run
/// use tokenwarden_resource::Claims;
/// async fn me(claims: Claims) -> String {
///     format!("hello {}", claims.subject.as_deref().unwrap_or("?"))
/// }
/// ```
///
/// On a route the layer does not protect there are no claims: `Claims` then answers `500`
/// (fail closed — the route was meant to be protected), and `Option<Claims>` gives `None`.
#[derive(Clone, Debug)]
pub struct Claims(pub Arc<TokenClaims>);

impl Deref for Claims {
    type Target = TokenClaims;

    fn deref(&self) -> &TokenClaims {
        &self.0
    }
}

/// `Claims` was asked for on a route without the layer.
#[derive(Clone, Copy, Debug)]
pub struct MissingClaims;

impl IntoResponse for MissingClaims {
    fn into_response(self) -> Response {
        tracing::error!("Claims extracted on a route not protected by BearerLayer");
        let body = r#"{"error":"server_error","error_description":"The resource server is misconfigured"}"#;
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = MissingClaims;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<TokenClaims>>()
            .cloned()
            .map(Claims)
            .ok_or(MissingClaims)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Arc<TokenClaims>>()
            .cloned()
            .map(Claims))
    }
}
