//! The pages a person sees: sign-in, consent, connected apps — and the authorization endpoint that
//! ties them together (RFC 6749 §4.1.1). Server-rendered with compile-time-checked templates
//! (askama); one small stylesheet served by the binary; no scripts, no external resources.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokenwarden_core::authorization::{AuthorizationError, AuthorizationRequest};
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::error::ErrorCode;
use tokenwarden_core::model::{Consent, Scope, Session};
use tokenwarden_core::random::{new_id, new_session_token};
use tokenwarden_core::secret::Password;
use tokenwarden_core::store::{AccountStore, GrantFilter};
use tokenwarden_core::wire::{parse_form, Form, MAX_BODY_BYTES};

use crate::admin::verify_password;
use crate::backend::Health;
use crate::http::AppState;
use crate::session::{
    self, csrf_matches, set_cookie, SignedIn, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL,
};

/// The stylesheet, compiled into the binary.
pub const STYLESHEET: &str = include_str!("../static/style.css");

/// Content-Security-Policy of every page: nothing but our own stylesheet, no framing.
/// (`form-action` is left out on purpose: browsers apply it to the redirect after a form post,
/// and the consent form's redirect goes to the client's registered URI.)
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Failed sign-ins allowed per user name, and per client address, within [`FAILURE_WINDOW`].
const MAX_FAILURES_PER_USER: usize = 5;
const MAX_FAILURES_PER_ADDRESS: usize = 20;
const FAILURE_WINDOW: i64 = 300;

/// Failed sign-in attempts per key (`user:NAME`, `addr:IP`), for rate limiting. Kept in memory:
/// per node, reset on restart — a brake on guessing, not an audit log.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<i64>>>,
}

impl LoginLimiter {
    fn recent(&self, key: &str, now: i64) -> usize {
        let Ok(mut map) = self.failures.lock() else {
            return usize::MAX;
        };
        match map.get_mut(key) {
            Some(times) => {
                times.retain(|t| now - t < FAILURE_WINDOW);
                times.len()
            }
            None => 0,
        }
    }
    /// Whether `username` from `addr` may try again now.
    pub fn allowed(&self, username: &str, addr: &str, now: i64) -> bool {
        self.recent(&format!("user:{username}"), now) < MAX_FAILURES_PER_USER
            && self.recent(&format!("addr:{addr}"), now) < MAX_FAILURES_PER_ADDRESS
    }
    /// Records a failed attempt.
    pub fn failed(&self, username: &str, addr: &str, now: i64) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > 100_000 {
            map.retain(|_, times| times.iter().any(|t| now - t < FAILURE_WINDOW));
        }
        for key in [format!("user:{username}"), format!("addr:{addr}")] {
            map.entry(key).or_default().push(now);
        }
    }
    /// Clears a user's failures after a successful sign-in.
    pub fn succeeded(&self, username: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&format!("user:{username}"));
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
    return_to: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

struct ScopeWords {
    name: String,
    description: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    username: &'a str,
    scopes: Vec<ScopeWords>,
    csrf_token: &'a str,
    request: &'a str,
}

struct AppView {
    client_id: String,
    client_id_path: String,
    name: String,
    scopes: String,
    first_authorized: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    username: &'a str,
    csrf_token: &'a str,
    apps: Vec<AppView>,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// Describes a scope in words for the consent page.
fn scope_words(scope: &Scope) -> Vec<ScopeWords> {
    scope
        .iter()
        .map(|s| ScopeWords {
            name: s.to_owned(),
            description: match s {
                "read" => "read your data".to_owned(),
                "write" => "create, change and delete your data".to_owned(),
                "profile" => "see your user name and profile".to_owned(),
                "email" => "see your email address".to_owned(),
                "openid" => "confirm who you are".to_owned(),
                "offline_access" => "keep access while you are away".to_owned(),
                other => format!("use the “{other}” permission"),
            },
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM UTC` from unix seconds (proleptic Gregorian; Howard Hinnant's civil_from_days).
pub fn format_utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// An HTML response with the security headers every page carries.
fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    let (status, body) = match body {
        Ok(b) => (status, b),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            )
        }
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    response
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, ErrorPage { title, message }.render())
}

fn unavailable() -> Response {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The server cannot complete this right now. Please try again in a moment.",
    )
}

/// A redirect (`302` for the authorization response, as in RFC 6749 §4.1.2's example; `303` after
/// a form post so the browser follows with GET).
fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, v);
    }
    secure_headers(response.headers_mut());
    response
}

/// Only our own pages are valid targets after sign-in: a path, not `//host` (open redirect).
fn safe_return_to(path: Option<&str>) -> &str {
    match path {
        Some(p)
            if (p.starts_with("/oauth2/authorize?") || p == "/account") && !p.contains('\\') =>
        {
            p
        }
        _ => "/account",
    }
}

fn login_location(return_to: &str) -> String {
    tokenwarden_core::authorization::append_query("/login", &[("return_to", return_to)])
}

async fn form_of(request: Request) -> Option<(HeaderMap, Option<SocketAddr>, Form)> {
    let (parts, body) = request.into_parts();
    let addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.ok()?;
    let form = parse_form(&bytes).ok()?;
    Some((parts.headers, addr, form))
}

fn bad_form() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        "The form could not be read. Go back, reload the page and try again.",
    )
}

fn expired_form() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form is no longer valid (it may have been open too long, or come from another site). Go back, reload the page and try again.",
    )
}

