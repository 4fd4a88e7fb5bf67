//! Client-side commands (INTERFACE.md): `revoke` (RFC 7009), `introspect` (RFC 7662), `token
//! client-credentials` (RFC 6749 §4.4) and `token refresh` (RFC 6749 §6), against any
//! authorization server: endpoints from RFC 8414 metadata (`--issuer`) or given (`--endpoint`).
//! Built on `tokenwarden-client`; they never open the database.
//!
//! The client secret comes from stdin (`--client-secret-stdin`, first line) or the environment
//! (`TOKENWARDEN_CLIENT_SECRET`), never from a flag: argv is visible to every user of the machine
//! (`ps`) and lands in shell history. For the same reason a TOKEN argument of `-` is read from
//! stdin (the next line).

use std::io::BufRead;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use serde_json::Value;
use tokenwarden_client::discovery::discover;
use tokenwarden_client::grant::client_credentials::ClientCredentialsRequest;
use tokenwarden_client::grant::refresh_token::RefreshTokenRequest;
use tokenwarden_client::introspection::{parse_introspection_response, IntrospectionRequest};
use tokenwarden_client::revocation::{parse_revocation_response, RevocationRequest};
use tokenwarden_client::token::parse_token_response;
use tokenwarden_client::{
    ClientCredentials, ClientSecret, EndpointUrl, HttpClient, IssuerUrl, RefreshToken,
    ReqwestClient, TokenTypeHint,
};
use zeroize::Zeroizing;

/// The environment variable holding the client secret.
pub const CLIENT_SECRET_ENV: &str = "TOKENWARDEN_CLIENT_SECRET";

/// `--auth`: how the client authenticates (RFC 6749 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret.
    Basic,
    /// `client_secret_post`: id and secret in the form body.
    Post,
    /// `none`: a public client sends only its `client_id`.
    None,
}

/// `--hint`: RFC 7009 / RFC 7662 `token_type_hint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HintArg {
    /// `access_token`
    #[value(name = "access_token")]
    AccessToken,
    /// `refresh_token`
    #[value(name = "refresh_token")]
    RefreshToken,
}

impl From<HintArg> for TokenTypeHint {
    fn from(hint: HintArg) -> Self {
        match hint {
            HintArg::AccessToken => Self::AccessToken,
            HintArg::RefreshToken => Self::RefreshToken,
        }
    }
}

/// Which server, which client: shared by every client-side command.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Issuer URL; the endpoint is read from its RFC 8414 metadata.
    #[arg(
        long,
        required_unless_present = "endpoint",
        conflicts_with = "endpoint"
    )]
    pub issuer: Option<String>,
    /// The endpoint URL itself (no discovery).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Client id.
    #[arg(long)]
    pub client_id: String,
    /// Read the client secret from the first line of stdin (otherwise from the
    /// TOKENWARDEN_CLIENT_SECRET environment variable).
    #[arg(long)]
    pub client_secret_stdin: bool,
    /// Client authentication: basic (client_secret_basic), post (client_secret_post), or none
    /// (a public client).
    #[arg(long, value_enum, default_value = "basic")]
    pub auth: AuthArg,
}

/// `tokenwarden revoke`
#[derive(Debug, Clone, Args)]
pub struct RevokeArgs {
    /// Server and client.
    #[command(flatten)]
    pub server: ServerArgs,
    /// token_type_hint.
    #[arg(long, value_enum)]
    pub hint: Option<HintArg>,
    /// The token to revoke; `-` reads it from stdin.
    pub token: String,
}

/// `tokenwarden introspect`
#[derive(Debug, Clone, Args)]
pub struct IntrospectArgs {
    /// Server and client.
    #[command(flatten)]
    pub server: ServerArgs,
    /// token_type_hint.
    #[arg(long, value_enum)]
    pub hint: Option<HintArg>,
    /// The token to introspect; `-` reads it from stdin.
    pub token: String,
}

/// `tokenwarden token client-credentials`
#[derive(Debug, Clone, Args)]
pub struct ClientCredentialsArgs {
    /// Server and client.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Scope to request (space-separated).
    #[arg(long)]
    pub scope: Option<String>,
}

