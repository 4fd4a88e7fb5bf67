//! Token requests, one module per grant (RFC 6749 §4.1.3, §4.4.2, §6). Each builds an
//! `http::Request<Bytes>`; [`crate::token::parse_token_response`] reads every answer.

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;
