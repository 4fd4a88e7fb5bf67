//! The authorization endpoint's protocol half (RFC 6749 §4.1.1, §4.1.2, §4.1.2.1; RFC 7636 §4.3;
//! RFC 9207) and the `authorization_code` grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636
//! §4.5–4.6): status, redirect parameters, bodies, and the stored code, grant and tokens after.

use http::{Method, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use tokenwarden_core::authorization::{AuthorizationError, AuthorizationRequest};
use tokenwarden_core::clock::Timestamp;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::{
    AccessTokenRecord, AccessTokenState, AuthorizationCodeRecord, AuthorizationCodeState, Client,
    Grant, GrantType, RefreshTokenRecord, RefreshTokenState, Scope,
};
use tokenwarden_core::pkce::s256_challenge;
use tokenwarden_core::store::memory::MemoryStore;
use tokenwarden_core::store::{
    AdminStore, GrantFilter, Redemption, Rotation, RotationInput, Store, StoreError,
};
use tokenwarden_core::{Config, ErrorCode, Outcome};

use crate::support::*;

/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

const ALICE: &str = "alice";
const AUTH_CODE_TTL: i64 = 60;

/// Confidential; `authorization_code` + `refresh_token`; one redirect URI.
const WEB: (&str, &str) = ("web", "web-secret");
const WEB_CB: &str = "https://web.example/cb";
/// Confidential; `authorization_code` only (no refresh tokens); two redirect URIs, the second
/// with a query of its own.
const MULTI: (&str, &str) = ("multi", "multi-secret");
const MULTI_CB: &str = "https://multi.example/cb";
const MULTI_CB_QUERY: &str = "https://multi.example/cb2?tenant=7";
/// Public; `authorization_code` + `refresh_token`.
const NATIVE: &str = "native";
const NATIVE_CB: &str = "https://native.example/cb";
/// Confidential; `client_credentials` only, but with a redirect URI.
const NO_CODE: (&str, &str) = ("no-code", "no-code-secret");
const NO_CODE_CB: &str = "https://no-code.example/cb";
/// Confidential; another `authorization_code` client.
const INTRUDER: (&str, &str) = ("intruder", "intruder-secret");
const INTRUDER_CB: &str = "https://intruder.example/cb";

fn client(
    id: &str,
    secret: Option<&str>,
    grant_types: &[GrantType],
    redirect_uris: &[&str],
) -> Client {
    Client {
        client_id: id.to_owned(),
        name: format!("{id} app"),
        secret_digest: secret.map(TokenDigest::of),
        grant_types: grant_types.to_vec(),
        redirect_uris: redirect_uris.iter().map(|u| (*u).to_owned()).collect(),
        scope: Scope::parse("read write").unwrap(),
        introspect: false,
        cors_origins: vec![],
        created_at: T0 - 1000,
    }
}

async fn register_code_clients<S: AdminStore>(store: &S) {
    use GrantType::*;
    for c in [
        client(
            WEB.0,
            Some(WEB.1),
            &[AuthorizationCode, RefreshToken],
            &[WEB_CB],
        ),
        client(
            MULTI.0,
            Some(MULTI.1),
            &[AuthorizationCode],
            &[MULTI_CB, MULTI_CB_QUERY],
        ),
        client(
            NATIVE,
            None,
            &[AuthorizationCode, RefreshToken],
            &[NATIVE_CB],
        ),
        client(
            NO_CODE.0,
            Some(NO_CODE.1),
            &[ClientCredentials],
            &[NO_CODE_CB],
        ),
        client(
            INTRUDER.0,
            Some(INTRUDER.1),
            &[AuthorizationCode, RefreshToken],
            &[INTRUDER_CB],
        ),
    ] {
        store.create_client(&c).await.unwrap();
    }
}

/// The standard harness plus the clients above.
async fn harness() -> Harness {
    harness_with(|_| {}).await
}

async fn harness_with(configure: impl FnOnce(&mut Config)) -> Harness {
    let h = Harness::with_config(configure).await;
    register_code_clients(h.store()).await;
    h
}

type Validation = Result<AuthorizationRequest, AuthorizationError>;

/// `GET /oauth2/authorize?<params>`, validated.
async fn authorize(h: &Harness, params: &[(&str, &str)]) -> Validation {
    h.server
        .validate_authorization_request(&form_encode(params))
        .await
}

/// The parameters a redirect location appends to the registered URI `registered`.
#[derive(Debug)]
struct Params(Vec<(String, String)>);

impl Params {
    /// Checks that `location` is `registered` followed by `?` (or `&` when `registered` has a
    /// query of its own, RFC 6749 §3.1.2: "MUST be retained") and parses what follows.
    #[track_caller]
    fn of(location: &str, registered: &str) -> Self {
        let rest = location
            .strip_prefix(registered)
            .unwrap_or_else(|| panic!("{location} does not extend {registered}"));
        let sep = if registered.contains('?') { "&" } else { "?" };
        let rest = rest.strip_prefix(sep).unwrap_or_else(|| {
            panic!("{location}: parameters must follow {registered} after {sep}")
        });
        assert!(!location.contains('#'), "no fragment: {location}");
        let decode = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
        let pairs: Vec<(String, String)> = rest
            .split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or_else(|| panic!("{location}"));
                (decode(k), decode(v))
            })
            .collect();
        let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), pairs.len(), "a parameter twice: {location}");
        Self(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names
    }
}

/// The request must be refused with a page, never a redirect (RFC 6749 §4.1.2.1).
#[track_caller]
fn assert_page(result: Validation) -> String {
    match result {
        Err(AuthorizationError::Page(message)) => {
            assert!(!message.is_empty());
            message
        }
        other => panic!("expected an error page, got {other:?}"),
    }
}

/// The request must be refused with an RFC 6749 §4.1.2.1 error redirect to `registered`:
/// `error`, `error_description`, `state` (when sent) and `iss` (RFC 9207), and no `code`.
#[track_caller]
fn assert_error_redirect(
    result: Validation,
    registered: &str,
    error: &str,
    state: Option<&str>,
) -> Params {
    let location = match result {
        Err(AuthorizationError::Redirect(location)) => location,
        other => panic!("expected an error redirect, got {other:?}"),
    };
    let params = Params::of(&location, registered);
    assert_eq!(params.get("error"), Some(error), "{location}");
    assert!(
        params
            .get("error_description")
            .is_some_and(|d| !d.is_empty()),
        "{location}"
    );
    assert_eq!(params.get("state"), state, "{location}");
    assert_eq!(params.get("iss"), Some(ISSUER), "{location}");
    let mut expected = vec!["error", "error_description", "iss"];
    if state.is_some() {
        expected.push("state");
    }
    assert_eq!(params.names(), expected, "{location}");
    params
}

