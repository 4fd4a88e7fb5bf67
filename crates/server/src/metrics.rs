//! Prometheus metrics (`GET /metrics`), hand-rolled: a few labelled counters and one latency
//! histogram per endpoint. Counts come from the [`Outcome`] the core attaches to each response,
//! so nothing parses bodies and no token is ever near a label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokenwarden_core::Outcome;

/// Latency bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The endpoints the HTTP adapter records, in the (byte) order the exposition lists them. These
/// are counted with atomics, so recording a request takes no lock; any other name goes to a
/// locked map (none does today).
const ENDPOINTS: [&str; 5] = [
    "introspect",
    "metadata",
    "revocation_feed",
    "revoke",
    "token",
];

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

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
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

/// Endpoints not in [`ENDPOINTS`].
#[derive(Default)]
struct Other {
    requests: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

/// The server's metrics registry.
#[derive(Default)]
pub struct Metrics {
    endpoints: [EndpointCounters; ENDPOINTS.len()],
    /// Outcomes over all endpoints, indexed like [`OUTCOMES`].
    outcomes: [AtomicU64; OUTCOMES.len()],
    other: Mutex<Other>,
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
    pub fn record(
        &self,
        endpoint: &'static str,
        outcome: Option<Outcome>,
        status: u16,
        seconds: f64,
    ) {
        let name = outcome_name(outcome, status);
        if let Some(o) = outcome.filter(|o| *o != Outcome::Rejected && *o != Outcome::Metadata) {
            if let Some(n) = self
                .outcomes
                .get(outcome_index(outcome_name(Some(o), status)))
            {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        let known = ENDPOINTS
            .iter()
            .position(|e| *e == endpoint)
            .and_then(|i| self.endpoints.get(i));
        match known {
            Some(counters) => {
                if let Some(n) = counters.requests.get(outcome_index(name)) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                counters.latency.observe(seconds);
            }
            None => {
                let Ok(mut other) = self.other.lock() else {
                    return;
                };
                *other.requests.entry((endpoint, name)).or_default() += 1;
                other.latency.entry(endpoint).or_default().observe(seconds);
            }
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(other) = self.other.lock() else {
            return out;
        };
        // Everything recorded so far, in (endpoint, outcome) order.
        let mut requests: BTreeMap<(&str, &str), u64> = other.requests.clone();
        let mut latency: BTreeMap<&str, Histogram> = BTreeMap::new();
        for (endpoint, h) in &other.latency {
            latency.insert(
                endpoint,
                Histogram {
                    counts: h.counts,
                    sum: h.sum,
                    count: h.count,
                },
            );
        }
        drop(other);
        for (endpoint, counters) in ENDPOINTS.iter().zip(self.endpoints.iter()) {
            for (outcome, n) in OUTCOMES.iter().zip(counters.requests.iter()) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    requests.insert((endpoint, outcome), n);
                }
            }
            let h = counters.latency.snapshot();
            if h.count > 0 {
                latency.insert(endpoint, h);
            }
        }
        out.push_str("# HELP tokenwarden_requests_total HTTP requests by endpoint and outcome.\n");
        out.push_str("# TYPE tokenwarden_requests_total counter\n");
        for ((endpoint, outcome), n) in &requests {
            let _ = writeln!(
                out,
                "tokenwarden_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {n}"
            );
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
        for (endpoint, h) in &latency {
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
        m.record("token", Some(Outcome::TokenRefreshed), 200, 0.002);
        m.record("token", Some(Outcome::Rejected), 400, 0.0001);
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
        assert!(ENDPOINTS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn unknown_endpoints_are_listed_in_order_with_the_known_ones() {
        let m = Metrics::default();
        m.record("token", Some(Outcome::TokenIssued), 200, 0.001);
        m.record("authorize", None, 200, 0.001);
        m.record("zzz", None, 500, 0.001);
        m.record("introspect", Some(Outcome::Active), 200, 0.001);
        let text = m.render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tokenwarden_requests_total{"))
            .collect();
        assert_eq!(
            lines,
            [
                "tokenwarden_requests_total{endpoint=\"authorize\",outcome=\"ok\"} 1",
                "tokenwarden_requests_total{endpoint=\"introspect\",outcome=\"active\"} 1",
                "tokenwarden_requests_total{endpoint=\"token\",outcome=\"issued\"} 1",
                "tokenwarden_requests_total{endpoint=\"zzz\",outcome=\"server_error\"} 1",
            ]
        );
        assert!(text.contains("tokenwarden_tokens_issued_total 1"));
        assert!(text.contains("tokenwarden_request_duration_seconds_count{endpoint=\"zzz\"} 1"));
    }
}
