//! # tokenwarden
//!
//! The authorization server (`tokenwarden serve`) and the admin CLI, on top of
//! [`tokenwarden_core`] (protocol) and [`tokenwarden_sqlite`] (the embedded default store). The
//! HTTP layer ([`http`]) is a thin axum adapter: it turns an axum request into an
//! `http::Request<Bytes>`, calls the core, and sends back the core's `http::Response<Bytes>`.
#![warn(missing_docs)]

pub mod admin;
pub mod backend;
pub mod cli;
pub mod duration;
pub mod feed;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod remote;
pub mod serve;
pub mod session;