#[track_caller]
fn assert_ok(result: Validation) -> AuthorizationRequest {
    match result {
        Ok(request) => request,
        Err(e) => panic!("expected a valid request, got {e:?}"),
    }
}

/// A valid PKCE request of `WEB` naming its redirect URI.
fn web_params<'a>() -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", WEB.0),
        ("redirect_uri", WEB_CB),
        ("state", "xyz"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

/// `params` with `name` removed.
fn without<'a>(params: &[(&'a str, &'a str)], name: &str) -> Vec<(&'a str, &'a str)> {
    params.iter().filter(|(k, _)| *k != name).copied().collect()
}

/// `params` with `name` set to `value` (added when absent).
fn with<'a>(
    params: &[(&'a str, &'a str)],
    name: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut out = without(params, name);
    out.push((name, value));
    out
}

/// Validates `params`, mints a code for [`ALICE`] and returns it.
async fn code_for(h: &Harness, params: &[(&str, &str)]) -> String {
    let request = assert_ok(authorize(h, params).await);
    let location = h
        .server
        .issue_authorization_code(&request, ALICE)
        .await
        .unwrap();
    Params::of(&location, &request.redirect_uri)
        .get("code")
        .unwrap()
        .to_owned()
}

async fn web_code(h: &Harness) -> String {
    code_for(h, &web_params()).await
}

async fn code_state(h: &Harness, code: &str) -> AuthorizationCodeState {
    h.store()
        .find_authorization_code(&TokenDigest::of(code))
        .await
        .unwrap()
        .expect("the code is stored")
}

/// Nothing happened to the code: unused, no grant from it.
async fn assert_code_unused(h: &Harness, code: &str) {
    let state = code_state(h, code).await;
    assert_eq!(state.used_at, None, "the code must still be unused");
    assert_eq!(state.grant_id, None);
}

