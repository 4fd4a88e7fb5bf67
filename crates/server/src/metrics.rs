//! Prometheus metrics (`GET /metrics`), hand-rolled: a few labelled counters and one latency
//! histogram per endpoint. Counts come from the [`Outcome`] the core attaches to each response,
//! so nothing parses bodies and no token is ever near a label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use tokenwarden_core::Outcome;

/// Latency bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    outcomes: BTreeMap<&'static str, u64>,
}

/// The server's metrics registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
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

impl Metrics {
    /// Records one request to `endpoint`.
    pub fn record(
        &self,
        endpoint: &'static str,
        outcome: Option<Outcome>,
        status: u16,
        seconds: f64,
    ) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let name = outcome_name(outcome, status);
        *inner.requests.entry((endpoint, name)).or_default() += 1;
        if let Some(o) = outcome.filter(|o| *o != Outcome::Rejected && *o != Outcome::Metadata) {
            *inner
                .outcomes
                .entry(outcome_name(Some(o), status))
                .or_default() += 1;
        }
        let h = inner.latency.entry(endpoint).or_default();
        for (bound, count) in BUCKETS.iter().zip(h.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        out.push_str("# HELP tokenwarden_requests_total HTTP requests by endpoint and outcome.\n");
        out.push_str("# TYPE tokenwarden_requests_total counter\n");
        for ((endpoint, outcome), n) in &inner.requests {
            let _ = writeln!(
                out,
                "tokenwarden_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let counter = |out: &mut String, name: &str, help: &str, key: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(
                out,
                "{name} {}",
                inner.outcomes.get(key).copied().unwrap_or(0)
            );
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
        for (endpoint, h) in &inner.latency {
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
}
