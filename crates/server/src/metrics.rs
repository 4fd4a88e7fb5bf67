//! Prometheus metrics (`GET /metrics`), hand-rolled: a few labelled counters and one latency
//! histogram per endpoint. Counts come from the [`Outcome`] the core attaches to each response,
//! so nothing parses bodies and no token is ever near a label.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tokenwarden_core::Outcome;

/// Latency bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The endpoints the HTTP adapter records, each with lock-free counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /oauth2/introspect`
    Introspect,
    /// `GET /.well-known/oauth-authorization-server`
    Metadata,
    /// `GET /oauth2/revocations` (counted when the stream starts or is refused)
    RevocationFeed,
    /// `POST /oauth2/revoke`
    Revoke,
    /// `POST /oauth2/token`
    Token,
}

impl Endpoint {
    /// Every endpoint, in the (byte) order of their labels, which is the exposition's order.
    const ALL: [Endpoint; 5] = [
        Endpoint::Introspect,
        Endpoint::Metadata,
        Endpoint::RevocationFeed,
        Endpoint::Revoke,
        Endpoint::Token,
    ];

    /// The `endpoint` label.
    fn label(self) -> &'static str {
        match self {
            Endpoint::Introspect => "introspect",
            Endpoint::Metadata => "metadata",
            Endpoint::RevocationFeed => "revocation_feed",
            Endpoint::Revoke => "revoke",
            Endpoint::Token => "token",
        }
    }
}

/// Every name [`outcome_name`] returns, in byte order.
const OUTCOMES: [&str; 11] = [
    "active",
    "client_error",
    "grace_replay",
    "inactive",
    "issued",
    "nothing_to_revoke",
    "ok",
    "refreshed",
    "reuse_detected",
    "revoked",
    "server_error",
];

/// A snapshot of an [`AtomicHistogram`], for rendering.
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// A histogram updated without a lock; `sum` holds the bits of an `f64`.
#[derive(Default)]
struct AtomicHistogram {
    counts: [AtomicU64; BUCKETS.len()],
    sum: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    fn observe(&self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter()) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + seconds).to_bits())
            });
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Histogram {
        let mut h = Histogram {
            counts: [0; BUCKETS.len()],
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
        };
        for (to, from) in h.counts.iter_mut().zip(self.counts.iter()) {
            *to = from.load(Ordering::Relaxed);
        }
        h
    }
}

/// The counters of one known endpoint.
#[derive(Default)]
struct EndpointCounters {
    /// Requests per outcome name, indexed like [`OUTCOMES`].
    requests: [AtomicU64; OUTCOMES.len()],
    latency: AtomicHistogram,
}

/// The server's metrics registry.
#[derive(Default)]
pub struct Metrics {
    /// Indexed like [`Endpoint::ALL`].
    endpoints: [EndpointCounters; Endpoint::ALL.len()],
    /// Outcomes over all endpoints, indexed like [`OUTCOMES`].
    outcomes: [AtomicU64; OUTCOMES.len()],
}

fn outcome_name(outcome: Option<Outcome>, status: u16) -> &'static str {
    match outcome {
        Some(Outcome::TokenIssued) => "issued",
        Some(Outcome::TokenRefreshed) => "refreshed",
        Some(Outcome::GraceReplay) => "grace_replay",
        Some(Outcome::ReuseDetected) => "reuse_detected",
        Some(Outcome::Revoked) => "revoked",
        Some(Outcome::NothingToRevoke) => "nothing_to_revoke",
        Some(Outcome::Active) => "active",
        Some(Outcome::Inactive) => "inactive",
        Some(Outcome::Metadata) => "ok",
        Some(Outcome::Rejected) | None => match status {
            200..=299 => "ok",
            400..=499 => "client_error",
            _ => "server_error",
        },
    }
}

fn outcome_index(name: &str) -> usize {
    OUTCOMES.iter().position(|o| *o == name).unwrap_or(0)
}