/// How the token request authenticates.
#[derive(Clone, Copy)]
enum Auth {
    /// `client_secret_basic`.
    Basic((&'static str, &'static str)),
    /// `none`: a public client sends `client_id` only.
    Public(&'static str),
}

fn exchange_request(auth: Auth, params: &[(&str, &str)]) -> http::Request<bytes::Bytes> {
    let mut form = vec![("grant_type", "authorization_code")];
    form.extend_from_slice(params);
    let req = match auth {
        Auth::Basic((id, secret)) => Req::post(TOKEN).basic(id, secret),
        Auth::Public(id) => {
            form.push(("client_id", id));
            Req::post(TOKEN)
        }
    };
    req.form(&form).build()
}

/// `POST /oauth2/token` with `grant_type=authorization_code` and `params`.
async fn exchange(h: &Harness, auth: Auth, params: &[(&str, &str)]) -> Resp {
    h.token(exchange_request(auth, params)).await
}

/// The exchange `WEB` makes for a code from [`web_params`].
async fn web_exchange(h: &Harness, code: &str) -> Resp {
    exchange(
        h,
        Auth::Basic(WEB),
        &[
            ("code", code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

#[track_caller]
fn assert_issued(r: &Resp) -> Value {
    r.assert_status(StatusCode::OK);
    r.assert_json_headers();
    assert_eq!(r.outcome, Some(Outcome::TokenIssued));
    r.json()
}

// ---------------------------------------------------------------------------------------------
// validate_authorization_request: errors shown on a page (RFC 6749 §4.1.2.1, first paragraph)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn missing_client_id_is_an_error_page() {
    let h = harness().await;
    assert_page(authorize(&h, &without(&web_params(), "client_id")).await);
    // An empty value counts as absent (RFC 6749 §3.1).
    assert_page(authorize(&h, &with(&web_params(), "client_id", "")).await);
}

#[tokio::test]
async fn unknown_client_id_is_an_error_page_even_with_a_redirect_uri() {
    let h = harness().await;
    assert_page(authorize(&h, &with(&web_params(), "client_id", "nobody")).await);
    // Client ids are exact.
    assert_page(authorize(&h, &with(&web_params(), "client_id", "WEB")).await);
}

#[tokio::test]
async fn unregistered_redirect_uri_is_an_error_page_never_a_redirect() {
    let h = harness().await;
    // RFC 9700 §2.1: exact string matching — no prefix, suffix, case or query leeway.
    for uri in [
        "https://evil.example/cb",
        "https://web.example/cb/",
        "https://web.example/cb?x=1",
        "https://web.example/cb#frag",
        "https://WEB.example/cb",
        "http://web.example/cb",
        "https://web.example/cb/../evil",
        INTRUDER_CB,
    ] {
        assert_page(authorize(&h, &with(&web_params(), "redirect_uri", uri)).await);
    }
    // Even when the request is broken in ways that would otherwise be redirected.
    let broken = with(
        &without(&web_params(), "code_challenge"),
        "redirect_uri",
        "https://evil.example/cb",
    );
    assert_page(authorize(&h, &with(&broken, "response_type", "token")).await);
    assert_page(authorize(&h, &without(&broken, "response_type")).await);
    assert_page(authorize(&h, &with(&broken, "scope", "admin")).await);
}

#[tokio::test]
async fn omitted_redirect_uri_with_exactly_one_registered_uses_it() {
    let h = harness().await;
    let request = assert_ok(authorize(&h, &without(&web_params(), "redirect_uri")).await);
    assert_eq!(request.redirect_uri, WEB_CB);
    assert!(!request.redirect_uri_given);
    assert_eq!(request.client.client_id, WEB.0);
    assert_eq!(request.state.as_deref(), Some("xyz"));
    assert_eq!(request.code_challenge.as_deref(), Some(CHALLENGE));
    assert_eq!(request.issuer, ISSUER);
    // An empty redirect_uri counts as absent.
    let request = assert_ok(authorize(&h, &with(&web_params(), "redirect_uri", "")).await);
    assert_eq!(request.redirect_uri, WEB_CB);
    assert!(!request.redirect_uri_given);
}

#[tokio::test]
async fn named_redirect_uri_is_recorded_as_given() {
    let h = harness().await;
    let request = assert_ok(authorize(&h, &web_params()).await);
    assert_eq!(request.redirect_uri, WEB_CB);
    assert!(request.redirect_uri_given);
    let multi = [
        ("response_type", "code"),
        ("client_id", MULTI.0),
        ("redirect_uri", MULTI_CB_QUERY),
    ];
    let request = assert_ok(authorize(&h, &multi).await);
    assert_eq!(request.redirect_uri, MULTI_CB_QUERY);
    assert!(request.redirect_uri_given);
}

#[tokio::test]
async fn omitted_redirect_uri_with_several_registered_is_an_error_page() {
    let h = harness().await;
    let params = [
        ("response_type", "code"),
        ("client_id", MULTI.0),
        ("state", "s"),
    ];
    assert_page(authorize(&h, &params).await);
    // RFC 6749 §3.1.2.3 applies before anything else is looked at.
    assert_page(authorize(&h, &with(&params, "response_type", "token")).await);
}

#[tokio::test]
async fn client_without_registered_redirect_uris_is_an_error_page() {
    let h = harness().await;
    // The seeded `app` registers no redirect URI.
    let params = [("response_type", "code"), ("client_id", APP.0)];
    assert_page(authorize(&h, &params).await);
    assert_page(authorize(&h, &with(&params, "redirect_uri", WEB_CB)).await);
}

#[tokio::test]
async fn parameter_sent_twice_is_an_error_page() {
    let h = harness().await;
    // RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
    for name in [
        "state",
        "client_id",
        "redirect_uri",
        "response_type",
        "code_challenge",
    ] {
        let value = web_params().iter().find(|(k, _)| *k == name).unwrap().1;
        let mut params = web_params();
        params.push((name, value));
        assert_page(authorize(&h, &params).await);
    }
    // Twice with one value empty is still twice.
    let mut params = web_params();
    params.push(("scope", "read"));
    params.push(("scope", ""));
    assert_page(authorize(&h, &params).await);
}

#[tokio::test]
async fn malformed_query_is_an_error_page() {
    let h = harness().await;
    // Not UTF-8 once decoded.
    let r = h
        .server
        .validate_authorization_request("response_type=code&client_id=web&state=%FF")
        .await;
    assert_page(r);
}

// ---------------------------------------------------------------------------------------------
// validate_authorization_request: errors redirected to the client (RFC 6749 §4.1.2.1)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn missing_response_type_redirects_invalid_request_with_state_and_iss() {
    let h = harness().await;
    let r = authorize(&h, &without(&web_params(), "response_type")).await;
    assert_error_redirect(r, WEB_CB, "invalid_request", Some("xyz"));
}

#[tokio::test]
async fn error_redirect_without_state_carries_no_state() {
    let h = harness().await;
    let r = authorize(
        &h,
        &without(&without(&web_params(), "response_type"), "state"),
    )
    .await;
    assert_error_redirect(r, WEB_CB, "invalid_request", None);
}

#[tokio::test]
async fn state_is_echoed_exactly_whatever_it_contains() {
    let h = harness().await;
    let state = "a b&c=d/é?#%20+";
    let r = authorize(
        &h,
        &with(&without(&web_params(), "response_type"), "state", state),
    )
    .await;
    assert_error_redirect(r, WEB_CB, "invalid_request", Some(state));
    let request = assert_ok(authorize(&h, &with(&web_params(), "state", state)).await);
    let location = h
        .server
        .issue_authorization_code(&request, ALICE)
        .await
        .unwrap();
    assert_eq!(Params::of(&location, WEB_CB).get("state"), Some(state));
}

#[tokio::test]
async fn response_type_other_than_code_is_unsupported_response_type() {
    let h = harness().await;
    for rt in ["token", "code token", "id_token", "CODE"] {
        let r = authorize(&h, &with(&web_params(), "response_type", rt)).await;
        assert_error_redirect(r, WEB_CB, "unsupported_response_type", Some("xyz"));
    }
}

#[tokio::test]
async fn client_without_the_authorization_code_grant_is_unauthorized_client() {
    let h = harness().await;
    let params = [
        ("response_type", "code"),
        ("client_id", NO_CODE.0),
        ("state", "s1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let r = authorize(&h, &params).await;
    assert_error_redirect(r, NO_CODE_CB, "unauthorized_client", Some("s1"));
}

#[tokio::test]
async fn scope_wider_than_the_clients_is_invalid_scope() {
    let h = harness().await;
    for scope in ["read write admin", "admin"] {
        let r = authorize(&h, &with(&web_params(), "scope", scope)).await;
        assert_error_redirect(r, WEB_CB, "invalid_scope", Some("xyz"));
    }
    // Not RFC 6749 §3.3 syntax.
    let r = authorize(&h, &with(&web_params(), "scope", "read\"quote")).await;
    assert_error_redirect(r, WEB_CB, "invalid_scope", Some("xyz"));
}

#[tokio::test]
async fn omitted_scope_is_the_clients_scope_and_a_narrower_one_is_kept() {
    let h = harness().await;
    let request = assert_ok(authorize(&h, &web_params()).await);
    assert_eq!(request.scope, Scope::parse("read write").unwrap());
    let request = assert_ok(authorize(&h, &with(&web_params(), "scope", "read")).await);
    assert_eq!(request.scope, Scope::parse("read").unwrap());
    // `+` is a space in a query component.
    let request = assert_ok(
        h.server
            .validate_authorization_request(
                "response_type=code&client_id=web&scope=write+read&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            )
            .await,
    );
    assert_eq!(request.scope, Scope::parse("read write").unwrap());
}

#[tokio::test]
async fn public_client_without_code_challenge_is_invalid_request() {
    let h = harness().await;
    let params = [
        ("response_type", "code"),
        ("client_id", NATIVE),
        ("state", "n1"),
    ];
    // RFC 9700 §2.1.1: public clients MUST use PKCE.
    let r = authorize(&h, &params).await;
    assert_error_redirect(r, NATIVE_CB, "invalid_request", Some("n1"));
    let ok = [
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let mut with_pkce = params.to_vec();
    with_pkce.extend_from_slice(&ok);
    let request = assert_ok(authorize(&h, &with_pkce).await);
    assert_eq!(request.code_challenge.as_deref(), Some(CHALLENGE));
    assert!(request.client.is_public());
}

#[tokio::test]
async fn plain_or_omitted_code_challenge_method_is_invalid_request() {
    let h = harness().await;
    // RFC 9700 §2.1.1: S256 only; RFC 7636 §4.3: an omitted method means `plain`.
    for method in [Some("plain"), Some("s256"), Some("S512"), None] {
        let params = match method {
            Some(m) => with(&web_params(), "code_challenge_method", m),
            None => without(&web_params(), "code_challenge_method"),
        };
        let r = authorize(&h, &params).await;
        assert_error_redirect(r, WEB_CB, "invalid_request", Some("xyz"));
    }
}

#[tokio::test]
async fn code_challenge_method_without_code_challenge_is_invalid_request() {
    let h = harness().await;
    let r = authorize(&h, &without(&web_params(), "code_challenge")).await;
    assert_error_redirect(r, WEB_CB, "invalid_request", Some("xyz"));
}

#[tokio::test]
async fn malformed_code_challenge_is_invalid_request() {
    let h = harness().await;
    let too_long = "a".repeat(129);
    let bad_char = format!("{}+", &CHALLENGE[..42]);
    let padded = format!("{CHALLENGE}=");
    for challenge in [
        "short",
        &CHALLENGE[..42],
        too_long.as_str(),
        &bad_char,
        &padded,
    ] {
        let r = authorize(&h, &with(&web_params(), "code_challenge", challenge)).await;
        assert_error_redirect(r, WEB_CB, "invalid_request", Some("xyz"));
    }
}

#[tokio::test]
async fn confidential_client_without_pkce_is_accepted() {
    let h = harness().await;
    let params = without(
        &without(&web_params(), "code_challenge"),
        "code_challenge_method",
    );
    let request = assert_ok(authorize(&h, &params).await);
    assert_eq!(request.code_challenge, None);
    assert!(!request.client.is_public());
}

#[tokio::test]
async fn error_redirect_keeps_the_registered_query() {
    let h = harness().await;
    let params = [
        ("response_type", "token"),
        ("client_id", MULTI.0),
        ("redirect_uri", MULTI_CB_QUERY),
        ("state", "q"),
    ];
    let r = authorize(&h, &params).await;
    let Err(AuthorizationError::Redirect(location)) = &r else {
        panic!("{r:?}")
    };
    assert!(
        location.starts_with("https://multi.example/cb2?tenant=7&error="),
        "{location}"
    );
    assert_error_redirect(r, MULTI_CB_QUERY, "unsupported_response_type", Some("q"));
}

#[tokio::test]
async fn consent_denied_redirects_access_denied_with_state_and_iss() {
    let h = harness().await;
    let request = assert_ok(authorize(&h, &web_params()).await);
    let location = request.error_location(ErrorCode::AccessDenied, "the user said no");
    let params = assert_error_redirect(
        Err(AuthorizationError::Redirect(location)),
        WEB_CB,
        "access_denied",
        Some("xyz"),
    );
    assert_eq!(params.get("error_description"), Some("the user said no"));
    // Nothing was stored.
    assert_eq!(h.row_counts().await.authorization_codes, 0);
}

// ---------------------------------------------------------------------------------------------
// issue_authorization_code (RFC 6749 §4.1.2, RFC 9207)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn issued_code_redirects_with_code_state_and_iss() {
    let h = harness().await;
    let request = assert_ok(authorize(&h, &web_params()).await);
    let location = h
        .server
        .issue_authorization_code(&request, ALICE)
        .await
        .unwrap();
    assert!(
        location.starts_with("https://web.example/cb?code=twc_"),
        "{location}"
    );
    let params = Params::of(&location, WEB_CB);
    assert_eq!(params.names(), ["code", "iss", "state"]);
    let code = params.get("code").unwrap();
    assert!(code.starts_with("twc_"), "{code}");
    assert_eq!(
        code.len(),
        4 + 51,
        "48 bits of time, 256 random bits, base64url"
    );
    assert_eq!(params.get("state"), Some("xyz"));
    assert_eq!(params.get("iss"), Some(ISSUER));

    // Without state: no state parameter.
    let request = assert_ok(authorize(&h, &without(&web_params(), "state")).await);
    let location = h
        .server
        .issue_authorization_code(&request, ALICE)
        .await
        .unwrap();
    let params = Params::of(&location, WEB_CB);
    assert_eq!(params.names(), ["code", "iss"]);
    assert_ne!(params.get("code"), Some(code), "every code is fresh");
}

#[tokio::test]
async fn issued_code_keeps_the_registered_query() {
    let h = harness().await;
    let params = [
        ("response_type", "code"),
        ("client_id", MULTI.0),
        ("redirect_uri", MULTI_CB_QUERY),
        ("state", "q"),
    ];
    let request = assert_ok(authorize(&h, &params).await);
    let location = h
        .server
        .issue_authorization_code(&request, ALICE)
        .await
        .unwrap();
    assert!(
        location.starts_with("https://multi.example/cb2?tenant=7&code=twc_"),
        "{location}"
    );
    let params = Params::of(&location, MULTI_CB_QUERY);
    assert_eq!(params.names(), ["code", "iss", "state"]);
    let code = params.get("code").unwrap();
    assert_eq!(
        code_state(&h, code).await.record.redirect_uri,
        MULTI_CB_QUERY
    );
}

#[tokio::test]
async fn stored_code_holds_only_its_digest_and_its_binding() {
    let h = harness().await;
    let code = code_for(&h, &with(&web_params(), "scope", "read")).await;
    let state = code_state(&h, &code).await;
    let r = &state.record;
    assert_eq!(r.digest, TokenDigest::of(&code));
    assert_eq!(r.client_id, WEB.0);
    assert_eq!(r.username, ALICE);
    assert_eq!(r.redirect_uri, WEB_CB);
    assert!(r.redirect_uri_given);
    assert_eq!(r.scope, Scope::parse("read").unwrap());
    assert_eq!(r.code_challenge.as_deref(), Some(CHALLENGE));
    assert_eq!(r.issued_at, T0);
    assert_eq!(r.expires_at, T0 + AUTH_CODE_TTL);
    assert_eq!(state.used_at, None);
    assert_eq!(state.grant_id, None);
    // CONVENTIONS §3: the code itself is nowhere in the store.
    let secret_part = code.strip_prefix("twc_").unwrap();
    let dump = format!("{:?}", h.store());
    assert!(!dump.contains(secret_part), "the code is stored in clear");
    assert_eq!(h.row_counts().await.authorization_codes, 1);
    // And nothing else was created yet.
    assert!(h.grants().await.is_empty());
}

#[tokio::test]
async fn code_lifetime_follows_auth_code_ttl() {
    let h = harness_with(|c| c.auth_code_ttl = 300).await;
    h.advance(7);
    let code = web_code(&h).await;
    let r = code_state(&h, &code).await.record;
    assert_eq!(r.issued_at, T0 + 7);
    assert_eq!(r.expires_at, T0 + 7 + 300);
}

#[tokio::test]
async fn code_without_redirect_uri_or_pkce_records_that() {
    let h = harness().await;
    let params = without(
        &without(
            &without(&web_params(), "code_challenge"),
            "code_challenge_method",
        ),
        "redirect_uri",
    );
    let code = code_for(&h, &params).await;
    let r = code_state(&h, &code).await.record;
    assert_eq!(r.redirect_uri, WEB_CB);
    assert!(!r.redirect_uri_given);
    assert_eq!(r.code_challenge, None);
}

#[tokio::test]
async fn issuing_a_code_when_storage_fails_is_temporarily_unavailable() {
    let store = FlakyStore::default();
    seed_clients(&store.inner).await;
    register_code_clients(&store.inner).await;
    let h = Harness::with_store(store, |_| {});
    let request = assert_ok(
        h.server
            .validate_authorization_request(&form_encode(&web_params()))
            .await,
    );
    h.store().set(false, true);
    let e = h
        .server
        .issue_authorization_code(&request, ALICE)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::TemporarilyUnavailable);
    assert!(!e.description.contains("fire"), "{}", e.description);
    // Validation needs the client: a read failure is a page, never a redirect.
    h.store().set(true, false);
    let r = h
        .server
        .validate_authorization_request(&form_encode(&web_params()))
        .await;
    let Err(AuthorizationError::Page(message)) = r else {
        panic!("{r:?}")
    };
    assert!(!message.contains("fire"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// The token request (RFC 6749 §4.1.3, RFC 7636 §4.5–4.6)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn code_with_rfc7636_appendix_b_verifier_issues_tokens_and_a_grant() {
    assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
    let h = harness().await;
    let code = web_code(&h).await;
    h.advance(5);
    let r = web_exchange(&h, &code).await;
    let v = assert_issued(&r);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["scope"], "read write");
    let tokens = Tokens::from_body(&r.body);
    assert!(tokens.access.starts_with("twa_"), "{}", tokens.access);
    assert!(tokens.refresh.starts_with("twr_"), "{}", tokens.refresh);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys.len(),
        5,
        "access_token, token_type, expires_in, refresh_token, scope: {v}"
    );

    // The grant, with the user who authorized.
    let grants = h.grants().await;
    assert_eq!(grants.len(), 1);
    let grant = &grants[0];
    assert_eq!(grant.client_id, WEB.0);
    assert_eq!(grant.username, ALICE);
    assert_eq!(grant.scope, Scope::parse("read write").unwrap());
    assert_eq!(grant.created_at, T0 + 5);
    assert_eq!(grant.revoked_at, None);
    // The code is spent and remembers the grant it produced (RFC 6749 §4.1.2).
    let state = code_state(&h, &code).await;
    assert_eq!(state.used_at, Some(T0 + 5));
    assert_eq!(state.grant_id.as_deref(), Some(grant.grant_id.as_str()));
    // The tokens belong to the grant.
    let access = h.access_state(&tokens.access).await.unwrap();
    assert_eq!(
        access.record.grant_id.as_deref(),
        Some(grant.grant_id.as_str())
    );
    assert_eq!(access.record.username.as_deref(), Some(ALICE));
    assert_eq!(access.record.client_id, WEB.0);
    assert_eq!(access.record.issued_at, T0 + 5);
    assert_eq!(access.record.expires_at, T0 + 5 + 3600);
    assert!(!access.revoked);
    let refresh = h.refresh_state(&tokens.refresh).await.unwrap();
    assert_eq!(refresh.record.grant_id, grant.grant_id);
    assert_eq!(refresh.record.username, ALICE);
    assert_eq!(refresh.used_at, None);
    let introspected = h.introspect_as(WEB, &tokens.access).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["username"], ALICE);
    assert_eq!(introspected["sub"], ALICE);
    assert_eq!(introspected["client_id"], WEB.0);
    assert_eq!(introspected["scope"], "read write");

    // The refresh token then rotates as any other.
    h.advance(10);
    let r = h.refresh(WEB, &tokens.refresh).await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.outcome, Some(Outcome::TokenRefreshed));
    let next = Tokens::from_body(&r.body);
    assert_ne!(next.refresh, tokens.refresh);
    assert_eq!(
        h.refresh_state(&tokens.refresh).await.unwrap().used_at,
        Some(T0 + 15)
    );
    assert_eq!(
        h.refresh_state(&next.refresh)
            .await
            .unwrap()
            .record
            .grant_id,
        grant.grant_id
    );
    assert_eq!(h.grants().await[0].last_refreshed_at, Some(T0 + 15));
    assert!(h.is_active(&next.access).await);
}

#[tokio::test]
async fn narrower_authorized_scope_carries_to_the_tokens() {
    let h = harness().await;
    let code = code_for(&h, &with(&web_params(), "scope", "read")).await;
    let r = web_exchange(&h, &code).await;
    assert_eq!(assert_issued(&r)["scope"], "read");
    let tokens = Tokens::from_body(&r.body);
    let read = Scope::parse("read").unwrap();
    assert_eq!(h.grants().await[0].scope, read);
    assert_eq!(
        h.access_state(&tokens.access).await.unwrap().record.scope,
        read
    );
    assert_eq!(
        h.refresh_state(&tokens.refresh).await.unwrap().record.scope,
        read
    );
}

#[tokio::test]
async fn client_without_refresh_token_grant_gets_no_refresh_token() {
    let h = harness().await;
    let code = code_for(
        &h,
        &[
            ("response_type", "code"),
            ("client_id", MULTI.0),
            ("redirect_uri", MULTI_CB),
        ],
    )
    .await;
    let r = exchange(
        &h,
        Auth::Basic(MULTI),
        &[("code", &code), ("redirect_uri", MULTI_CB)],
    )
    .await;
    let v = assert_issued(&r);
    assert!(v.get("refresh_token").is_none(), "{v}");
    assert!(v["access_token"].as_str().unwrap().starts_with("twa_"));
    assert_eq!(v["scope"], "read write");
    let grants = h.grants().await;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].client_id, MULTI.0);
    assert_eq!(grants[0].username, ALICE);
    let counts = h.row_counts().await;
    assert_eq!(counts.refresh_tokens, 0);
    assert_eq!(counts.access_tokens, 1);
    let access = h
        .access_state(v["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        access.record.grant_id.as_deref(),
        Some(grants[0].grant_id.as_str())
    );
}

#[tokio::test]
async fn public_client_exchanges_with_client_id_only_and_pkce() {
    let h = harness().await;
    let code = code_for(
        &h,
        &[
            ("response_type", "code"),
            ("client_id", NATIVE),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let r = exchange(
        &h,
        Auth::Public(NATIVE),
        &[("code", &code), ("code_verifier", VERIFIER)],
    )
    .await;
    assert_issued(&r);
    let tokens = Tokens::from_body(&r.body);
    let grants = h.grants().await;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].client_id, NATIVE);
    assert_eq!(grants[0].username, ALICE);
    assert_eq!(code_state(&h, &code).await.used_at, Some(T0));
    // And it refreshes with client_id only, too.
    let r = h
        .token(
            Req::post(TOKEN)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &tokens.refresh),
                    ("client_id", NATIVE),
                ])
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.outcome, Some(Outcome::TokenRefreshed));
}