/// `GET /static/style.css`.
pub async fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// `GET /oauth2/authorize` (RFC 6749 §4.1.1): validate, then sign-in, then consent (skipped when
/// remembered), then the redirect with the code.
pub async fn authorize<S: AccountStore + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    let query = request.uri().query().unwrap_or_default().to_owned();
    let server = &st.server;
    let auth = match server.validate_authorization_request(&query).await {
        Ok(a) => a,
        Err(AuthorizationError::Page(message)) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                &message,
            )
        }
        Err(AuthorizationError::Redirect(location)) => {
            return redirect(StatusCode::FOUND, &location)
        }
    };
    let signed_in = match session::current(server.store(), request.headers(), server.now()).await {
        Ok(s) => s,
        Err(_) => return unavailable(),
    };
    let Some(signed_in) = signed_in else {
        return redirect(
            StatusCode::SEE_OTHER,
            &login_location(&format!("/oauth2/authorize?{query}")),
        );
    };
    let username = signed_in.session.username.clone();
    match server
        .store()
        .find_consent(&username, &auth.client.client_id)
        .await
    {
        Ok(Some(consent)) if auth.scope.is_subset(&consent.scope) => {
            grant_code(&st, &auth, &username).await
        }
        Ok(_) => html(
            StatusCode::OK,
            ConsentPage {
                client_name: &auth.client.name,
                username: &username,
                scopes: scope_words(&auth.scope),
                csrf_token: &signed_in.csrf(),
                request: &query,
            }
            .render(),
        ),
        Err(_) => unavailable(),
    }
}

async fn grant_code<S: AccountStore + Health + 'static>(
    st: &AppState<S>,
    auth: &AuthorizationRequest,
    username: &str,
) -> Response {
    match st.server.issue_authorization_code(auth, username).await {
        Ok(location) => redirect(StatusCode::SEE_OTHER, &location),
        Err(_) => redirect(
            StatusCode::SEE_OTHER,
            &auth.error_location(
                ErrorCode::TemporarilyUnavailable,
                "the authorization server cannot issue a code right now",
            ),
        ),
    }
}

/// `POST /consent`: Approve or Deny (fields `decision`, `request` — the original authorization
/// query — and `csrf_token`).
pub async fn consent<S: AccountStore + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    let Some((headers, _, form)) = form_of(request).await else {
        return bad_form();
    };
    let server = &st.server;
    let Ok(signed_in) = session::current(server.store(), &headers, server.now()).await else {
        return unavailable();
    };
    let query = form.get("request").unwrap_or_default().to_owned();
    let Some(signed_in) = signed_in else {
        return redirect(
            StatusCode::SEE_OTHER,
            &login_location(&format!("/oauth2/authorize?{query}")),
        );
    };
    if !csrf_matches(form.get("csrf_token"), &signed_in.csrf()) {
        return expired_form();
    }
    let auth = match server.validate_authorization_request(&query).await {
        Ok(a) => a,
        Err(AuthorizationError::Page(message)) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                &message,
            )
        }
        Err(AuthorizationError::Redirect(location)) => {
            return redirect(StatusCode::SEE_OTHER, &location)
        }
    };
    let username = &signed_in.session.username;
    match form.get("decision") {
        Some("approve") => {
            // Remembered per (user, client): the union of what was approved so far. A failed read
            // must not silently shrink the remembered consent, so it is a 503 like any other.
            let previous = match server
                .store()
                .find_consent(username, &auth.client.client_id)
                .await
            {
                Ok(p) => p,
                Err(_) => return unavailable(),
            };
            let scope = match &previous {
                Some(p) => auth.scope.union(&p.scope),
                None => auth.scope.clone(),
            };
            let consent = Consent {
                username: username.clone(),
                client_id: auth.client.client_id.clone(),
                scope,
                granted_at: server.now(),
            };
            if server.store().save_consent(&consent).await.is_err() {
                return unavailable();
            }
            grant_code(&st, &auth, username).await
        }
        // RFC 6749 §4.1.2.1 access_denied: "The resource owner or authorization server denied the request."
        Some("deny") => redirect(
            StatusCode::SEE_OTHER,
            &auth.error_location(ErrorCode::AccessDenied, "the user denied the request"),
        ),
        _ => bad_form(),
    }
}

