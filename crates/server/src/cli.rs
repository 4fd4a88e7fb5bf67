//! The command line of INTERFACE.md. JSON for scripts goes to stdout; messages and logs to
//! stderr; a failure exits non-zero with a one-line reason.

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tokenwarden_core::clock::{Clock as _, SystemClock};
use tokenwarden_core::model::GrantType;
use tokenwarden_core::random::OsRandom;
use tokenwarden_core::secret::Password;
use tokenwarden_core::store::GrantFilter;
use tokenwarden_core::{AuthorizationServer, Config};
use zeroize::Zeroizing;

use crate::admin::{self, client_json, grant_json, NewClient};
use crate::backend::{self, Backend};
use crate::duration::parse_duration;
use crate::serve;

/// `tokenwarden`: OAuth 2.0 authorization server and admin CLI.
#[derive(Debug, Parser)]
#[command(name = "tokenwarden", version, about)]
pub struct Cli {
    /// Database URL: sqlite://PATH (created with its schema on first use).
    #[arg(
        long,
        global = true,
        env = "TOKENWARDEN_DATABASE_URL",
        default_value = "sqlite://tokenwarden.db"
    )]
    pub database: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server.
    Serve(ServeArgs),
    /// Client administration.
    #[command(subcommand)]
    Client(ClientCommand),
    /// User administration.
    #[command(subcommand)]
    User(UserCommand),
    /// Grant administration.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Token minting.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Client side: revoke a token at any RFC 7009 server (exit 0 on 200).
    Revoke(crate::remote::RevokeArgs),
    /// Client side: introspect a token at any RFC 7662 server; prints the JSON answer.
    Introspect(crate::remote::IntrospectArgs),
    /// Delete expired and long-revoked rows in batches; prints counts.
    Purge {
        /// Count what would be deleted without deleting.
        #[arg(long)]
        dry_run: bool,
        /// Revocation-feed events older than this go (default: the default refresh-token
        /// lifetime; `serve` uses its longest configured token lifetime).
        #[arg(long, default_value = "60d", value_parser = parse_duration)]
        event_retention: i64,
    },
}

/// `serve` options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Issuer URL (RFC 8414); defaults to http://<listen address>.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Create demo user and clients (idempotently) and print ready-to-paste curl lines.
    #[arg(long)]
    pub demo: bool,
    /// Access-token lifetime (90s, 15m, 1h, 60d or seconds).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub access_token_ttl: i64,
    /// Refresh-token lifetime.
    #[arg(long, default_value = "60d", value_parser = parse_duration)]
    pub refresh_token_ttl: i64,
    /// Authorization-code lifetime.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub auth_code_ttl: i64,
    /// How long the previous refresh token may be retried for the same response; 0 = strict.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub refresh_grace: i64,
    /// Revoking an access token also revokes its whole grant.
    #[arg(long)]
    pub revoke_access_cascades: bool,
    /// Enable the RFC 7009 §2.3 JSONP `callback` parameter on the revocation endpoint.
    #[arg(long)]
    pub revocation_jsonp: bool,
    /// How often the background purge runs; 0 disables it.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub purge_interval: i64,
    /// How often the revocation feed reads the database for events committed elsewhere (other
    /// nodes, the admin CLI) while anybody is subscribed, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub feed_poll_ms: u64,
    /// SQLite: fsync commits that only issue tokens too, so every 200 survives power loss (by
    /// default such a commit survives `kill -9` and is fsynced with the next other write or
    /// checkpoint; revocations, rotations and redemptions are always fsynced).
    #[arg(long)]
    pub fsync_issuance: bool,
    /// Keep-alive interval of idle revocation-feed connections.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub feed_heartbeat: i64,
}

/// `client …`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and (once) its secret.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Client id (default: random).
        #[arg(long)]
        client_id: Option<String>,
        /// Public client (no secret).
        #[arg(long)]
        public: bool,
        /// Grant type: authorization_code, refresh_token, client_credentials (repeatable).
        #[arg(long = "grant-type", value_parser = parse_grant_type)]
        grant_types: Vec<GrantType>,
        /// Redirect URI (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Space-separated scope.
        #[arg(long, default_value = "")]
        scope: String,
        /// May introspect any token (a resource server).
        #[arg(long)]
        introspect: bool,
        /// CORS origin (repeatable).
        #[arg(long = "cors-origin")]
        cors_origins: Vec<String>,
    },
    /// List clients.
    List,
    /// Show one client.
    Show {
        /// Client id.
        id: String,
    },
    /// Delete a client, revoking all its grants and tokens.
    Delete {
        /// Client id.
        id: String,
    },
    /// Replace a client's secret; prints the new one.
    RotateSecret {
        /// Client id.
        id: String,
    },
}

/// `user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin (one line).
    Create {
        /// User name.
        name: String,
    },
}

/// `grant …`
#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// List grants.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Only this client's.
        #[arg(long)]
        client: Option<String>,
    },
    /// Revoke a grant by id, or every grant of a user and/or client; prints how many.
    Revoke {
        /// Grant id.
        grant_id: Option<String>,
        /// Every grant of this user.
        #[arg(long)]
        user: Option<String>,
        /// Every grant of this client.
        #[arg(long)]
        client: Option<String>,
    },
}

