//! The HTTP seam. Protocol code builds `http::Request<Bytes>` and parses `http::Response<Bytes>`
//! (as oauth2-rs does); an [`HttpClient`] carries them. [`ReqwestClient`] is the default; tests and
//! other stacks plug in their own.

use std::error::Error as StdError;
use std::fmt;

use bytes::Bytes;

/// Sends one request and returns the whole response. Must not follow redirects: a token
/// request's credentials must not be replayed to wherever a `Location` points.
#[async_trait::async_trait]
pub trait HttpClient: Send + Sync + fmt::Debug {
    /// Executes `request`. A non-2xx status is a response, not an error; errors are for requests
    /// that got no response (network, TLS, timeouts).
    async fn execute(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError>;
}

/// A request that got no response.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl HttpError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a message and its cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// Responses larger than this are refused: every protocol response here is a small JSON object.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[cfg(feature = "reqwest")]
pub use self::reqwest_client::ReqwestClient;

#[cfg(feature = "reqwest")]
mod reqwest_client {
    use super::{HttpClient, HttpError, MAX_RESPONSE_BYTES};
    use bytes::{Bytes, BytesMut};

    /// [`HttpClient`] over `reqwest`, with redirects disabled. https needs a TLS backend: build
    /// with the `rustls-tls` feature, or pass your own TLS-enabled `reqwest::Client` to
    /// [`ReqwestClient::from_client`] (and disable redirects on it).
    #[derive(Clone, Debug)]
    pub struct ReqwestClient {
        client: reqwest::Client,
    }

    impl ReqwestClient {
        /// A client that never follows redirects.
        pub fn new() -> Result<Self, HttpError> {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| HttpError::with_source("cannot build the HTTP client", e))?;
            Ok(Self { client })
        }

        /// Wraps an existing client (its redirect policy is yours to choose).
        pub fn from_client(client: reqwest::Client) -> Self {
            Self { client }
        }

        /// The underlying client.
        pub fn client(&self) -> &reqwest::Client {
            &self.client
        }
    }

    #[async_trait::async_trait]
    impl HttpClient for ReqwestClient {
        async fn execute(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<Bytes>, HttpError> {
            let request = reqwest::Request::try_from(request)
                .map_err(|e| HttpError::with_source("invalid request", without_url(e)))?;
            let mut response = self
                .client
                .execute(request)
                .await
                .map_err(|e| HttpError::with_source(describe(&e), without_url(e)))?;
            let mut builder = http::Response::builder()
                .status(response.status())
                .version(response.version());
            if let Some(headers) = builder.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| HttpError::with_source("reading the response body", without_url(e)))?
            {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::new("response body too large"));
                }
                body.extend_from_slice(&chunk);
            }
            builder
                .body(body.freeze())
                .map_err(|e| HttpError::with_source("invalid response", e))
        }
    }

    fn describe(error: &reqwest::Error) -> String {
        let what = if error.is_connect() {
            "connection failed"
        } else if error.is_timeout() {
            "timed out"
        } else if error.is_builder() {
            "request refused by the HTTP client (an https URL in a build without TLS?)"
        } else {
            "request failed"
        };
        match error.url() {
            Some(url) => format!("{what}: {}", url.as_str()),
            None => what.to_owned(),
        }
    }

    /// Our messages name the URL already; endpoint URLs carry no secrets, but keep errors short.
    fn without_url(error: reqwest::Error) -> reqwest::Error {
        error.without_url()
    }
}
