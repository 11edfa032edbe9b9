//! Metric definitions: one place, one naming scheme (prefix `corral_`).
//!
//! Every metric the node exports is declared here and registered in one
//! [`prometheus::Registry`] owned by [`Metrics`]. Units are in the names
//! (`_seconds`, `_bytes`), counters end in `_total`, and labels are few and
//! bounded (`listener`, `service`, `outcome`, `status` (a class: `2xx`),
//! `cache`, `supervisor`, `child`).
//!
//! The `metrics` actor under `metrics_sup` ([`Metrics::supervisor_spec`])
//! owns what is registered at run time: the process collector
//! (`corral_process_*`) is registered while it runs. It answers
//! [`MetricsMsg`].

mod actor;
mod sharded;

pub use actor::MetricsMsg;
#[cfg_attr(not(feature = "http"), allow(unused_imports))]
pub(crate) use sharded::{
    ShardedCounter, ShardedCounterVec, ShardedHistogram, ShardedHistogramVec,
};

use crate::listener::ListenerObserver;
use crate::supervisor::RestartHook;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use std::sync::Arc;

/// The node's metrics, registered in a registry of their own.
///
/// Cheap to share: hold it in an [`Arc`] and clone the handles you need.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Connections currently open, by listener.
    pub connections_active: IntGaugeVec,
    /// Connections accepted, by listener.
    pub connections_accepted: IntCounterVec,
    /// Connections closed, by listener.
    pub connections_closed: IntCounterVec,
    /// Accept errors (EMFILE and the like), by listener.
    pub accept_errors: IntCounterVec,
    /// RPC requests, by service and outcome (`ok` or an error code).
    pub rpc_requests: IntCounterVec,
    /// RPC request latency in seconds, by service and outcome (`ok` or `error`).
    pub rpc_latency: HistogramVec,
    /// HTTP requests answered, by status class (`2xx`, `3xx`, `4xx`, `5xx`).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) http_requests: ShardedCounterVec,
    /// HTTP request latency in seconds (request head read to response head
    /// ready), by status class.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) http_latency: ShardedHistogramVec,
    /// Response bytes sent with `sendfile(2)` from cached files.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) http_sendfile_bytes: IntCounter,
    /// Idle HTTP/1 connections hibernated (hyper's state and buffers
    /// dropped until the next bytes arrive; `[http] hibernate_after_ms`).
    pub http_hibernations: IntCounter,
    /// Cache lookups that found a fresh entry, by cache (`file`).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) cache_hits: ShardedCounterVec,
    /// Cache lookups that had to read the source, by cache.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) cache_misses: ShardedCounterVec,
    /// Entries evicted for room or age (not replacements), by cache.
    pub cache_evictions: IntCounterVec,
    /// Bytes held by a cache (contents and their compressed variants), by cache.
    pub cache_bytes: IntGaugeVec,
    /// Entries held by a cache, by cache.
    pub cache_entries: IntGaugeVec,
    /// Chat events stored, by kind (`publish`, `message`).
    pub chat_messages: IntCounterVec,
    /// Chat pushes queued for a subscriber.
    pub chat_pushes_delivered: IntCounter,
    /// Chat pushes dropped because a subscriber's queue was full.
    pub chat_pushes_dropped: IntCounter,
    /// Cluster: 1 while the node is connected to NATS, else 0 (0 in
    /// single-node mode).
    pub cluster_nats_connected: IntGauge,
    /// Cluster: the last stream sequence of the chat log this node applied.
    pub cluster_log_applied: IntGauge,
    /// Cluster: entries of the chat log this node has yet to apply (the
    /// stream's last sequence minus the applied one).
    pub cluster_log_lag: IntGauge,
    /// Cluster: a chat write's time from publishing to its application on
    /// this node, in seconds (successful writes).
    pub cluster_publish_latency: prometheus::Histogram,
    /// Cluster: replication errors, by kind (`publish`: not acknowledged in
    /// time or refused; `apply`: not applied in time; `decode`: a log entry
    /// that is no chat write; `consumer`: reading the log failed; `store`:
    /// applying an entry failed; `gap`: the log lacks entries this node
    /// needs).
    pub cluster_replication_errors: IntCounterVec,
    /// Children restarted, by supervisor and child id (fed by
    /// [`Metrics::restart_hook`]).
    pub supervisor_restarts: IntCounterVec,
    /// This node's rank in the cluster (registration order; 0 while not
    /// registered).
    pub cluster_rank: IntGauge,
    /// This node's role in the cluster: 1 on the series of its role
    /// (`primary` or `backup`), 0 on the other (both 0 while not a member).
    pub cluster_role: IntGaugeVec,
    /// Live members of the cluster, as this node sees them.
    pub cluster_members: IntGauge,
    /// The correction clock synchronisation applies to this node's wall
    /// clock, in seconds.
    pub cluster_clock_offset: Gauge,
}