#[tokio::test]
async fn confidential_client_must_authenticate_to_exchange() {
    let h = harness().await;
    let code = web_code(&h).await;
    let params = [
        ("code", code.as_str()),
        ("redirect_uri", WEB_CB),
        ("code_verifier", VERIFIER),
    ];
    // client_id only, as if public.
    let r = exchange(&h, Auth::Public(WEB.0), &params).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    // Wrong secret.
    let r = exchange(&h, Auth::Basic((WEB.0, "wrong")), &params).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert_code_unused(&h, &code).await;
    assert!(h.grants().await.is_empty());
}

#[tokio::test]
async fn wrong_code_verifier_is_invalid_grant_and_leaves_the_code_unused() {
    let h = harness().await;
    let code = web_code(&h).await;
    // RFC 7636 Appendix B's verifier with one character changed; too short; another valid one.
    let other = "a".repeat(43);
    let last_changed = format!("{}K", &VERIFIER[..42]);
    for verifier in [last_changed.as_str(), "short", other.as_str(), CHALLENGE] {
        let r = exchange(
            &h,
            Auth::Basic(WEB),
            &[
                ("code", &code),
                ("redirect_uri", WEB_CB),
                ("code_verifier", verifier),
            ],
        )
        .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
        assert_code_unused(&h, &code).await;
    }
    assert!(h.grants().await.is_empty());
    assert_eq!(h.row_counts().await.access_tokens, 0);
    // A failed PKCE check does not burn the code: the holder of the verifier still succeeds.
    assert_issued(&web_exchange(&h, &code).await);
}

