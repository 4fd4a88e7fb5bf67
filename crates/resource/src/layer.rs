//! The tower middleware: [`BearerLayer`] wraps a service in [`BearerService`], which lets a request
//! through only with a valid bearer token carrying the required scopes, and hands the handler the
//! token's claims as an `Arc<TokenClaims>` request extension.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{ready, Either, Ready};
use http::{Request, Response};
use tower::{Layer, Service};
use tracing::error;

use crate::bearer::{bearer_token, is_scope_token, Rejection};
use crate::claims::TokenClaims;
use crate::validator::{ValidationError, Validator};

/// A [`tower::Layer`] protecting a service with bearer tokens (RFC 6750). Build it with
/// [`Validator::layer`]; add scopes with [`Self::require_scope`].
///
/// | request | answer |
/// |---|---|
/// | no `Authorization` header, or another scheme | `401`, `WWW-Authenticate: Bearer realm="api"` |
/// | malformed `Bearer` header, or several `Authorization` headers | `400`, `… error="invalid_request", error_description="…"` |
/// | token not active (unknown, expired, revoked, not an access token) | `401`, `… error="invalid_token", error_description="…"` |
/// | active, but a required scope missing | `403`, `… error="insufficient_scope", error_description="…", scope="<required>"` |
/// | introspection failed (network, timeout, 5xx, bad answer) | `503` (never let through) |
/// | valid | the inner service, with `Arc<TokenClaims>` in the request extensions |
///
/// Error answers carry `Cache-Control: no-store` and, except the bare `401`, a JSON body
/// `{"error", "error_description"}`.
#[derive(Clone)]
pub struct BearerLayer {
    /// One `Arc` for everything: each request clones the layer into its future.
    shared: Arc<LayerShared>,
}

#[derive(Clone)]
struct LayerShared {
    validator: Validator,
    policy: Policy,
}

#[derive(Clone, Debug)]
struct Policy {
    realm: String,
    required: Vec<String>,
    /// The `scope` attribute of `insufficient_scope` challenges.
    required_joined: String,
    /// A required scope that cannot be a scope-token: every request gets `500` (fail closed).
    misconfigured: bool,
}

impl std::fmt::Debug for BearerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerLayer")
            .field("realm", &self.shared.policy.realm)
            .field("required_scopes", &self.shared.policy.required)
            .finish_non_exhaustive()
    }
}

impl BearerLayer {
    /// A layer requiring a valid token and no particular scope.
    pub fn new(validator: Validator) -> Self {
        let realm = validator.realm().to_owned();
        Self {
            shared: Arc::new(LayerShared {
                validator,
                policy: Policy {
                    realm,
                    required: Vec::new(),
                    required_joined: String::new(),
                    misconfigured: false,
                },
            }),
        }
    }

    /// Also requires `scope` (exact, case-sensitive). Several calls require all of them. A value
    /// that is not an RFC 6750 §3 scope-token (empty, or with spaces, `"`, `\`, controls,
    /// non-ASCII) makes the layer answer `500` to every request, rather than guess.
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        let policy = &mut Arc::make_mut(&mut self.shared).policy;
        if !is_scope_token(&scope) {
            error!(
                scope = %scope.escape_debug(),
                "required scope is not a valid scope-token; every request will be refused with 500"
            );
            policy.misconfigured = true;
        }
        if !policy.required.contains(&scope) {
            policy.required.push(scope);
            policy.required_joined = policy.required.join(" ");
        }
        self
    }

    /// Overrides the validator's realm for this layer's challenges (cleaned as
    /// [`crate::ValidatorBuilder::realm`] does).
    pub fn realm(mut self, realm: impl AsRef<str>) -> Self {
        Arc::make_mut(&mut self.shared).policy.realm = crate::bearer::clean_realm(realm.as_ref());
        self
    }

    /// The scopes this layer requires.
    pub fn required_scopes(&self) -> &[String] {
        &self.shared.policy.required
    }

    /// The synchronous part of [`Self::authorize`]: `Some` when the answer needs no
    /// introspection (a rejection of the header, or a cached outcome), `None` otherwise.
    fn authorize_now(
        &self,
        headers: &http::HeaderMap,
    ) -> Option<Result<Arc<TokenClaims>, Rejection>> {
        let LayerShared { validator, policy } = self.shared.as_ref();
        if policy.misconfigured {
            return Some(Err(Rejection::Misconfigured));
        }
        let token = match bearer_token(headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Some(Err(Rejection::MissingToken)),
            Err(rejection) => return Some(Err(rejection)),
        };
        let claims = match validator.validate_cached(token)? {
            Ok(claims) => claims,
            Err(ValidationError::InvalidToken) => return Some(Err(Rejection::InvalidToken)),
            Err(ValidationError::Unavailable) => return Some(Err(Rejection::Unavailable)),
        };
        if !claims.has_scopes(policy.required.iter().map(String::as_str)) {
            return Some(Err(Rejection::InsufficientScope));
        }
        Some(Ok(claims))
    }

    async fn authorize(&self, headers: &http::HeaderMap) -> Result<Arc<TokenClaims>, Rejection> {
        let LayerShared { validator, policy } = self.shared.as_ref();
        if policy.misconfigured {
            return Err(Rejection::Misconfigured);
        }
        let token = bearer_token(headers)?.ok_or(Rejection::MissingToken)?;
        let claims = validator
            .validate(token)
            .await
            .map_err(|error| match error {
                ValidationError::InvalidToken => Rejection::InvalidToken,
                ValidationError::Unavailable => Rejection::Unavailable,
            })?;
        if !claims.has_scopes(policy.required.iter().map(String::as_str)) {
            return Err(Rejection::InsufficientScope);
        }
        Ok(claims)
    }

    fn reject<B: From<Bytes>>(&self, rejection: Rejection) -> Response<B> {
        let policy = &self.shared.policy;
        rejection.to_response(&policy.realm, &policy.required_joined)
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`BearerLayer`].
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    layer: BearerLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    /// The inner service's own future on the fast path (a cached token: no allocation, no
    /// clone of the inner service), a ready answer for a rejection decided without I/O, and a
    /// boxed future only when the token has to be introspected.
    type Future = Either<
        S::Future,
        Either<
            Ready<Result<Self::Response, Self::Error>>,
            Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>,
        >,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.layer.authorize_now(request.headers()) {
            Some(Ok(claims)) => {
                request.extensions_mut().insert(claims);
                // `self.inner` is the instance `poll_ready` was called on.
                return Either::Left(self.inner.call(request));
            }
            Some(Err(rejection)) => {
                return Either::Right(Either::Left(ready(Ok(self.layer.reject(rejection)))));
            }
            None => {}
        }
        // The clone may not be ready; the instance polled ready goes into the future (tower's
        // "clone and swap" idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Either::Right(Either::Right(Box::pin(async move {
            match layer.authorize(request.headers()).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(rejection) => Ok(layer.reject(rejection)),
            }
        })))
    }
}
