//! The admin CLI against a real database, and `serve --demo`'s curl lines run as printed.

use crate::harness::*;

#[test]
fn client_administration_round_trip() {
    let db = TempDb::new();
    let created = db.json(&[
        "client",
        "create",
        "--name",
        "Reporting",
        "--client-id",
        "reports",
        "--scope",
        "read write",
        "--introspect",
    ]);
    assert_eq!(created["client_id"], "reports");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tws_") && secret.len() >= 47);

    let public = db.json(&[
        "client",
        "create",
        "--name",
        "SPA",
        "--public",
        "--redirect-uri",
        "https://spa.example/cb",
    ]);
    assert!(public["client_secret"].is_null());

    let shown = db.json(&["client", "show", "reports"]);
    assert_eq!(shown["name"], "Reporting");
    assert_eq!(shown["scope"], "read write");
    assert_eq!(shown["introspect"], true);
    assert_eq!(
        shown["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert!(!shown.to_string().contains(&secret));

    let list = db.json(&["client", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);

    let rotated = db.json(&["client", "rotate-secret", "reports"]);
    assert_ne!(rotated["client_secret"], secret.as_str());

    // Duplicate id, bad grant type, public + client_credentials: non-zero exit, one line on stderr.
    for args in [
        &["client", "create", "--name", "x", "--client-id", "reports"][..],
        &[
            "client",
            "create",
            "--name",
            "x",
            "--grant-type",
            "password",
        ][..],
        &[
            "client",
            "create",
            "--name",
            "x",
            "--public",
            "--grant-type",
            "client_credentials",
        ][..],
        &["client", "show", "nope"][..],
        &[
            "client",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "/relative",
        ][..],
    ] {
        let out = db.cli(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.trim().is_empty(), "{args:?}");
    }
    let deleted = db.json(&["client", "delete", "reports"]);
    assert_eq!(deleted["deleted"], true);
    assert!(!db.cli(&["client", "show", "reports"]).status.success());
}

#[test]
fn users_grants_token_issue_and_purge() {
    let db = TempDb::new();
    db.client(
        "app",
        &[
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "read write",
        ],
    );
    let out = db.cli_stdin(&["user", "create", "carol"], "s3cret pass\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!db
        .cli_stdin(&["user", "create", "carol"], "again\n")
        .status
        .success());
    assert!(
        !db.cli_stdin(&["user", "create", "dave"], "")
            .status
            .success(),
        "empty stdin refused"
    );

    let issued = db.json(&[
        "token", "issue", "--client", "app", "--user", "carol", "--scope", "read",
    ]);
    assert!(issued["access_token"].as_str().unwrap().starts_with("twa_"));
    assert!(issued["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("twr_"));
    assert_eq!(issued["scope"], "read");
    assert!(!db
        .cli(&["token", "issue", "--client", "app", "--user", "nobody"])
        .status
        .success());
    assert!(!db
        .cli(&["token", "issue", "--client", "app", "--user", "carol", "--scope", "admin"])
        .status
        .success());
    db.json(&["token", "issue", "--client", "app", "--user", "carol"]);

    let grants = db.json(&["grant", "list", "--user", "carol"]);
    let grants = grants.as_array().unwrap();
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0]["client_id"], "app");
    assert_eq!(grants[0]["state"], "active");
    let id = grants[0]["grant_id"].as_str().unwrap();
    assert_eq!(db.json(&["grant", "revoke", id])["revoked"], 1);
    assert_eq!(db.json(&["grant", "revoke", id])["revoked"], 0);
    assert_eq!(
        db.json(&["grant", "revoke", "--user", "carol"])["revoked"],
        1
    );
    assert!(!db.cli(&["grant", "revoke"]).status.success());
    let grants = db.json(&["grant", "list", "--client", "app"]);
    assert!(grants
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["state"] == "revoked"));

    let dry = db.json(&["purge", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        dry["access_tokens"], 0,
        "revoked just now: kept for the retention period"
    );
}

#[test]
fn demo_curl_lines_work_as_printed() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("curl is required for this test");
    }
    let db = TempDb::new();
    let server = db.start(&["--demo"]);
    // Wait for the demo block (printed before "listening").
    let text = server.stderr_text();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("curl ")).collect();
    assert!(lines.len() >= 5, "{text}");
    let mut outputs = Vec::new();
    for line in &lines {
        if line.contains("/oauth2/revocations") {
            // A stream that never ends by itself: read it for a second (curl then exits 28).
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{line} --max-time 1"))
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(text.contains("event: ready\n"), "feed: {text}");
            continue;
        }
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}");
        outputs.push(String::from_utf8(out.stdout).unwrap());
    }
    assert!(
        lines.iter().any(|l| l.contains("/oauth2/revocations")),
        "the demo shows the revocation feed"
    );
    assert!(
        outputs[0].contains("\"access_token\":\"twa_"),
        "client credentials: {}",
        outputs[0]
    );
    assert!(
        outputs[1].contains("\"active\":true"),
        "introspection: {}",
        outputs[1]
    );
    assert!(
        outputs[2].contains("\"refresh_token\":\"twr_"),
        "refresh: {}",
        outputs[2]
    );
    assert!(
        outputs[3].starts_with("HTTP/1.1 200"),
        "revocation: {}",
        outputs[3]
    );
    assert!(
        outputs[4].contains("\"issuer\""),
        "metadata: {}",
        outputs[4]
    );
    drop(server);
    // Idempotent: a second --demo start on the same database works too.
    let _again = db.start(&["--demo"]);
}