/// `tokenwarden token refresh`
#[derive(Debug, Clone, Args)]
pub struct RefreshArgs {
    /// Server and client.
    #[command(flatten)]
    pub server: ServerArgs,
    /// A narrower scope (space-separated).
    #[arg(long)]
    pub scope: Option<String>,
    /// The refresh token; `-` reads it from stdin.
    pub refresh_token: String,
}

#[derive(Clone, Copy)]
enum Endpoint {
    Token,
    Revocation,
    Introspection,
}

/// Reads what stdin must provide, in order: the secret (with `--client-secret-stdin`), then the
/// token (when given as `-`).
fn read_line(input: &mut dyn BufRead, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let value = line.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        bail!("no {what} on stdin");
    }
    Ok(Zeroizing::new(value.to_owned()))
}

fn credentials(
    server: &ServerArgs,
    input: &mut dyn BufRead,
    env_secret: Option<String>,
) -> anyhow::Result<ClientCredentials> {
    let secret = if server.client_secret_stdin {
        Some(ClientSecret::new(
            read_line(input, "client secret")?.as_str(),
        ))
    } else {
        env_secret.filter(|s| !s.is_empty()).map(ClientSecret::new)
    };
    Ok(match (server.auth, secret) {
        (AuthArg::None, _) => ClientCredentials::public(server.client_id.clone()),
        (AuthArg::Basic, Some(secret)) => {
            ClientCredentials::basic(server.client_id.clone(), secret)
        }
        (AuthArg::Post, Some(secret)) => ClientCredentials::post(server.client_id.clone(), secret),
        (_, None) => bail!(
            "a client secret is needed: pipe it with --client-secret-stdin or set \
             {CLIENT_SECRET_ENV} (or use --auth none for a public client)"
        ),
    })
}

fn token_argument(token: &str, input: &mut dyn BufRead) -> anyhow::Result<Zeroizing<String>> {
    if token == "-" {
        read_line(input, "token")
    } else {
        Ok(Zeroizing::new(token.to_owned()))
    }
}

/// Reads the secret and the token, from the process's stdin and environment.
fn inputs(
    server: &ServerArgs,
    token: Option<&str>,
) -> anyhow::Result<(ClientCredentials, Option<Zeroizing<String>>)> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let credentials = credentials(server, &mut input, std::env::var(CLIENT_SECRET_ENV).ok())?;
    let token = token.map(|t| token_argument(t, &mut input)).transpose()?;
    Ok((credentials, token))
}

async fn resolve(
    server: &ServerArgs,
    http: &dyn HttpClient,
    which: Endpoint,
) -> anyhow::Result<EndpointUrl> {
    if let Some(url) = &server.endpoint {
        return Ok(EndpointUrl::parse(url)?);
    }
    let issuer = server
        .issuer
        .as_deref()
        .ok_or_else(|| anyhow!("give --issuer URL or --endpoint URL"))?;
    let issuer = IssuerUrl::parse(issuer)?;
    let metadata = discover(http, &issuer)
        .await
        .map_err(explain)
        .with_context(|| format!("reading the RFC 8414 metadata of {issuer}"))?;
    let (endpoint, name) = match which {
        Endpoint::Token => (metadata.token_endpoint()?, "token_endpoint"),
        Endpoint::Revocation => (metadata.revocation_endpoint()?, "revocation_endpoint"),
        Endpoint::Introspection => (metadata.introspection_endpoint()?, "introspection_endpoint"),
    };
    endpoint.ok_or_else(|| anyhow!("the metadata of {issuer} has no {name}"))
}

/// The server's own words: status, error code and description.
fn explain(error: tokenwarden_client::Error) -> anyhow::Error {
    match &error {
        tokenwarden_client::Error::OAuth {
            status, response, ..
        } => match &response.error_description {
            Some(description) => anyhow!(
                "the server answered {status} {}: {description}",
                response.error
            ),
            None => anyhow!("the server answered {status} {}", response.error),
        },
        _ => anyhow::Error::new(error),
    }
}

async fn send(
    server: &ServerArgs,
    which: Endpoint,
    build: impl FnOnce(&EndpointUrl) -> Result<http::Request<Bytes>, tokenwarden_client::Error>,
) -> anyhow::Result<http::Response<Bytes>> {
    let http = Arc::new(ReqwestClient::new()?);
    let endpoint = resolve(server, http.as_ref(), which).await?;
    let request = build(&endpoint)?;
    let response = http
        .execute(request)
        .await
        .with_context(|| format!("POST {endpoint}"))?;
    Ok(response)
}

