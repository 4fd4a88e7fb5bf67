//! `tokenwarden serve`: bind, build the app, run until SIGINT/SIGTERM, let in-flight requests
//! finish, close the database. Also the background purge and `--demo`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokenwarden_core::clock::SystemClock;
use tokenwarden_core::model::GrantType;
use tokenwarden_core::random::OsRandom;
use tokenwarden_core::secret::Password;
use tokenwarden_core::store::{AdminStore, PurgePolicy};
use tokenwarden_core::{AuthorizationServer, Config};

use crate::admin::{self, NewClient};
use crate::backend::{self, Backend};
use crate::cli::ServeArgs;
use crate::feed::FeedHub;
use crate::http::{router, AppState};

/// RFC 8414 §2: the issuer "is a URL that uses the "https" scheme and has no query or fragment
/// components". Plain http is accepted for loopback and development; query and fragment never.
fn validate_issuer(issuer: &str) -> anyhow::Result<()> {
    if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
        || issuer.contains(['?', '#'])
    {
        bail!("--issuer must be an http(s) URL without query or fragment");
    }
    Ok(())
}

/// Runs the server until a shutdown signal.
pub async fn run(args: ServeArgs, database: &str) -> anyhow::Result<()> {
    let opened = backend::open(database).await?;
    crate::with_backend!(opened, |store| run_with(args, store).await)
}

async fn run_with<S: Backend>(args: ServeArgs, store: S) -> anyhow::Result<()> {
    store.set_fsync_issuance(args.fsync_issuance);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let issuer = args
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    validate_issuer(&issuer)?;
    let mut config = Config::new(issuer);
    config.access_token_ttl = args.access_token_ttl;
    config.refresh_token_ttl = args.refresh_token_ttl;
    config.auth_code_ttl = args.auth_code_ttl;
    config.refresh_grace = args.refresh_grace;
    config.revocation.revoke_access_cascades = args.revoke_access_cascades;
    config.revocation.enable_jsonp = args.revocation_jsonp;
    if config.access_token_ttl <= 0 || config.refresh_token_ttl <= 0 {
        bail!("token lifetimes must be positive");
    }
    if args.feed_heartbeat <= 0 {
        bail!("--feed-heartbeat must be positive");
    }
    let feed = FeedHub::new(
        Duration::from_millis(args.feed_poll_ms),
        Duration::from_secs(args.feed_heartbeat.unsigned_abs()),
    );
    let state = Arc::new(
        AppState::new(AuthorizationServer::new(
            store,
            config,
            Arc::new(SystemClock),
            Arc::new(OsRandom),
        ))
        .with_feed(feed),
    );
    state.server.store().watch_revocations(state.feed.waker());
    if args.demo {
        demo(&state.server).await.context("--demo setup failed")?;
    }
    let purge = (args.purge_interval > 0).then(|| {
        let state = Arc::clone(&state);
        let every = Duration::from_secs(args.purge_interval.unsigned_abs());
        tokio::spawn(async move { purge_loop(state, every).await })
    });
    let signal = shutdown_signal()?;
    eprintln!(
        "tokenwarden listening on http://{addr} (issuer {})",
        state.server.config().issuer
    );
    let served = axum::serve(
        listener,
        router(Arc::clone(&state)).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown({
        let state = Arc::clone(&state);
        async move {
            signal.await;
            // Feed subscriptions never end by themselves; end them so the drain can finish.
            state.feed.close();
        }
    })
    .await;
    if let Some(task) = purge {
        task.abort();
    }
    state.server.store().shutdown().await;
    tracing::info!("shut down cleanly");
    served.context("server error")
}

/// Revoked rows are kept a day; feed events as long as the longest token lifetime, so a
/// subscriber's cursor stays resumable for as long as anything it cached could be valid.
pub fn purge_policy(config: &Config) -> PurgePolicy {
    PurgePolicy {
        event_retention: config
            .access_token_ttl
            .max(config.refresh_token_ttl)
            .max(config.auth_code_ttl),
        ..PurgePolicy::default()
    }
}

async fn purge_loop<S: AdminStore>(state: Arc<AppState<S>>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        match state
            .server
            .store()
            .purge(
                state.server.now(),
                purge_policy(state.server.config()),
                false,
            )
            .await
        {
            Ok(c) => tracing::info!(
                access_tokens = c.access_tokens,
                refresh_tokens = c.refresh_tokens,
                grants = c.grants,
                "purge"
            ),
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
    }
}

/// Installs the SIGINT/SIGTERM handlers now — before the server announces that it listens, so a
/// signal sent right after that line shuts down gracefully instead of killing the process — and
/// returns the future that completes on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutdown signal received; finishing in-flight requests");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown signal received; finishing in-flight requests");
        })
    }
}