impl Metrics {
    /// Records one request to `endpoint`.
    pub fn record(&self, endpoint: Endpoint, outcome: Option<Outcome>, status: u16, seconds: f64) {
        let name = outcome_index(outcome_name(outcome, status));
        if outcome.is_some_and(|o| o != Outcome::Rejected && o != Outcome::Metadata) {
            if let Some(n) = self.outcomes.get(name) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(counters) = self.endpoints.get(endpoint as usize) {
            if let Some(n) = counters.requests.get(name) {
                n.fetch_add(1, Ordering::Relaxed);
            }
            counters.latency.observe(seconds);
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP tokenwarden_requests_total HTTP requests by endpoint and outcome.\n");
        out.push_str("# TYPE tokenwarden_requests_total counter\n");
        for (endpoint, counters) in Endpoint::ALL.iter().zip(self.endpoints.iter()) {
            for (outcome, n) in OUTCOMES.iter().zip(counters.requests.iter()) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let endpoint = endpoint.label();
                    let _ = writeln!(
                        out,
                        "tokenwarden_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {n}"
                    );
                }
            }
        }
        let counter = |out: &mut String, name: &str, help: &str, key: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let n = self
                .outcomes
                .get(outcome_index(key))
                .map_or(0, |n| n.load(Ordering::Relaxed));
            let _ = writeln!(out, "{name} {n}");
        };
        counter(
            &mut out,
            "tokenwarden_tokens_issued_total",
            "Tokens issued (new grants and client credentials).",
            "issued",
        );
        counter(
            &mut out,
            "tokenwarden_tokens_refreshed_total",
            "Refresh tokens rotated.",
            "refreshed",
        );
        counter(
            &mut out,
            "tokenwarden_tokens_revoked_total",
            "Revocation requests that revoked a token.",
            "revoked",
        );
        counter(
            &mut out,
            "tokenwarden_refresh_reuse_detections_total",
            "Used refresh tokens re-presented after the grace window.",
            "reuse_detected",
        );
        counter(
            &mut out,
            "tokenwarden_refresh_grace_hits_total",
            "Retries of the previous refresh token answered within the grace window.",
            "grace_replay",
        );
        out.push_str("# HELP tokenwarden_request_duration_seconds Request latency by endpoint.\n");
        out.push_str("# TYPE tokenwarden_request_duration_seconds histogram\n");
        for (endpoint, counters) in Endpoint::ALL.iter().zip(self.endpoints.iter()) {
            let h = counters.latency.snapshot();
            if h.count == 0 {
                continue;
            }
            let endpoint = endpoint.label();
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(out, "tokenwarden_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "tokenwarden_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(
                out,
                "tokenwarden_request_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "tokenwarden_request_duration_seconds_count{{endpoint=\"{endpoint}\"}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.record(Endpoint::Token, Some(Outcome::TokenRefreshed), 200, 0.002);
        m.record(Endpoint::Token, Some(Outcome::Rejected), 400, 0.0001);
        let text = m.render();
        assert!(
            text.contains("tokenwarden_requests_total{endpoint=\"token\",outcome=\"refreshed\"} 1")
        );
        assert!(text
            .contains("tokenwarden_requests_total{endpoint=\"token\",outcome=\"client_error\"} 1"));
        assert!(text.contains("tokenwarden_tokens_refreshed_total 1"));
        assert!(text.contains(
            "tokenwarden_request_duration_seconds_bucket{endpoint=\"token\",le=\"0.0025\"} 2"
        ));
        assert!(text.contains("tokenwarden_request_duration_seconds_count{endpoint=\"token\"} 2"));
    }

    #[test]
    fn every_outcome_name_has_a_counter_and_the_tables_are_sorted() {
        let outcomes = [
            Outcome::TokenIssued,
            Outcome::TokenRefreshed,
            Outcome::GraceReplay,
            Outcome::ReuseDetected,
            Outcome::Revoked,
            Outcome::NothingToRevoke,
            Outcome::Active,
            Outcome::Inactive,
            Outcome::Metadata,
            Outcome::Rejected,
        ];
        for status in [200, 400, 500] {
            for o in outcomes.iter().copied().map(Some).chain([None]) {
                let name = outcome_name(o, status);
                assert_eq!(OUTCOMES[outcome_index(name)], name);
            }
        }
        assert!(OUTCOMES.windows(2).all(|w| w[0] < w[1]));
        assert!(Endpoint::ALL
            .windows(2)
            .all(|w| w[0].label() < w[1].label()));
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "ALL is in declaration order: {e:?}");
        }
    }

    #[test]
    fn endpoints_are_listed_in_label_order() {
        let m = Metrics::default();
        m.record(Endpoint::Token, Some(Outcome::TokenIssued), 200, 0.001);
        m.record(Endpoint::RevocationFeed, None, 200, 0.001);
        m.record(Endpoint::Metadata, Some(Outcome::Metadata), 200, 0.001);
        m.record(Endpoint::Introspect, Some(Outcome::Active), 200, 0.001);
        m.record(Endpoint::Revoke, None, 500, 0.001);
        let text = m.render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tokenwarden_requests_total{"))
            .collect();
        assert_eq!(
            lines,
            [
                "tokenwarden_requests_total{endpoint=\"introspect\",outcome=\"active\"} 1",
                "tokenwarden_requests_total{endpoint=\"metadata\",outcome=\"ok\"} 1",
                "tokenwarden_requests_total{endpoint=\"revocation_feed\",outcome=\"ok\"} 1",
                "tokenwarden_requests_total{endpoint=\"revoke\",outcome=\"server_error\"} 1",
                "tokenwarden_requests_total{endpoint=\"token\",outcome=\"issued\"} 1",
            ]
        );
        assert!(text.contains("tokenwarden_tokens_issued_total 1"));
        assert!(text.contains(
            "tokenwarden_request_duration_seconds_count{endpoint=\"revocation_feed\"} 1"
        ));
    }
}