fn body_json(response: &http::Response<Bytes>) -> anyhow::Result<Value> {
    serde_json::from_slice(response.body()).context("the response is not JSON")
}

/// `tokenwarden revoke`: RFC 7009. Succeeds (exit 0) exactly when the server answers 200, which
/// it also does for unknown or already revoked tokens (RFC 7009 §2.2). Prints `{"status": 200}`.
pub async fn revoke(args: RevokeArgs) -> anyhow::Result<Value> {
    let (credentials, token) = inputs(&args.server, Some(&args.token))?;
    let token = token.unwrap_or_default();
    let response = send(&args.server, Endpoint::Revocation, |endpoint| {
        RevocationRequest {
            token: token.as_str(),
            token_type_hint: args.hint.map(Into::into),
        }
        .to_http(endpoint, &credentials)
    })
    .await?;
    parse_revocation_response(&response)
        .map_err(explain)
        .context("revocation failed")?;
    Ok(serde_json::json!({ "status": 200 }))
}

/// `tokenwarden introspect`: RFC 7662; prints the server's JSON answer.
pub async fn introspect(args: IntrospectArgs) -> anyhow::Result<Value> {
    let (credentials, token) = inputs(&args.server, Some(&args.token))?;
    let token = token.unwrap_or_default();
    let response = send(&args.server, Endpoint::Introspection, |endpoint| {
        IntrospectionRequest {
            token: token.as_str(),
            token_type_hint: args.hint.map(Into::into),
        }
        .to_http(endpoint, &credentials)
    })
    .await?;
    parse_introspection_response(&response)
        .map_err(explain)
        .context("introspection failed")?;
    body_json(&response)
}

/// `tokenwarden token client-credentials`: RFC 6749 §4.4; prints the token response.
pub async fn client_credentials(args: ClientCredentialsArgs) -> anyhow::Result<Value> {
    let (credentials, _) = inputs(&args.server, None)?;
    let response = send(&args.server, Endpoint::Token, |endpoint| {
        ClientCredentialsRequest {
            scope: args.scope.as_deref(),
        }
        .to_http(endpoint, &credentials)
    })
    .await?;
    parse_token_response(&response)
        .map_err(explain)
        .context("client credentials grant failed")?;
    body_json(&response)
}

/// `tokenwarden token refresh`: RFC 6749 §6; prints the token response (with the rotated
/// refresh token, if the server rotates).
pub async fn refresh(args: RefreshArgs) -> anyhow::Result<Value> {
    let (credentials, token) = inputs(&args.server, Some(&args.refresh_token))?;
    let refresh_token = RefreshToken::new(token.unwrap_or_default().as_str());
    let response = send(&args.server, Endpoint::Token, |endpoint| {
        RefreshTokenRequest {
            refresh_token: &refresh_token,
            scope: args.scope.as_deref(),
        }
        .to_http(endpoint, &credentials)
    })
    .await?;
    parse_token_response(&response)
        .map_err(explain)
        .context("refresh failed")?;
    body_json(&response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(auth: AuthArg, stdin: bool) -> ServerArgs {
        ServerArgs {
            issuer: None,
            endpoint: Some("http://127.0.0.1:1/x".into()),
            client_id: "app".into(),
            client_secret_stdin: stdin,
            auth,
        }
    }

    #[test]
    fn the_secret_comes_from_stdin_or_the_environment_and_the_token_follows_it() {
        let mut input: &[u8] = b"s3cret\ntwr_token\n";
        let c = credentials(
            &server(AuthArg::Basic, true),
            &mut input,
            Some("env".into()),
        )
        .unwrap();
        assert_eq!(
            c.method(),
            tokenwarden_client::AuthMethod::ClientSecretBasic
        );
        assert_eq!(
            token_argument("-", &mut input).unwrap().as_str(),
            "twr_token"
        );

        let mut empty: &[u8] = b"";
        assert!(credentials(
            &server(AuthArg::Post, false),
            &mut empty,
            Some("env".into())
        )
        .is_ok());
        let e = credentials(&server(AuthArg::Basic, false), &mut empty, None).unwrap_err();
        assert!(e.to_string().contains(CLIENT_SECRET_ENV));
        assert!(credentials(&server(AuthArg::None, false), &mut empty, None).is_ok());
    }
}