/// Where the demo app "receives" its code: nothing listens there; the code is read off the
/// browser's address bar.
const DEMO_REDIRECT_URI: &str = "http://127.0.0.1:9876/callback";

/// Creates (idempotently) the demo user and clients, gives the demo clients fresh secrets (a
/// secret is shown only once, so a restart mints new ones), mints a demo user grant, and prints
/// curl lines for every flow to stderr.
async fn demo<S: AdminStore>(server: &AuthorizationServer<S>) -> anyhow::Result<()> {
    let store = server.store();
    let random = server.random();
    let now = server.now();
    if store.find_user("demo").await?.is_none() {
        admin::create_user(store, random, now, "demo", &Password::new("demo".into())).await?;
    }
    let clients = [
        (
            "demo-service",
            "Demo service (client credentials)",
            vec![GrantType::ClientCredentials],
            "read write",
            false,
        ),
        (
            "demo-app",
            "Demo app",
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            "profile read write",
            false,
        ),
        (
            "demo-api",
            "Demo API (resource server)",
            vec![GrantType::ClientCredentials],
            "",
            true,
        ),
    ];
    let mut secrets = Vec::new();
    for (id, name, grant_types, scope, introspect) in clients {
        if store.find_client(id).await?.is_none() {
            let new = NewClient {
                name: name.into(),
                client_id: Some(id.into()),
                grant_types,
                redirect_uris: vec![DEMO_REDIRECT_URI.into()],
                scope: scope.into(),
                introspect,
                ..NewClient::default()
            };
            admin::create_client(store, random, now, new).await?;
        }
        let rotated = admin::rotate_secret(store, random, id).await?;
        secrets.push(
            rotated
                .get("client_secret")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let [service, app, api] = secrets.as_slice() else {
        bail!("demo secrets missing")
    };
    let client = store
        .find_client("demo-app")
        .await?
        .context("demo-app missing")?;
    let grant = server
        .issue_user_grant(&client, "demo", None)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.description))?;
    let grant: serde_json::Value = serde_json::from_slice(&grant)?;
    let access = grant
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let refresh = grant
        .get("refresh_token")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let issuer = &server.config().issuer;
    // A PKCE pair for the browser walk-through (RFC 7636 §4.1, §4.2).
    let verifier = format!(
        "{}{}",
        tokenwarden_core::random::new_id(random)?,
        tokenwarden_core::random::new_id(random)?
    );
    let challenge = tokenwarden_core::pkce::s256_challenge(&verifier);
    let authorize = tokenwarden_core::authorization::append_query(
        &format!("{issuer}/oauth2/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", "demo-app"),
            ("redirect_uri", DEMO_REDIRECT_URI),
            ("scope", "profile read"),
            ("state", "demo-state"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    eprintln!(
        "\n# Authorization code + PKCE in a browser: open this URL, sign in as demo/demo, approve.\n\
         # You land on {DEMO_REDIRECT_URI}?code=…&state=demo-state (nothing listens there: copy the code\n\
         # from the address bar), then exchange it within 60 s:\n\
         # {authorize}\n\
         # curl -s -u demo-app:{app} -d grant_type=authorization_code -d code=CODE -d redirect_uri={DEMO_REDIRECT_URI} -d code_verifier={verifier} {issuer}/oauth2/token\n\
         # Then see and revoke the connection at {issuer}/account\n"
    );
    eprintln!(
        "\n--demo: user `demo` (password `demo`); clients demo-service, demo-app, demo-api (fresh secrets below).\n\
         \n# Client credentials (RFC 6749 §4.4)\n\
         curl -s -u demo-service:{service} -d grant_type=client_credentials -d scope=read {issuer}/oauth2/token\n\
         \n# Introspect the demo user's access token as the resource server demo-api (RFC 7662)\n\
         curl -s -u demo-api:{api} -d token={access} {issuer}/oauth2/introspect\n\
         \n# Refresh the demo user's grant: rotates the refresh token (RFC 6749 §6)\n\
         curl -s -u demo-app:{app} -d grant_type=refresh_token -d refresh_token={refresh} {issuer}/oauth2/token\n\
         \n# Revoke that refresh token, and with it the whole grant (RFC 7009)\n\
         curl -s -i -u demo-app:{app} -d token={refresh} -d token_type_hint=refresh_token {issuer}/oauth2/revoke\n\
         \n# Metadata (RFC 8414)\n\
         curl -s {issuer}/.well-known/oauth-authorization-server\n\
         \n# Follow revocations as the resource server demo-api (extension: Server-Sent Events; run it in\n\
         # another terminal before revoking; `--no-buffer` shows each event as it arrives)\n\
         curl -s --no-buffer -u demo-api:{api} {issuer}/oauth2/revocations\n"
    );
    Ok(())
}
