//! INTERFACE wire rules, over real HTTP: every bad input gets the RFC error, never a 500.

use crate::harness::*;

async fn assert_json_headers(r: &reqwest::Response) {
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
}

/// (description, path, method, content type, body, query, expected status, expected error)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    &'static str,
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_rfc_errors_with_headers_never_500() {
    let db = TempDb::new();
    let (id, secret) = db.client("svc", &["--scope", "read"]);
    let server = db.start(&[]);
    let token_url = server.url("/oauth2/token");
    let form = "application/x-www-form-urlencoded";
    let client = http();

    // (description, path, method, content type, body, query, expected status, expected error)
    let cases: Vec<Case> = vec![
        (
            "duplicate grant_type",
            "/oauth2/token",
            "POST",
            Some(form),
            b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
            "",
            400,
            "invalid_request",
        ),
        (
            "wrong content type",
            "/oauth2/token",
            "POST",
            Some("application/json"),
            b"{\"grant_type\":\"client_credentials\"}".to_vec(),
            "",
            400,
            "invalid_request",
        ),
        (
            "no content type",
            "/oauth2/token",
            "POST",
            None,
            b"grant_type=client_credentials".to_vec(),
            "",
            400,
            "invalid_request",
        ),
        (
            "non-UTF-8",
            "/oauth2/token",
            "POST",
            Some(form),
            b"grant_type=client_credentials&scope=%FF%FE".to_vec(),
            "",
            400,
            "invalid_request",
        ),
        (
            "raw non-UTF-8",
            "/oauth2/revoke",
            "POST",
            Some(form),
            b"token=\xff\xfe".to_vec(),
            "",
            400,
            "invalid_request",
        ),
        (
            "1 MiB body",
            "/oauth2/token",
            "POST",
            Some(form),
            vec![b'a'; 1 << 20],
            "",
            413,
            "invalid_request",
        ),
        (
            "missing grant_type",
            "/oauth2/token",
            "POST",
            Some(form),
            b"scope=read".to_vec(),
            "",
            400,
            "invalid_request",
        ),
        (
            "unknown grant",
            "/oauth2/token",
            "POST",
            Some(form),
            b"grant_type=password&username=a&password=b".to_vec(),
            "",
            400,
            "unsupported_grant_type",
        ),
        (
            "missing refresh_token",
            "/oauth2/token",
            "POST",
            Some(form),
            b"grant_type=refresh_token".to_vec(),
            "",
            400,
            "unauthorized_client",
        ),
        (
            "query string",
            "/oauth2/token",
            "POST",
            Some(form),
            b"grant_type=client_credentials".to_vec(),
            "?scope=read",
            400,
            "invalid_request",
        ),
        (
            "GET token",
            "/oauth2/token",
            "GET",
            None,
            vec![],
            "",
            405,
            "invalid_request",
        ),
        (
            "PUT revoke",
            "/oauth2/revoke",
            "PUT",
            Some(form),
            b"token=x".to_vec(),
            "",
            405,
            "invalid_request",
        ),
        (
            "GET introspect",
            "/oauth2/introspect",
            "GET",
            None,
            vec![],
            "",
            405,
            "invalid_request",
        ),
        (
            "revoke without token",
            "/oauth2/revoke",
            "POST",
            Some(form),
            b"token_type_hint=access_token".to_vec(),
            "",
            400,
            "invalid_request",
        ),
        (
            "introspect without token",
            "/oauth2/introspect",
            "POST",
            Some(form),
            vec![],
            "",
            400,
            "invalid_request",
        ),
        (
            "wider scope",
            "/oauth2/token",
            "POST",
            Some(form),
            b"grant_type=client_credentials&scope=admin".to_vec(),
            "",
            400,
            "invalid_scope",
        ),
    ];
    for (what, path, method, ct, body, query, status, error) in cases {
        let mut req = client
            .request(
                method.parse().unwrap(),
                format!("{}{query}", server.url(path)),
            )
            .basic_auth(&id, Some(&secret))
            .body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert_json_headers(&r).await;
        if status == 405 {
            assert_eq!(r.headers()["allow"], "POST", "{what}");
        }
        let (_, body) = json_of(r).await;
        assert_eq!(body["error"], error, "{what}: {body}");
        assert!(body["error_description"].is_string(), "{what}");
    }

    // Failed Basic authentication: 401 + WWW-Authenticate: Basic.
    let r = post_form(
        &token_url,
        &id,
        "wrong",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"tokenwarden\""
    );
    assert_eq!(json_of(r).await.1["error"], "invalid_client");

    // Two authentication methods at once.
    let r = client
        .post(&token_url)
        .basic_auth(&id, Some(&secret))
        .header("content-type", form)
        .body(format!(
            "grant_type=client_credentials&client_id={id}&client_secret={secret}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await.1["error"], "invalid_request");

    // Nothing above was a 500, and nothing was issued.
    assert_eq!(
        db_scalar(&db.path(), "SELECT COUNT(*) FROM access_tokens").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_healthz_and_metrics() {
    let db = TempDb::new();
    let server = db.start(&[]);
    let r = http()
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, m) = json_of(r).await;
    assert_eq!(m["issuer"], server.base);
    assert_eq!(m["token_endpoint"], server.url("/oauth2/token"));
    assert_eq!(m["revocation_endpoint"], server.url("/oauth2/revoke"));
    assert_eq!(
        m["introspection_endpoint"],
        server.url("/oauth2/introspect")
    );
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(m["revocation_endpoint_auth_methods_supported"].is_array());
    assert!(m["introspection_endpoint_auth_methods_supported"].is_array());

    let r = http().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");

    let r = http().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("tokenwarden_requests_total{endpoint=\"metadata\",outcome=\"ok\"} 1"),
        "{text}"
    );
}
