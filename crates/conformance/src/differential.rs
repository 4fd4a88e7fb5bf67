//! The differential run: the same pseudo-random sequence of operations on a backend and on the
//! reference `MemoryStore`, comparing every answer — whatever the memory store does, the backend
//! must do too. Shared by the SQLite and PostgreSQL test binaries.

use std::collections::BTreeSet;
use std::fmt::Debug;

use tokenwarden_core::model::{AuthorizationCodeRecord, Consent, Grant, GrantType, Session};
use tokenwarden_core::store::memory::MemoryStore;
use tokenwarden_core::store::{
    AccountStore, AdminStore, GrantFilter, PurgePolicy, Redemption, Rotation, RotationInput, Store,
    StoreError,
};

use crate::fixtures::*;

/// A small deterministic generator (no dependency, same run every time).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn same<T: PartialEq + Debug>(
    backend: &str,
    step: usize,
    op: &str,
    a: Result<T, StoreError>,
    b: Result<T, StoreError>,
) {
    match (&a, &b) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "step {step} {op}"),
        (Err(StoreError::Conflict), Err(StoreError::Conflict)) => {}
        _ => panic!("step {step} {op}: memory {a:?}, {backend} {b:?}"),
    }
}

/// `Rotation` has no `PartialEq`; its `Debug` form shows every field of the state.
fn rotation(r: Result<Rotation, StoreError>) -> Result<String, StoreError> {
    r.map(|r| format!("{r:?}"))
}

fn filter(rng: &mut Lcg) -> GrantFilter {
    GrantFilter {
        username: (rng.below(2) == 0).then(|| format!("u{}", rng.below(2))),
        client_id: (rng.below(2) == 0).then(|| format!("c{}", rng.below(3))),
    }
}