#[tokio::test]
async fn missing_code_verifier_when_a_challenge_was_sent_is_invalid_grant() {
    let h = harness().await;
    let code = web_code(&h).await;
    let r = exchange(
        &h,
        Auth::Basic(WEB),
        &[("code", &code), ("redirect_uri", WEB_CB)],
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_code_unused(&h, &code).await;
    assert!(h.grants().await.is_empty());
}

#[tokio::test]
async fn code_verifier_for_a_code_without_challenge_is_invalid_grant() {
    let h = harness().await;
    let params = without(
        &without(&web_params(), "code_challenge"),
        "code_challenge_method",
    );
    let code = code_for(&h, &params).await;
    let r = web_exchange(&h, &code).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_code_unused(&h, &code).await;
    assert!(h.grants().await.is_empty());
    // Without a verifier, as authorized, it works.
    let r = exchange(
        &h,
        Auth::Basic(WEB),
        &[("code", &code), ("redirect_uri", WEB_CB)],
    )
    .await;
    assert_issued(&r);
}

#[tokio::test]
async fn redirect_uri_mismatch_is_invalid_grant() {
    let h = harness().await;
    let code = code_for(
        &h,
        &[
            ("response_type", "code"),
            ("client_id", MULTI.0),
            ("redirect_uri", MULTI_CB),
        ],
    )
    .await;
    // The client's other registered URI, and near misses.
    for uri in [
        MULTI_CB_QUERY,
        "https://multi.example/cb/",
        "https://evil.example/cb",
    ] {
        let r = exchange(
            &h,
            Auth::Basic(MULTI),
            &[("code", &code), ("redirect_uri", uri)],
        )
        .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
        assert_code_unused(&h, &code).await;
    }
    assert!(h.grants().await.is_empty());
}

#[tokio::test]
async fn redirect_uri_missing_when_the_authorization_request_had_one_is_invalid_grant() {
    let h = harness().await;
    let code = web_code(&h).await;
    let r = exchange(
        &h,
        Auth::Basic(WEB),
        &[("code", &code), ("code_verifier", VERIFIER)],
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_code_unused(&h, &code).await;
    assert!(h.grants().await.is_empty());
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_when_the_authorization_request_omitted_it() {
    let h = harness().await;
    let params = without(&web_params(), "redirect_uri");
    let code = code_for(&h, &params).await;
    let r = exchange(
        &h,
        Auth::Basic(WEB),
        &[("code", &code), ("code_verifier", VERIFIER)],
    )
    .await;
    assert_issued(&r);
    // Naming the (only) registered URI then is fine too; naming another is not.
    let code = code_for(&h, &params).await;
    let r = exchange(
        &h,
        Auth::Basic(WEB),
        &[
            ("code", &code),
            ("redirect_uri", "https://web.example/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_code_unused(&h, &code).await;
    assert_issued(&web_exchange(&h, &code).await);
    assert_eq!(h.grants().await.len(), 2);
}

#[tokio::test]
async fn code_issued_to_another_client_is_invalid_grant_and_not_spent() {
    let h = harness().await;
    let code = web_code(&h).await;
    let r = exchange(
        &h,
        Auth::Basic(INTRUDER),
        &[
            ("code", &code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_code_unused(&h, &code).await;
    assert!(h.grants().await.is_empty());
    // The rightful client still redeems it.
    assert_issued(&web_exchange(&h, &code).await);
    // Another client replaying a spent code is refused without touching the owner's grant.
    let r = exchange(
        &h,
        Auth::Basic(INTRUDER),
        &[
            ("code", &code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let grants = h.grants().await;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].client_id, WEB.0);
    assert_eq!(grants[0].revoked_at, None);
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let h = harness().await;
    let first = web_code(&h).await;
    let second = web_code(&h).await;
    // The last second of its life: still good.
    h.advance(AUTH_CODE_TTL - 1);
    assert_issued(&web_exchange(&h, &first).await);
    // RFC 6749 §4.1.2: "The authorization code MUST expire shortly after it is issued".
    h.advance(1);
    let r = web_exchange(&h, &second).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_code_unused(&h, &second).await;
    assert_eq!(h.grants().await.len(), 1, "only the first code's grant");
    assert_eq!(h.grants().await[0].revoked_at, None);
}

#[tokio::test]
async fn second_use_is_invalid_grant_and_revokes_the_grant_from_the_first() {
    let h = harness().await;
    let code = web_code(&h).await;
    let r = web_exchange(&h, &code).await;
    assert_issued(&r);
    let tokens = Tokens::from_body(&r.body);
    h.advance(3);
    // RFC 6749 §4.1.2: "If an authorization code is used more than once, the authorization server
    // MUST deny the request and SHOULD revoke … all tokens previously issued based on that
    // authorization code."
    let r = web_exchange(&h, &code).await;
    r.assert_status(StatusCode::BAD_REQUEST);
    r.assert_json_headers();
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(r.outcome, Some(Outcome::ReuseDetected));

    let grants = h.grants().await;
    assert_eq!(grants.len(), 1, "no second grant");
    assert_eq!(grants[0].revoked_at, Some(T0 + 3));
    assert!(!h.is_active(&tokens.access).await, "access token revoked");
    assert!(h.access_state(&tokens.access).await.unwrap().revoked);
    let r = h.refresh(WEB, &tokens.refresh).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(h.refresh_state(&tokens.refresh).await.unwrap().revoked);
    // The code keeps its first use.
    let state = code_state(&h, &code).await;
    assert_eq!(state.used_at, Some(T0));
    assert_eq!(state.grant_id.as_deref(), Some(grants[0].grant_id.as_str()));
    // A third use: still refused, nothing new.
    let r = web_exchange(&h, &code).await;
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(h.row_counts().await.access_tokens, 1);
}

#[tokio::test]
async fn second_use_revokes_tokens_refreshed_from_the_first() {
    let h = harness().await;
    let code = web_code(&h).await;
    let first = Tokens::from_body(&web_exchange(&h, &code).await.body);
    h.advance(10);
    let r = h.refresh(WEB, &first.refresh).await;
    r.assert_status(StatusCode::OK);
    let second = Tokens::from_body(&r.body);
    let r = web_exchange(&h, &code).await;
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(r.outcome, Some(Outcome::ReuseDetected));
    assert!(!h.is_active(&first.access).await);
    assert!(!h.is_active(&second.access).await);
    let r = h.refresh(WEB, &second.refresh).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(h.grants().await[0].revoked_at, Some(T0 + 10));
}

#[tokio::test]
async fn second_use_after_the_code_expired_still_revokes() {
    let h = harness().await;
    let code = web_code(&h).await;
    let tokens = Tokens::from_body(&web_exchange(&h, &code).await.body);
    h.advance(AUTH_CODE_TTL * 10);
    let r = web_exchange(&h, &code).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(r.outcome, Some(Outcome::ReuseDetected));
    assert!(!h.is_active(&tokens.access).await);
    assert_eq!(
        h.grants().await[0].revoked_at,
        Some(T0 + AUTH_CODE_TTL * 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_exchanges_of_one_code_issue_once_and_then_revoke_as_reuse() {
    let h = harness().await;
    let code = web_code(&h).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let server = h.server.clone();
        let barrier = barrier.clone();
        let req = exchange_request(
            Auth::Basic(WEB),
            &[
                ("code", &code),
                ("redirect_uri", WEB_CB),
                ("code_verifier", VERIFIER),
            ],
        );
        tasks.spawn(async move {
            barrier.wait().await;
            Resp::from(server.token(req).await)
        });
    }
    let responses: Vec<Resp> = tasks.join_all().await;
    // The store's compare-and-set lets exactly one redeem the code. Every other request is a
    // use of a code that is (by the time it is checked or redeemed) already used: RFC 6749
    // §4.1.2 reuse, which revokes the grant the winner got. So the winner's tokens end up
    // revoked too — whatever the interleaving.
    let ok: Vec<&Resp> = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "exactly one exchange succeeds");
    assert_eq!(ok[0].outcome, Some(Outcome::TokenIssued));
    for r in responses.iter().filter(|r| r.status != StatusCode::OK) {
        r.assert_status(StatusCode::BAD_REQUEST);
        r.assert_json_headers();
        assert_eq!(r.json()["error"], "invalid_grant");
        assert_eq!(r.outcome, Some(Outcome::ReuseDetected));
    }
    let tokens = Tokens::from_body(&ok[0].body);
    let grants = h.grants().await;
    assert_eq!(grants.len(), 1, "exactly one grant was created");
    assert_eq!(grants[0].revoked_at, Some(T0), "and revoked as reuse");
    let counts = h.row_counts().await;
    assert_eq!(counts.access_tokens, 1);
    assert_eq!(counts.refresh_tokens, 1);
    assert!(!h.is_active(&tokens.access).await);
    h.refresh(WEB, &tokens.refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let state = code_state(&h, &code).await;
    assert_eq!(state.used_at, Some(T0));
    assert_eq!(state.grant_id.as_deref(), Some(grants[0].grant_id.as_str()));
}

/// A memory store that yields to the scheduler right after reading a code, so concurrent
/// exchanges all read it unused before any redeems it: the store's compare-and-set
/// (`redeem_authorization_code`) alone must then pick the one winner.
#[derive(Debug, Default)]
struct YieldAfterCodeRead(MemoryStore);

impl Store for YieldAfterCodeRead {
    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.0.find_client(client_id).await
    }
    async fn insert_access_token(&self, token: &AccessTokenRecord) -> Result<(), StoreError> {
        self.0.insert_access_token(token).await
    }
    async fn create_grant(
        &self,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
    ) -> Result<(), StoreError> {
        self.0.create_grant(grant, access, refresh).await
    }
    async fn find_access_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AccessTokenState>, StoreError> {
        self.0.find_access_token(digest).await
    }
    async fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<RefreshTokenState>, StoreError> {
        self.0.find_refresh_token(digest).await
    }
    async fn rotate_refresh_token(
        &self,
        old: &TokenDigest,
        new: &RotationInput,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        self.0.rotate_refresh_token(old, new, now).await
    }
    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        self.0.insert_authorization_code(code).await
    }
    async fn find_authorization_code(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AuthorizationCodeState>, StoreError> {
        let state = self.0.find_authorization_code(digest).await;
        tokio::task::yield_now().await;
        state
    }
    async fn redeem_authorization_code(
        &self,
        code: &TokenDigest,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
        now: Timestamp,
    ) -> Result<Redemption, StoreError> {
        self.0
            .redeem_authorization_code(code, grant, access, refresh, now)
            .await
    }
    async fn revoke_access_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.0.revoke_access_token(digest, now).await
    }
    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.0.revoke_grant(grant_id, now).await
    }
    async fn revocation_events(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<tokenwarden_core::feed::FeedPage, StoreError> {
        self.0.revocation_events(after, limit).await
    }
}

#[tokio::test]
async fn exchanges_that_all_read_the_code_unused_still_redeem_it_once_and_revoke_as_reuse() {
    let store = YieldAfterCodeRead::default();
    seed_clients(&store.0).await;
    register_code_clients(&store.0).await;
    let h = Harness::with_store(store, |_| {});
    let request = assert_ok(
        h.server
            .validate_authorization_request(&form_encode(&web_params()))
            .await,
    );
    let location = h
        .server
        .issue_authorization_code(&request, ALICE)
        .await
        .unwrap();
    let code = Params::of(&location, WEB_CB)
        .get("code")
        .unwrap()
        .to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let server = h.server.clone();
        let req = exchange_request(
            Auth::Basic(WEB),
            &[
                ("code", &code),
                ("redirect_uri", WEB_CB),
                ("code_verifier", VERIFIER),
            ],
        );
        tasks.spawn(async move { Resp::from(server.token(req).await) });
    }
    let responses: Vec<Resp> = tasks.join_all().await;
    // The losers learn of the first use from the compare-and-set (`Redemption::AlreadyUsed`),
    // not from the read: the same answer, and the same revocation.
    let ok = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "exactly one exchange succeeds");
    for r in responses.iter().filter(|r| r.status != StatusCode::OK) {
        r.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(r.json()["error"], "invalid_grant");
        assert_eq!(r.outcome, Some(Outcome::ReuseDetected));
    }
    let inner = &h.store().0;
    let grants = inner.list_grants(&GrantFilter::default()).await.unwrap();
    assert_eq!(grants.len(), 1, "exactly one grant was created");
    assert_eq!(grants[0].revoked_at, Some(T0));
    let state = inner
        .find_authorization_code(&TokenDigest::of(&code))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.grant_id.as_deref(), Some(grants[0].grant_id.as_str()));
}

#[tokio::test]
async fn missing_code_is_invalid_request() {
    let h = harness().await;
    let r = exchange(
        &h,
        Auth::Basic(WEB),
        &[("redirect_uri", WEB_CB), ("code_verifier", VERIFIER)],
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // Empty counts as absent.
    let r = exchange(&h, Auth::Basic(WEB), &[("code", "")]).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn unknown_code_is_invalid_grant() {
    let h = harness().await;
    let code = web_code(&h).await;
    for bogus in [format!("{code}x"), "twc_nope".to_owned()] {
        let r = exchange(
            &h,
            Auth::Basic(WEB),
            &[
                ("code", &bogus),
                ("redirect_uri", WEB_CB),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    assert_code_unused(&h, &code).await;
}

#[tokio::test]
async fn client_not_registered_for_authorization_code_is_unauthorized_client() {
    let h = harness().await;
    let code = web_code(&h).await;
    for creds in [NO_CODE, CC_ONLY] {
        let r = exchange(
            &h,
            Auth::Basic(creds),
            &[
                ("code", &code),
                ("redirect_uri", WEB_CB),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        r.assert_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    }
    assert_code_unused(&h, &code).await;
    assert!(h.grants().await.is_empty());
}

#[tokio::test]
async fn exchange_when_storage_fails_is_503_and_spends_nothing() {
    let store = FlakyStore::default();
    seed_clients(&store.inner).await;
    register_code_clients(&store.inner).await;
    let h = Harness::with_store(store, |_| {});
    let request = assert_ok(
        h.server
            .validate_authorization_request(&form_encode(&web_params()))
            .await,
    );
    let location = h
        .server
        .issue_authorization_code(&request, ALICE)
        .await
        .unwrap();
    let code = Params::of(&location, WEB_CB)
        .get("code")
        .unwrap()
        .to_owned();
    let req = || {
        exchange_request(
            Auth::Basic(WEB),
            &[
                ("code", &code),
                ("redirect_uri", WEB_CB),
                ("code_verifier", VERIFIER),
            ],
        )
    };
    h.store().set(false, true);
    let r = h.token(req()).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    assert!(!r.text().contains("fire"), "{}", r.text());
    h.store()
        .fail_token_reads
        .store(true, std::sync::atomic::Ordering::SeqCst);
    h.store().set(false, false);
    let r = h.token(req()).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    h.store()
        .fail_token_reads
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let state = h
        .store()
        .inner
        .find_authorization_code(&TokenDigest::of(&code))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.used_at, None);
    // Storage back: the code still works.
    let r = h.token(req()).await;
    r.assert_status(StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Metadata (RFC 8414) for the authorization endpoint
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metadata_advertises_the_authorization_endpoint_pkce_and_iss() {
    let h = harness().await;
    let r = Resp::from(
        h.server
            .metadata(&Req::new(Method::GET, "/.well-known/oauth-authorization-server").build()),
    );
    r.assert_status(StatusCode::OK);
    let v = r.json();
    assert_eq!(
        v["authorization_endpoint"],
        format!("{ISSUER}/oauth2/authorize")
    );
    assert_eq!(v["response_types_supported"], json!(["code"]));
    let grant_types = v["grant_types_supported"].as_array().unwrap();
    for g in ["authorization_code", "refresh_token", "client_credentials"] {
        assert!(grant_types.contains(&json!(g)), "{g} in {grant_types:?}");
    }
    assert_eq!(v["code_challenge_methods_supported"], json!(["S256"]));
    // RFC 9207 §3.
    assert_eq!(v["authorization_response_iss_parameter_supported"], true);
}
