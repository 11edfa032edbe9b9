//! [`Status`]: what the cluster's parts know about the replicated log, for
//! `/health`, the chat (is the local state whole?) and the metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::connection::Link;
use crate::http::{HealthCheck, HealthReport};
use crate::metrics::Metrics;

/// The replicated log's state as this node sees it. Shared by the `nats`
/// and `log_consumer` actors, the log the chat writes through, and
/// `/health`.
#[derive(Debug)]
pub(crate) struct Status {
    metrics: Arc<Metrics>,
    stream: String,
    /// The connection, whose state says whether NATS is reachable.
    link: Arc<Link>,
    /// The last stream sequence applied here.
    applied: AtomicU64,
    /// The stream's last sequence, as last seen.
    head: AtomicU64,
    /// Set while the consumer catches up to the head it found at start.
    catching_up: AtomicBool,
    /// Why the local state is not whole (the stream lacks entries this
    /// node needs), while it is so.
    gap: Mutex<Option<String>>,
    /// The last error reading the log, while it lasts.
    consumer_error: Mutex<Option<String>>,
}

impl Status {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        stream: String,
        link: Arc<Link>,
        applied: u64,
    ) -> Status {
        metrics.cluster_log_applied.set(gauge(applied));
        Status {
            metrics,
            stream,
            link,
            applied: AtomicU64::new(applied),
            head: AtomicU64::new(applied),
            catching_up: AtomicBool::new(false),
            gap: Mutex::new(None),
            consumer_error: Mutex::new(None),
        }
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether the node is connected to NATS now (the client's own state;
    /// also brings the gauge up to date).
    pub(crate) fn connected(&self) -> bool {
        let up = self
            .link
            .client()
            .is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected);
        self.metrics.cluster_nats_connected.set(i64::from(up));
        up
    }

    /// Records the applied sequence and, when known, the stream's head.
    pub(crate) fn set_progress(&self, applied: u64, head: Option<u64>) {
        self.applied.store(applied, Ordering::SeqCst);
        if let Some(h) = head {
            self.head.store(h, Ordering::SeqCst);
        }
        let head = self.head.fetch_max(applied, Ordering::SeqCst).max(applied);
        if applied >= head {
            self.catching_up.store(false, Ordering::SeqCst);
        }
        self.metrics.cluster_log_applied.set(gauge(applied));
        self.metrics.cluster_log_lag.set(gauge(head - applied));
    }

    pub(crate) fn set_catching_up(&self, on: bool) {
        self.catching_up.store(on, Ordering::SeqCst);
    }

    pub(crate) fn set_gap(&self, why: Option<String>) {
        *self.gap.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// Why the local state is not whole, if it is not.
    pub(crate) fn gap(&self) -> Option<String> {
        self.gap.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_consumer_error(&self, e: Option<String>) {
        *self
            .consumer_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = e;
    }

    fn consumer_error(&self) -> Option<String> {
        self.consumer_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A gauge's value from a count.
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `/health` under `cluster`: degraded while NATS is unreachable, the log
/// is gapped, reading it fails, or the node catches up.
impl HealthCheck for Status {
    fn name(&self) -> &str {
        "cluster"
    }

    fn report(&self) -> HealthReport {
        let applied = self.applied.load(Ordering::SeqCst);
        let head = self.head.load(Ordering::SeqCst).max(applied);
        let connected = self.connected();
        let gap = self.gap();
        let consumer_error = self.consumer_error();
        let catching_up = self.catching_up.load(Ordering::SeqCst);
        let mut why = Vec::new();
        if !connected {
            why.push("NATS is unreachable: chat writes answer UNAVAILABLE, reads are served from local state".to_owned());
        }
        if let Some(g) = &gap {
            why.push(g.clone());
        }
        if let Some(e) = &consumer_error {
            why.push(format!("reading the log fails: {e}"));
        }
        if catching_up && head > applied {
            why.push(format!(
                "behind the log: applied {applied} of {head}, catching up"
            ));
        }
        HealthReport {
            degraded: (!why.is_empty()).then(|| why.join("; ")),
            details: json!({
                "nats": if connected { "connected" } else { "disconnected" },
                "stream": self.stream,
                "applied": applied,
                "head": head,
                "lag": head - applied,
                "gap": gap,
            }),
        }
    }
}