/// `token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a user grant as the authorization-code flow would; prints the token response.
    Issue {
        /// Client id.
        #[arg(long)]
        client: String,
        /// User name.
        #[arg(long)]
        user: String,
        /// Scope (default: the client's).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Client side: the client credentials grant at any server; prints the token response.
    ClientCredentials(crate::remote::ClientCredentialsArgs),
    /// Client side: the refresh grant at any server; prints the token response.
    Refresh(crate::remote::RefreshArgs),
}

fn parse_grant_type(s: &str) -> Result<GrantType, String> {
    GrantType::parse(s).ok_or_else(|| format!("unknown grant type `{s}`"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes, never a backtrace.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKENWARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Client-side commands talk to a server over HTTP and never open the database.
    let cli = match cli.command {
        Command::Revoke(args) => return print_json(&crate::remote::revoke(args).await?),
        Command::Introspect(args) => return print_json(&crate::remote::introspect(args).await?),
        Command::Token(TokenCommand::ClientCredentials(args)) => {
            return print_json(&crate::remote::client_credentials(args).await?)
        }
        Command::Token(TokenCommand::Refresh(args)) => {
            return print_json(&crate::remote::refresh(args).await?)
        }
        command => Cli { command, ..cli },
    };
    if let Command::Serve(args) = cli.command {
        return serve::run(args, &cli.database).await;
    }
    let opened = backend::open(&cli.database).await?;
    crate::with_backend!(opened, |store| {
        let store = std::sync::Arc::new(store);
        let result = admin_command(cli.command, &store).await;
        store.shutdown().await;
        print_json(&result?)
    })
}

async fn admin_command<S: Backend>(
    command: Command,
    shared: &std::sync::Arc<S>,
) -> anyhow::Result<Value> {
    let store = shared.as_ref();
    let now = SystemClock.now();
    let random = OsRandom;
    Ok(match command {
        Command::Serve(_) => bail!("unreachable: serve handled above"),
        Command::Revoke(_)
        | Command::Introspect(_)
        | Command::Token(TokenCommand::ClientCredentials(_) | TokenCommand::Refresh(_)) => {
            bail!("unreachable: client-side commands handled above")
        }
        Command::Client(ClientCommand::Create {
            name,
            client_id,
            public,
            grant_types,
            redirect_uris,
            scope,
            introspect,
            cors_origins,
        }) => {
            let new = NewClient {
                name,
                client_id,
                public,
                grant_types,
                redirect_uris,
                scope,
                introspect,
                cors_origins,
            };
            admin::create_client(store, &random, now, new).await?
        }
        Command::Client(ClientCommand::List) => Value::Array(
            store
                .list_clients()
                .await?
                .iter()
                .map(client_json)
                .collect(),
        ),
        Command::Client(ClientCommand::Show { id }) => client_json(
            &store
                .find_client(&id)
                .await?
                .ok_or_else(|| anyhow!("no client `{id}`"))?,
        ),
        Command::Client(ClientCommand::Delete { id }) => {
            let revoked = store
                .delete_client(&id, now)
                .await?
                .ok_or_else(|| anyhow!("no client `{id}`"))?;
            serde_json::json!({ "client_id": id, "deleted": true, "grants_revoked": revoked })
        }
        Command::Client(ClientCommand::RotateSecret { id }) => {
            admin::rotate_secret(store, &random, &id).await?
        }
        Command::User(UserCommand::Create { name }) => {
            let password = read_password_line()?;
            admin::create_user(store, &random, now, &name, &password).await?
        }
        Command::Grant(GrantCommand::List { user, client }) => {
            let filter = GrantFilter {
                username: user,
                client_id: client,
            };
            Value::Array(
                store
                    .list_grants(&filter)
                    .await?
                    .iter()
                    .map(grant_json)
                    .collect(),
            )
        }
        Command::Grant(GrantCommand::Revoke {
            grant_id,
            user,
            client,
        }) => {
            if grant_id.is_some() == (user.is_some() || client.is_some()) {
                bail!("give either a GRANT_ID or --user/--client");
            }
            admin::revoke_grants(
                store,
                now,
                grant_id.as_deref(),
                GrantFilter {
                    username: user,
                    client_id: client,
                },
            )
            .await?
        }
        Command::Token(TokenCommand::Issue {
            client,
            user,
            scope,
        }) => {
            // The lifetimes of `serve`'s defaults; `token issue` mints what a default server would.
            let server = AuthorizationServer::new(
                std::sync::Arc::clone(shared),
                Config::new("http://localhost"),
                std::sync::Arc::new(SystemClock),
                std::sync::Arc::new(OsRandom),
            );
            admin::issue_token(&server, store, &client, &user, scope.as_deref()).await?
        }
        Command::Purge {
            dry_run,
            event_retention,
        } => admin::purge(store, now, dry_run, event_retention).await?,
    })
}

/// One line from stdin, without its line ending.
fn read_password_line() -> anyhow::Result<Password> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    let trimmed = line.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        bail!(
            "no password on stdin: pipe one line, e.g. `echo 'pw' | tokenwarden user create NAME`"
        );
    }
    Ok(Password::new(trimmed.to_owned()))
}