fn login_page(
    csrf: &str,
    return_to: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
    secure: bool,
) -> Response {
    let mut response = html(
        status,
        LoginPage {
            csrf_token: csrf,
            return_to,
            username,
            error,
        }
        .render(),
    );
    if let Some(c) = set_cookie(LOGIN_CSRF_COOKIE, csrf, 3600, secure) {
        response.headers_mut().append(SET_COOKIE, c);
    }
    response
}

fn is_https<S>(st: &AppState<S>) -> bool {
    st.server.config().issuer.starts_with("https://")
}

/// `GET /login`.
pub async fn login_form<S: AccountStore + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    let params =
        parse_form(request.uri().query().unwrap_or_default().as_bytes()).unwrap_or_default();
    let return_to = safe_return_to(params.get("return_to")).to_owned();
    let server = &st.server;
    match session::current(server.store(), request.headers(), server.now()).await {
        Ok(Some(_)) => return redirect(StatusCode::SEE_OTHER, &return_to),
        Ok(None) => {}
        Err(_) => return unavailable(),
    }
    let csrf = match session::cookie(request.headers(), LOGIN_CSRF_COOKIE) {
        Some(c)
            if c.len() >= 22
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            c.to_owned()
        }
        _ => match new_id(server.random()) {
            Ok(c) => c,
            Err(_) => return unavailable(),
        },
    };
    login_page(&csrf, &return_to, "", None, StatusCode::OK, is_https(&st))
}

/// `POST /login` (fields `username`, `password`, `csrf_token`, `return_to`).
pub async fn login<S: AccountStore + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    let Some((headers, addr, form)) = form_of(request).await else {
        return bad_form();
    };
    let server = &st.server;
    let secure = is_https(&st);
    let return_to = safe_return_to(form.get("return_to")).to_owned();
    let Some(csrf) = session::cookie(&headers, LOGIN_CSRF_COOKIE).map(str::to_owned) else {
        return expired_form();
    };
    if !csrf_matches(form.get("csrf_token"), &csrf) {
        return expired_form();
    }
    let username = form.get("username").unwrap_or_default().to_owned();
    let password = Password::new(form.get("password").unwrap_or_default().to_owned());
    let addr = addr.map(|a| a.ip().to_string()).unwrap_or_default();
    let now = server.now();
    if !st.login_limiter.allowed(&username, &addr, now) {
        return login_page(
            &csrf,
            &return_to,
            &username,
            Some("Too many failed attempts. Wait a few minutes and try again."),
            StatusCode::TOO_MANY_REQUESTS,
            secure,
        );
    }
    let user = match server.store().find_user(&username).await {
        Ok(u) => u,
        Err(_) => return unavailable(),
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    // Argon2 is slow on purpose: keep it off the async workers. Unknown users are checked
    // against a dummy hash, so timing does not reveal which names exist.
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, hash.as_deref()))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        st.login_limiter.failed(&username, &addr, now);
        return login_page(
            &csrf,
            &return_to,
            &username,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
            secure,
        );
    };
    st.login_limiter.succeeded(&username);
    let Ok(token) = new_session_token(server.random()) else {
        return unavailable();
    };
    let session = Session {
        digest: TokenDigest::of(token.secret()),
        username: user.username,
        created_at: now,
        expires_at: now + SESSION_TTL,
    };
    if server.store().create_session(&session).await.is_err() {
        return unavailable();
    }
    let mut response = redirect(StatusCode::SEE_OTHER, &return_to);
    if let Some(c) = set_cookie(SESSION_COOKIE, token.secret(), SESSION_TTL, secure) {
        response.headers_mut().append(SET_COOKIE, c);
    }
    if let Some(c) = set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure) {
        response.headers_mut().append(SET_COOKIE, c);
    }
    response
}

/// `POST /logout` (field `csrf_token`): ends the session.
pub async fn logout<S: AccountStore + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    let Some((headers, _, form)) = form_of(request).await else {
        return bad_form();
    };
    let server = &st.server;
    let Ok(signed_in) = session::current(server.store(), &headers, server.now()).await else {
        return unavailable();
    };
    if let Some(signed_in) = signed_in {
        if !csrf_matches(form.get("csrf_token"), &signed_in.csrf()) {
            return expired_form();
        }
        if server
            .store()
            .delete_session(&signed_in.session.digest)
            .await
            .is_err()
        {
            return unavailable();
        }
    }
    let mut response = redirect(StatusCode::SEE_OTHER, "/login");
    if let Some(c) = set_cookie(SESSION_COOKIE, "", 0, is_https(&st)) {
        response.headers_mut().append(SET_COOKIE, c);
    }
    response
}

