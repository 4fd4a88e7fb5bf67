//! A small notes API protected by `tokenwarden-resource`:
//!
//! | route | needs |
//! |---|---|
//! | `GET /notes` | scope `read`: the caller's notes (author = the token's `sub`) |
//! | `POST /notes` | scope `write`: body = the note's text; answers `201` with the note |
//! | `GET /me` | any valid token: the token's claims |
//!
//! [`app`] without a validator serves the same routes unprotected (author `anonymous`), for
//! measuring what the layer costs.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokenwarden_resource::{Claims, Validator};

/// One note.
#[derive(Clone, Debug, Serialize)]
pub struct Note {
    /// Position in the store.
    pub id: usize,
    /// The `sub` of the token that wrote it.
    pub author: String,
    /// The client the writing token was issued to.
    pub client_id: Option<String>,
    /// The text.
    pub text: String,
}

/// The in-memory note store.
#[derive(Clone, Debug, Default)]
pub struct Notes(Arc<Mutex<Vec<Note>>>);

const ANONYMOUS: &str = "anonymous";

fn author(claims: Option<&Claims>) -> String {
    claims
        .and_then(|c| c.subject.clone())
        .unwrap_or_else(|| ANONYMOUS.to_owned())
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /notes`: the caller's notes. `Option<Claims>`: `None` only when run with `--no-auth`.
async fn list(State(notes): State<Notes>, claims: Option<Claims>) -> Response {
    let author = author(claims.as_ref());
    let mine: Vec<Note> = notes
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|n| n.author == author)
        .cloned()
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({ "author": author, "notes": mine }),
    )
}

/// `POST /notes`: stores the body as a note by the caller.
async fn create(State(notes): State<Notes>, claims: Option<Claims>, text: String) -> Response {
    if text.trim().is_empty() {
        return (StatusCode::BAD_REQUEST, "empty note\n").into_response();
    }
    let note = {
        let mut store = notes.0.lock().unwrap_or_else(PoisonError::into_inner);
        let note = Note {
            id: store.len(),
            author: author(claims.as_ref()),
            client_id: claims.as_ref().and_then(|c| c.client_id.clone()),
            text,
        };
        store.push(note.clone());
        note
    };
    json(StatusCode::CREATED, &note)
}

/// `GET /me`: what the token says about the caller.
async fn me(claims: Option<Claims>) -> Response {
    let Some(claims) = claims else {
        return json(StatusCode::OK, &serde_json::json!({ "sub": ANONYMOUS }));
    };
    json(
        StatusCode::OK,
        &serde_json::json!({
            "sub": claims.subject,
            "username": claims.username,
            "client_id": claims.client_id,
            "scope": claims.scopes.join(" "),
            "exp": claims.exp,
            "jti": claims.jti,
        }),
    )
}

/// The API; protected when a validator is given.
pub fn app(validator: Option<&Validator>, notes: Notes) -> Router {
    let (list_route, create_route, me_route) = (get(list), axum::routing::post(create), get(me));
    let (list_route, create_route, me_route) = match validator {
        Some(v) => (
            list_route.route_layer(v.layer().require_scope("read")),
            create_route.route_layer(v.layer().require_scope("write")),
            me_route.route_layer(v.layer()),
        ),
        None => (list_route, create_route, me_route),
    };
    Router::new()
        .route("/notes", list_route.merge(create_route))
        .route("/me", me_route)
        .with_state(notes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn send(app: &Router, method: &str, body: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri("/notes")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn without_auth_notes_belong_to_anonymous() {
        let app = app(None, Notes::default());
        let (status, body) = send(&app, "POST", "hello").await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(body.contains("\"author\":\"anonymous\""), "{body}");
        let (status, body) = send(&app, "GET", "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("hello"), "{body}");
    }

    #[tokio::test]
    async fn with_auth_a_request_without_token_is_challenged() {
        let validator = Validator::builder()
            .introspection_endpoint("http://127.0.0.1:9/introspect")
            .client_credentials("api", tokenwarden_resource::ClientSecret::new("s"))
            .realm("notes")
            .build()
            .await
            .unwrap();
        let app = app(Some(&validator), Notes::default());
        for method in ["GET", "POST"] {
            let request = Request::builder()
                .method(method)
                .uri("/notes")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer realm=\"notes\""
            );
        }
    }
}