/// Runs 800 pseudo-random operations on `sql` and on a fresh `MemoryStore`, comparing every
/// answer, and fails if the run did not reach every interesting outcome. `backend` names `sql` in
/// failure messages.
pub async fn answers_like_the_memory_store<S: AccountStore>(sql: &S, backend: &str) {
    let mem = MemoryStore::default();
    let mut rng = Lcg(0x5eed);
    let mut now = 10_000i64;
    let mut next_token = 0u64;
    // Every token minted so far, with its grant (refresh tokens) for building successors.
    let mut access_tokens: Vec<String> = Vec::new();
    let mut refresh_tokens: Vec<(String, Grant)> = Vec::new();
    let mut codes: Vec<AuthorizationCodeRecord> = Vec::new();
    let mut sessions: Vec<String> = Vec::new();
    // Which interesting outcomes the run reached, so a degenerate sequence fails the test.
    let mut seen = BTreeSet::new();

    for step in 0..800 {
        match rng.below(40) {
            0 => {
                let mut c = client(&format!("c{}", rng.below(3)));
                if rng.below(2) == 0 {
                    c.secret_digest = None;
                    c.grant_types = vec![GrantType::ClientCredentials];
                }
                same(
                    backend,
                    step,
                    "create_client",
                    mem.create_client(&c).await,
                    sql.create_client(&c).await,
                );
            }
            1 => {
                let u = user(&format!("u{}", rng.below(2)));
                same(
                    backend,
                    step,
                    "create_user",
                    mem.create_user(&u).await,
                    sql.create_user(&u).await,
                );
                same(
                    backend,
                    step,
                    "find_user",
                    mem.find_user(&u.username).await,
                    sql.find_user(&u.username).await,
                );
            }
            2..=4 => {
                let g = grant(
                    &format!("g{}", rng.below(12)),
                    &format!("c{}", rng.below(3)),
                    &format!("u{}", rng.below(2)),
                    now,
                );
                let a_name = fresh(&mut next_token, "twa");
                let r_name = (rng.below(3) > 0).then(|| fresh(&mut next_token, "twr"));
                let a = access(
                    &a_name,
                    Some(&g),
                    &g.client_id,
                    now,
                    now + rng.below(3_000) as i64,
                );
                let r = r_name
                    .as_ref()
                    .map(|name| refresh(name, &g, now, now + rng.below(6_000) as i64));
                let (x, y) = (
                    mem.create_grant(&g, &a, r.as_ref()).await,
                    sql.create_grant(&g, &a, r.as_ref()).await,
                );
                if x.is_err() {
                    seen.insert("grant conflict");
                }
                if x.is_ok() {
                    access_tokens.push(a_name);
                    if let Some(name) = r_name {
                        refresh_tokens.push((name, g));
                    }
                }
                same(backend, step, "create_grant", x, y);
            }
            5 => {
                let name = fresh(&mut next_token, "twa");
                let a = access(
                    &name,
                    None,
                    &format!("c{}", rng.below(3)),
                    now,
                    now + rng.below(3_000) as i64,
                );
                same(
                    backend,
                    step,
                    "insert_access_token",
                    mem.insert_access_token(&a).await,
                    sql.insert_access_token(&a).await,
                );
                access_tokens.push(name);
            }
            6..=12 => {
                if refresh_tokens.is_empty() {
                    continue;
                }
                // Half the time one of the newest: re-presenting a just-used token is the
                // interesting case, and old tokens are mostly revoked or purged.
                let len = refresh_tokens.len() as u64;
                let i = if rng.below(2) == 0 {
                    len.saturating_sub(1 + rng.below(3)) as usize
                } else {
                    rng.below(len) as usize
                };
                let (old, g) = refresh_tokens[i].clone();
                let (na, nr) = (fresh(&mut next_token, "twa"), fresh(&mut next_token, "twr"));
                // Sometimes a late retry, so expiry is exercised before purge removes the token.
                let late = if rng.below(4) == 0 {
                    rng.below(25_000) as i64
                } else {
                    0
                };
                let at = now + late;
                let input = RotationInput {
                    access: access(&na, Some(&g), &g.client_id, at, at + 3_000),
                    refresh: refresh(&nr, &g, at, at + 20_000),
                    sealed_response: format!("sealed {old}").into_bytes(),
                };
                let (x, y) = (
                    mem.rotate_refresh_token(&d(&old), &input, at).await,
                    sql.rotate_refresh_token(&d(&old), &input, at).await,
                );
                match &x {
                    Ok(Rotation::Rotated) => {
                        seen.insert("rotated");
                        access_tokens.push(na);
                        refresh_tokens.push((nr, g));
                    }
                    Ok(Rotation::NotRotated(s)) if s.revoked => _ = seen.insert("refused revoked"),
                    Ok(Rotation::NotRotated(s)) if s.used_at.is_some() => {
                        _ = seen.insert("refused used")
                    }
                    Ok(Rotation::NotRotated(_)) => _ = seen.insert("refused expired"),
                    Ok(Rotation::Unknown) => _ = seen.insert("unknown (purged)"),
                    Err(_) => {}
                }
                same(
                    backend,
                    step,
                    "rotate_refresh_token",
                    rotation(x),
                    rotation(y),
                );
            }
            13 | 14 => {
                if let Some(t) = pick(&mut rng, &access_tokens) {
                    same(
                        backend,
                        step,
                        "revoke_access_token",
                        mem.revoke_access_token(&d(t), now).await,
                        sql.revoke_access_token(&d(t), now).await,
                    );
                }
            }
            15 => {
                let id = format!("g{}", rng.below(12));
                same(
                    backend,
                    step,
                    "revoke_grant",
                    mem.revoke_grant(&id, now).await,
                    sql.revoke_grant(&id, now).await,
                );
            }
            16 => {
                let id = format!("c{}", rng.below(3));
                let x = mem.delete_client(&id, now).await;
                if matches!(x, Ok(Some(n)) if n > 0) {
                    seen.insert("client deleted with grants");
                }
                same(
                    backend,
                    step,
                    "delete_client",
                    x,
                    sql.delete_client(&id, now).await,
                );
            }
            17 => {
                let f = filter(&mut rng);
                let x = mem.revoke_grants(&f, now).await;
                if matches!(x, Ok(n) if n > 0) {
                    seen.insert("grants revoked by filter");
                }
                same(
                    backend,
                    step,
                    "revoke_grants",
                    x,
                    sql.revoke_grants(&f, now).await,
                );
            }
            18 | 19 => {
                let p = PurgePolicy {
                    revoked_retention: rng.below(3_000) as i64,
                    batch_size: rng.below(4) as u32,
                    event_retention: rng.below(3_000) as i64,
                };
                let dry = rng.below(2) == 0;
                let x = mem.purge(now, p, dry).await;
                if let Ok(c) = &x {
                    if c.grants > 0 && c.refresh_tokens > 0 {
                        seen.insert(if dry { "dry purge" } else { "purge" });
                    }
                    if c.authorization_codes > 0 && c.sessions > 0 && !dry {
                        seen.insert("purge codes and sessions");
                    }
                }
                same(backend, step, "purge", x, sql.purge(now, p, dry).await);
            }
            20 => {
                let id = format!("c{}", rng.below(3));
                let digest = d(&fresh(&mut next_token, "secret"));
                same(
                    backend,
                    step,
                    "set_client_secret",
                    mem.set_client_secret(&id, &digest).await,
                    sql.set_client_secret(&id, &digest).await,
                );
            }
            21 | 22 => {
                // Now and then a digest that exists, which must conflict.
                let name = match pick(&mut rng, &codes) {
                    Some(c) if rng.below(8) == 0 => c.digest,
                    _ => d(&fresh(&mut next_token, "twc")),
                };
                let c = AuthorizationCodeRecord {
                    digest: name,
                    client_id: format!("c{}", rng.below(3)),
                    username: format!("u{}", rng.below(2)),
                    redirect_uri: "https://c.example/cb".into(),
                    redirect_uri_given: rng.below(2) == 0,
                    scope: scope(["read", "read write", ""][rng.below(3) as usize]),
                    code_challenge: (rng.below(2) == 0).then(|| format!("challenge-{step}")),
                    issued_at: now,
                    expires_at: now + 1 + rng.below(1_200) as i64,
                };
                let x = mem.insert_authorization_code(&c).await;
                match &x {
                    Ok(()) => codes.push(c.clone()),
                    Err(_) => _ = seen.insert("code conflict"),
                }
                same(
                    backend,
                    step,
                    "insert_authorization_code",
                    x,
                    sql.insert_authorization_code(&c).await,
                );
            }
            23..=25 => {
                // Mostly one of the newest codes; sometimes an old one (reused, expired, purged).
                let len = codes.len() as u64;
                if len == 0 {
                    continue;
                }
                let i = if rng.below(2) == 0 {
                    len.saturating_sub(1 + rng.below(2)) as usize
                } else {
                    rng.below(len) as usize
                };
                let c = codes[i].clone();
                // Now and then a grant id that may exist, which must conflict and change nothing.
                let grant_id = if rng.below(5) == 0 {
                    format!("g{}", rng.below(12))
                } else {
                    fresh(&mut next_token, "gc")
                };
                let late = if rng.below(4) == 0 {
                    rng.below(2_000) as i64
                } else {
                    0
                };
                let at = now + late;
                let mut g = grant(&grant_id, &c.client_id, &c.username, at);
                g.scope = c.scope.clone();
                let (na, nr) = (fresh(&mut next_token, "twa"), fresh(&mut next_token, "twr"));
                let a = access(
                    &na,
                    Some(&g),
                    &g.client_id,
                    at,
                    at + 1 + rng.below(3_000) as i64,
                );
                let r = (rng.below(3) > 0).then(|| refresh(&nr, &g, at, at + 20_000));
                let (x, y) = (
                    mem.redeem_authorization_code(&c.digest, &g, &a, r.as_ref(), at)
                        .await,
                    sql.redeem_authorization_code(&c.digest, &g, &a, r.as_ref(), at)
                        .await,
                );
                match &x {
                    Ok(Redemption::Redeemed) => {
                        seen.insert("code redeemed");
                        access_tokens.push(na);
                        if r.is_some() {
                            refresh_tokens.push((nr, g));
                        }
                    }
                    Ok(Redemption::AlreadyUsed { grant_id: Some(_) }) => {
                        _ = seen.insert("code reused")
                    }
                    Ok(Redemption::AlreadyUsed { grant_id: None }) => {
                        _ = seen.insert("code expired")
                    }
                    Ok(Redemption::Unknown) => _ = seen.insert("code unknown (purged)"),
                    Err(_) => _ = seen.insert("redeem conflict"),
                }
                same(backend, step, "redeem_authorization_code", x, y);
            }
            26 | 27 => {
                let name = match pick(&mut rng, &sessions) {
                    Some(s) if rng.below(8) == 0 => s.clone(),
                    _ => fresh(&mut next_token, "tws"),
                };
                let s = Session {
                    digest: d(&name),
                    username: format!("u{}", rng.below(2)),
                    created_at: now,
                    expires_at: now + 1 + rng.below(2_000) as i64,
                };
                let x = mem.create_session(&s).await;
                match &x {
                    Ok(()) => sessions.push(name),
                    Err(_) => _ = seen.insert("session conflict"),
                }
                same(
                    backend,
                    step,
                    "create_session",
                    x,
                    sql.create_session(&s).await,
                );
            }
            28 => {
                if let Some(s) = pick(&mut rng, &sessions) {
                    same(
                        backend,
                        step,
                        "delete_session",
                        mem.delete_session(&d(s)).await,
                        sql.delete_session(&d(s)).await,
                    );
                }
            }
            29 | 30 => {
                let c = Consent {
                    username: format!("u{}", rng.below(2)),
                    client_id: format!("c{}", rng.below(3)),
                    scope: scope(["read", "read write", "write"][rng.below(3) as usize]),
                    granted_at: now,
                };
                same(
                    backend,
                    step,
                    "save_consent",
                    mem.save_consent(&c).await,
                    sql.save_consent(&c).await,
                );
            }
            31 => {
                let (u, c) = (format!("u{}", rng.below(2)), format!("c{}", rng.below(3)));
                same(
                    backend,
                    step,
                    "delete_consent",
                    mem.delete_consent(&u, &c).await,
                    sql.delete_consent(&u, &c).await,
                );
            }
            _ => now += rng.below(400) as i64,
        }

        // After every step the observable state agrees.
        same(
            backend,
            step,
            "list_clients",
            mem.list_clients().await,
            sql.list_clients().await,
        );
        let f = filter(&mut rng);
        same(
            backend,
            step,
            "list_grants",
            mem.list_grants(&f).await,
            sql.list_grants(&f).await,
        );
        if let Some(t) = pick(&mut rng, &access_tokens) {
            same(
                backend,
                step,
                "find_access_token",
                mem.find_access_token(&d(t)).await,
                sql.find_access_token(&d(t)).await,
            );
        }
        if let Some((t, _)) = pick(&mut rng, &refresh_tokens) {
            same(
                backend,
                step,
                "find_refresh_token",
                mem.find_refresh_token(&d(t)).await,
                sql.find_refresh_token(&d(t)).await,
            );
        }
        let c = format!("c{}", rng.below(3));
        same(
            backend,
            step,
            "find_client",
            mem.find_client(&c).await,
            sql.find_client(&c).await,
        );
        if let Some(code) = pick(&mut rng, &codes) {
            same(
                backend,
                step,
                "find_authorization_code",
                mem.find_authorization_code(&code.digest).await,
                sql.find_authorization_code(&code.digest).await,
            );
        }
        if let Some(s) = pick(&mut rng, &sessions) {
            same(
                backend,
                step,
                "find_session",
                mem.find_session(&d(s)).await,
                sql.find_session(&d(s)).await,
            );
        }
        let u = format!("u{}", rng.below(2));
        same(
            backend,
            step,
            "find_consent",
            mem.find_consent(&u, &c).await,
            sql.find_consent(&u, &c).await,
        );
    }

    // Everything, token by token, at the end.
    for t in &access_tokens {
        same(
            backend,
            0,
            "final access",
            mem.find_access_token(&d(t)).await,
            sql.find_access_token(&d(t)).await,
        );
    }
    for (t, _) in &refresh_tokens {
        same(
            backend,
            0,
            "final refresh",
            mem.find_refresh_token(&d(t)).await,
            sql.find_refresh_token(&d(t)).await,
        );
    }
    for c in &codes {
        same(
            backend,
            0,
            "final code",
            mem.find_authorization_code(&c.digest).await,
            sql.find_authorization_code(&c.digest).await,
        );
    }
    for s in &sessions {
        same(
            backend,
            0,
            "final session",
            mem.find_session(&d(s)).await,
            sql.find_session(&d(s)).await,
        );
    }
    for u in ["u0", "u1"] {
        for c in ["c0", "c1", "c2"] {
            same(
                backend,
                0,
                "final consent",
                mem.find_consent(u, c).await,
                sql.find_consent(u, c).await,
            );
        }
    }
    // The revocation feed: same head and floor, and the same events. Within one `revoke_grants`
    // call the order of grants is the backend's, so events are compared as a set of
    // (what, when) with the numbering checked separately.
    let (m, q) = (
        mem.revocation_events(0, u32::MAX).await,
        sql.revocation_events(0, u32::MAX).await,
    );
    let (m, q) = match (m, q) {
        (Ok(m), Ok(q)) => (m, q),
        (m, q) => panic!("final revocation_events: memory {m:?}, {backend} {q:?}"),
    };
    assert_eq!((m.head, m.floor), (q.head, q.floor), "final feed bounds");
    let key = |e: &tokenwarden_core::feed::RevocationEvent| {
        (
            e.at,
            e.kind.as_str(),
            e.client_id.clone(),
            e.token,
            e.grant_id.clone(),
            e.subject.clone(),
        )
    };
    let seqs =
        |p: &tokenwarden_core::feed::FeedPage| p.events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&m), seqs(&q), "final feed numbering");
    let (mut mk, mut qk): (Vec<_>, Vec<_>) = (
        m.events.iter().map(key).collect(),
        q.events.iter().map(key).collect(),
    );
    mk.sort();
    qk.sort();
    assert_eq!(mk, qk, "final feed events");
    assert!(m.head > 0, "the run revoked something");

    let expected = [
        "client deleted with grants",
        "code conflict",
        "code expired",
        "code redeemed",
        "code reused",
        "code unknown (purged)",
        "dry purge",
        "grant conflict",
        "grants revoked by filter",
        "purge",
        "purge codes and sessions",
        "redeem conflict",
        "refused expired",
        "refused revoked",
        "refused used",
        "rotated",
        "session conflict",
        "unknown (purged)",
    ];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), expected);
}

fn fresh(counter: &mut u64, prefix: &str) -> String {
    *counter += 1;
    format!("{prefix}_{counter}")
}

fn pick<'a, T>(rng: &mut Lcg, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        return None;
    }
    items.get(rng.below(items.len() as u64) as usize)
}