/// The bucket bounds of the request latency histograms, in seconds.
const LATENCY_BUCKETS: [f64; 17] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The status class label of an HTTP status: `1xx` .. `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates and registers every metric, the supervisors' restart counter
    /// included. The process collector (memory, CPU, file descriptors) is
    /// registered by the `metrics` actor while it runs
    /// ([`Metrics::supervisor_spec`]).
    pub fn new() -> Arc<Self> {
        let registry = Registry::new_custom(Some("corral".into()), None)
            .expect("the prefix `corral` is a valid metric namespace");
        let connections_active = IntGaugeVec::new(
            Opts::new("connections_active", "Connections currently open."),
            &["listener"],
        )
        .expect("valid metric");
        let connections_accepted = IntCounterVec::new(
            Opts::new("connections_accepted_total", "Connections accepted."),
            &["listener"],
        )
        .expect("valid metric");
        let connections_closed = IntCounterVec::new(
            Opts::new("connections_closed_total", "Connections closed."),
            &["listener"],
        )
        .expect("valid metric");
        let accept_errors = IntCounterVec::new(
            Opts::new(
                "accept_errors_total",
                "Errors from accept(2), such as EMFILE; the listener retries.",
            ),
            &["listener"],
        )
        .expect("valid metric");
        let rpc_requests = IntCounterVec::new(
            Opts::new(
                "rpc_requests_total",
                "RPC requests handled, by service and outcome.",
            ),
            &["service", "outcome"],
        )
        .expect("valid metric");
        let rpc_latency = HistogramVec::new(
            HistogramOpts::new(
                "rpc_request_duration_seconds",
                "Time from decoding an RPC request to queueing its reply.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["service", "outcome"],
        )
        .expect("valid metric");
        let http_requests = ShardedCounterVec::new(
            "http_requests_total",
            "HTTP requests answered, by status class.",
            &["status"],
        )
        .expect("valid metric");
        let http_latency = ShardedHistogramVec::new(
            "http_request_duration_seconds",
            "Time from reading an HTTP request head to its response head being ready.",
            &["status"],
            LATENCY_BUCKETS.to_vec(),
        )
        .expect("valid metric");
        let http_sendfile_bytes = IntCounter::new(
            "http_sendfile_bytes_total",
            "Response bytes sent with sendfile(2) from the open files of cached files.",
        )
        .expect("valid metric");
        let http_hibernations = IntCounter::new(
            "http_hibernations_total",
            "Idle HTTP/1 connections hibernated: hyper's state and buffers dropped until the next bytes.",
        )
        .expect("valid metric");
        let cache_hits = ShardedCounterVec::new(
            "cache_hits_total",
            "Cache lookups answered by a fresh entry.",
            &["cache"],
        )
        .expect("valid metric");
        let cache_misses = ShardedCounterVec::new(
            "cache_misses_total",
            "Cache lookups that read the source (absent or stale entry).",
            &["cache"],
        )
        .expect("valid metric");
        let cache_evictions = IntCounterVec::new(
            Opts::new(
                "cache_evictions_total",
                "Cache entries evicted to stay within the size bound.",
            ),
            &["cache"],
        )
        .expect("valid metric");
        let cache_bytes = IntGaugeVec::new(
            Opts::new(
                "cache_bytes",
                "Bytes held by the cache (contents and compressed variants).",
            ),
            &["cache"],
        )
        .expect("valid metric");
        let cache_entries = IntGaugeVec::new(
            Opts::new("cache_entries", "Entries held by the cache."),
            &["cache"],
        )
        .expect("valid metric");
        let chat_messages = IntCounterVec::new(
            Opts::new(
                "chat_messages_total",
                "Chat events stored, by kind (publish, message).",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let chat_pushes_delivered = IntCounter::new(
            "chat_pushes_delivered_total",
            "Chat pushes queued for a subscribed connection.",
        )
        .expect("valid metric");
        let chat_pushes_dropped = IntCounter::new(
            "chat_pushes_dropped_total",
            "Chat pushes dropped because the subscriber's queue was full.",
        )
        .expect("valid metric");
        for k in ["publish", "message"] {
            chat_messages.with_label_values(&[k]);
        }
        let cluster_nats_connected = IntGauge::new(
            "cluster_nats_connected",
            "1 while the node is connected to NATS (cluster mode).",
        )
        .expect("valid metric");
        let cluster_log_applied = IntGauge::new(
            "cluster_log_applied_sequence",
            "The last stream sequence of the chat log this node applied.",
        )
        .expect("valid metric");
        let cluster_log_lag = IntGauge::new(
            "cluster_log_lag_entries",
            "Entries of the chat log this node has yet to apply.",
        )
        .expect("valid metric");
        let cluster_publish_latency = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "cluster_publish_duration_seconds",
                "A chat write's time from publishing to its application on this node.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let cluster_replication_errors = IntCounterVec::new(
            Opts::new(
                "cluster_replication_errors_total",
                "Replication errors of the chat log, by kind.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        for k in ["publish", "apply", "decode", "consumer", "store", "gap"] {
            cluster_replication_errors.with_label_values(&[k]);
        }
        let supervisor_restarts = IntCounterVec::new(
            Opts::new(
                "supervisor_restarts_total",
                "Children restarted, by supervisor and child id.",
            ),
            &["supervisor", "child"],
        )
        .expect("valid metric");
        let cluster_rank = IntGauge::new(
            "cluster_rank",
            "This node's rank in the cluster (registration order; 0 while not registered).",
        )
        .expect("valid metric");
        let cluster_role = IntGaugeVec::new(
            Opts::new(
                "cluster_role",
                "1 on this node's role in the cluster (primary or backup), 0 on the other.",
            ),
            &["role"],
        )
        .expect("valid metric");
        for r in ["primary", "backup"] {
            cluster_role.with_label_values(&[r]);
        }
        let cluster_members = IntGauge::new(
            "cluster_members",
            "Live members of the cluster, as this node sees them.",
        )
        .expect("valid metric");
        let cluster_clock_offset = Gauge::new(
            "cluster_clock_offset_seconds",
            "Correction applied to this node's wall clock by clock synchronisation.",
        )
        .expect("valid metric");
        // Series that exist from the start, so that a scrape shows them at 0.
        for c in [&cache_hits, &cache_misses] {
            c.with_label_values(&["file"]);
        }
        cache_evictions.with_label_values(&["file"]);
        cache_bytes.with_label_values(&["file"]);
        cache_entries.with_label_values(&["file"]);
        for c in [
            Box::new(connections_active.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connections_accepted.clone()),
            Box::new(connections_closed.clone()),
            Box::new(accept_errors.clone()),
            Box::new(rpc_requests.clone()),
            Box::new(rpc_latency.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_latency.clone()),
            Box::new(http_sendfile_bytes.clone()),
            Box::new(http_hibernations.clone()),
            Box::new(cache_hits.clone()),
            Box::new(cache_misses.clone()),
            Box::new(cache_evictions.clone()),
            Box::new(cache_bytes.clone()),
            Box::new(cache_entries.clone()),
            Box::new(chat_messages.clone()),
            Box::new(chat_pushes_delivered.clone()),
            Box::new(chat_pushes_dropped.clone()),
            Box::new(cluster_nats_connected.clone()),
            Box::new(cluster_log_applied.clone()),
            Box::new(cluster_log_lag.clone()),
            Box::new(cluster_publish_latency.clone()),
            Box::new(cluster_replication_errors.clone()),
            Box::new(supervisor_restarts.clone()),
            Box::new(cluster_rank.clone()),
            Box::new(cluster_role.clone()),
            Box::new(cluster_members.clone()),
            Box::new(cluster_clock_offset.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Arc::new(Metrics {
            registry,
            connections_active,
            connections_accepted,
            connections_closed,
            accept_errors,
            rpc_requests,
            rpc_latency,
            http_requests,
            http_latency,
            http_sendfile_bytes,
            http_hibernations,
            cache_hits,
            cache_misses,
            cache_evictions,
            cache_bytes,
            cache_entries,
            chat_messages,
            chat_pushes_delivered,
            chat_pushes_dropped,
            cluster_nats_connected,
            cluster_log_applied,
            cluster_log_lag,
            cluster_publish_latency,
            cluster_replication_errors,
            supervisor_restarts,
            cluster_rank,
            cluster_role,
            cluster_members,
            cluster_clock_offset,
        })
    }

    /// An observer that counts one listener's connections in these metrics
    /// (`corral_connections_*{listener}`), for
    /// [`ListenerSpec::observer`](crate::listener::ListenerSpec::observer).
    pub fn listener_observer(&self, listener: &str) -> Arc<dyn ListenerObserver> {
        Arc::new(ConnectionCounters {
            active: self.connections_active.with_label_values(&[listener]),
            accepted: self.connections_accepted.with_label_values(&[listener]),
            closed: self.connections_closed.with_label_values(&[listener]),
            accept_errors: self.accept_errors.with_label_values(&[listener]),
        })
    }

    /// A hook that counts restarts in `corral_supervisor_restarts_total`;
    /// set on a root supervisor, it counts the whole tree below it.
    pub fn restart_hook(&self) -> RestartHook {
        let restarts = self.supervisor_restarts.clone();
        RestartHook::new(move |e| {
            restarts.with_label_values(&[e.supervisor, e.child]).inc();
        })
    }

    /// The registry, for callers that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a metric family that cannot be
        // encoded is a bug in this module, and is left out rather than crash a scrape.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// One listener's connection counters, labels resolved once.
#[derive(Debug)]
struct ConnectionCounters {
    active: IntGauge,
    accepted: IntCounter,
    closed: IntCounter,
    accept_errors: IntCounter,
}

impl ListenerObserver for ConnectionCounters {
    fn accepted(&self) {
        self.accepted.inc();
    }

    fn opened(&self) {
        self.active.inc();
    }

    fn closed(&self) {
        self.active.dec();
        self.closed.inc();
    }

    fn accept_failed(&self, _: &std::io::Error) {
        self.accept_errors.inc();
    }
}