async fn require_session<S: AccountStore + Health + 'static>(
    st: &AppState<S>,
    headers: &HeaderMap,
) -> Result<SignedIn, Response> {
    match session::current(st.server.store(), headers, st.server.now()).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(redirect(StatusCode::SEE_OTHER, &login_location("/account"))),
        Err(_) => Err(unavailable()),
    }
}

/// `GET /account`: the signed-in user's connected apps (active grants, one entry per client).
pub async fn account<S: AccountStore + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    let signed_in = match require_session(&st, request.headers()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let store = st.server.store();
    let username = signed_in.session.username.clone();
    let filter = GrantFilter {
        username: Some(username.clone()),
        client_id: None,
    };
    let Ok(grants) = store.list_grants(&filter).await else {
        return unavailable();
    };
    // client_id → (scopes, first authorized, last used)
    let mut by_client: BTreeMap<String, (Scope, i64, i64)> = BTreeMap::new();
    for g in grants.iter().filter(|g| g.revoked_at.is_none()) {
        let last = g.last_refreshed_at.unwrap_or(g.created_at);
        let e =
            by_client
                .entry(g.client_id.clone())
                .or_insert((Scope::default(), g.created_at, last));
        e.0 = e.0.union(&g.scope);
        e.1 = e.1.min(g.created_at);
        e.2 = e.2.max(last);
    }
    let mut apps = Vec::new();
    for (client_id, (scopes, first, last)) in by_client {
        let Ok(client) = store.find_client(&client_id).await else {
            return unavailable();
        };
        let Some(client) = client else { continue };
        apps.push(AppView {
            client_id_path: utf8_percent_encode(&client_id, NON_ALPHANUMERIC).to_string(),
            client_id,
            name: client.name,
            scopes: scopes.to_string(),
            first_authorized: format_utc(first),
            last_used: format_utc(last),
        });
    }
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    let params =
        parse_form(request.uri().query().unwrap_or_default().as_bytes()).unwrap_or_default();
    let revoked = match params.get("revoked") {
        Some(id) => store.find_client(id).await.ok().flatten().map(|c| c.name),
        None => None,
    };
    html(
        StatusCode::OK,
        AccountPage {
            username: &username,
            csrf_token: &signed_in.csrf(),
            apps,
            revoked,
        }
        .render(),
    )
}

/// `POST /account/apps/{client_id}/revoke`: revokes every grant of the signed-in user for that
/// client (every token in them ends now) and forgets the consent, so reconnecting asks again.
pub async fn revoke_app<S: AccountStore + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    Path(client_id): Path<String>,
    request: Request,
) -> Response {
    let Some((headers, _, form)) = form_of(request).await else {
        return bad_form();
    };
    let signed_in = match require_session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !csrf_matches(form.get("csrf_token"), &signed_in.csrf()) {
        return expired_form();
    }
    let store = st.server.store();
    let username = signed_in.session.username.clone();
    let filter = GrantFilter {
        username: Some(username.clone()),
        client_id: Some(client_id.clone()),
    };
    let now = st.server.now();
    match store.revoke_grants(&filter, now).await {
        Ok(n) => {
            tracing::info!(client_id = %client_id, grants = n, "user revoked app access");
            st.feed.poke();
        }
        Err(_) => return unavailable(),
    }
    if store.delete_consent(&username, &client_id).await.is_err() {
        return unavailable();
    }
    redirect(
        StatusCode::SEE_OTHER,
        &tokenwarden_core::authorization::append_query("/account", &[("revoked", &client_id)]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(1_795_300_000), "2026-11-21 22:26 UTC");
    }

    #[test]
    fn return_to_stays_on_our_pages() {
        assert_eq!(
            safe_return_to(Some("/oauth2/authorize?client_id=a")),
            "/oauth2/authorize?client_id=a"
        );
        assert_eq!(safe_return_to(Some("//evil.example/")), "/account");
        assert_eq!(safe_return_to(Some("https://evil.example/")), "/account");
        assert_eq!(safe_return_to(None), "/account");
    }

    #[test]
    fn login_limiter_blocks_after_five_failures_per_user() {
        let l = LoginLimiter::default();
        for _ in 0..5 {
            assert!(l.allowed("alice", "1.2.3.4", 100));
            l.failed("alice", "1.2.3.4", 100);
        }
        assert!(!l.allowed("alice", "5.6.7.8", 100));
        assert!(l.allowed("bob", "1.2.3.4", 100));
        assert!(l.allowed("alice", "1.2.3.4", 100 + FAILURE_WINDOW));
    }
}
