//! `protected-api`: the notes API of this crate's library, protected by tokenwarden-resource.
//!
//! ```text
//! TOKENWARDEN_CLIENT_SECRET=… protected-api --issuer http://127.0.0.1:8080 --client-id notes-api
//! protected-api --no-auth                      # same API, no layer (throughput baseline)
//! ```
//!
//! The client must be a resource server (`tokenwarden client create --name notes-api
//! --introspect`). The secret is read from `TOKENWARDEN_CLIENT_SECRET` only, never from a flag.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use protected_api::{app, Notes};
use tokenwarden_resource::{ClientSecret, Validator};

#[derive(Debug, Parser)]
#[command(
    name = "protected-api",
    about = "A notes API protected by tokenwarden-resource (GET /notes: scope read; POST /notes: scope write; GET /me)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "PROTECTED_API_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Serve the same API without the bearer layer (a throughput baseline).
    #[arg(long)]
    no_auth: bool,
    /// Issuer of the authorization server: endpoints come from its RFC 8414 metadata.
    #[arg(long, env = "TOKENWARDEN_ISSUER", required_unless_present_any = ["no_auth", "introspection_endpoint"])]
    issuer: Option<String>,
    /// Introspection endpoint (instead of, or overriding, discovery).
    #[arg(long, env = "TOKENWARDEN_INTROSPECTION_ENDPOINT")]
    introspection_endpoint: Option<String>,
    /// Revocation feed endpoint (instead of, or overriding, discovery).
    #[arg(long, env = "TOKENWARDEN_REVOCATION_FEED_ENDPOINT")]
    revocation_feed_endpoint: Option<String>,
    /// This API's client id (a client created with `--introspect`). The secret comes from
    /// TOKENWARDEN_CLIENT_SECRET.
    #[arg(long, env = "TOKENWARDEN_CLIENT_ID", default_value = "notes-api")]
    client_id: String,
    /// Realm of the WWW-Authenticate challenges.
    #[arg(long, default_value = "notes")]
    realm: String,
    /// Longest an active introspection answer is cached, in seconds.
    #[arg(long, default_value_t = 300)]
    cache_max_ttl: u64,
    /// Seconds the cache stays in use after the revocation feed is lost.
    #[arg(long, default_value_t = 10)]
    feed_stale_bound: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let validator = if args.no_auth {
        None
    } else {
        Some(validator(&args).await?)
    };
    let router = app(validator.as_ref(), Notes::default());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let mode = if args.no_auth {
        "no auth"
    } else {
        "bearer tokens"
    };
    println!("protected-api listening on http://{address} ({mode})");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn validator(args: &Args) -> anyhow::Result<Validator> {
    let Ok(secret) = std::env::var("TOKENWARDEN_CLIENT_SECRET") else {
        bail!("TOKENWARDEN_CLIENT_SECRET is not set (or use --no-auth)");
    };
    let mut builder = Validator::builder()
        .client_credentials(&args.client_id, ClientSecret::new(secret))
        .realm(&args.realm)
        .cache_max_ttl(Duration::from_secs(args.cache_max_ttl))
        .feed_stale_bound(Duration::from_secs(args.feed_stale_bound));
    if let Some(issuer) = &args.issuer {
        builder = builder.issuer(issuer);
    }
    if let Some(url) = &args.introspection_endpoint {
        builder = builder.introspection_endpoint(url);
    }
    if let Some(url) = &args.revocation_feed_endpoint {
        builder = builder.revocation_feed_endpoint(url);
    }
    let validator = builder
        .build()
        .await
        .context("configuring token validation")?;
    // Serve either way: until the feed is up every request is introspected (fail safe).
    match tokio::time::timeout(Duration::from_secs(5), validator.feed_connected()).await {
        Ok(true) => tracing::info!("revocation feed connected: introspection results are cached"),
        Ok(false) => tracing::warn!("no revocation feed: every request is introspected"),
        Err(_) => tracing::warn!(
            "revocation feed not connected yet: every request is introspected until it is"
        ),
    }
    Ok(validator)
}
