//! Reading the node's parts into the observer's views: the tree from the
//! supervisors, the listeners from their handles, the chat from its hub and
//! store, the cluster from its members, and the samples from the metrics.

#[cfg(feature = "cluster")]
use super::view::MemberView;
use super::view::{ChatView, ClusterView, ListenerView, Sample, TreeView};
#[cfg(feature = "chat")]
use super::view::{QueueView, TopicView};
use crate::listener::ListenerHandle;
use crate::metrics::Metrics;
use crate::supervisor::{ChildState, SupervisionTree, Supervisor, TreeKind};
use prometheus::core::Collector;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How many queues, topics and names the chat view lists.
#[cfg(feature = "chat")]
const TOP: usize = 10;
/// How many online users' names the chat view lists.
#[cfg(feature = "chat")]
const NAMES: usize = 100;

/// The parts of a node the observer reads.
pub(crate) struct Sources {
    /// The root supervisor, once the tree runs.
    pub(crate) root: OnceLock<Supervisor>,
    pub(crate) listeners: Arc<OnceLock<Vec<ListenerHandle>>>,
    pub(crate) metrics: Arc<Metrics>,
    #[cfg(feature = "chat")]
    pub(crate) chat: Option<crate::chat::Chat>,
    #[cfg(feature = "cluster")]
    pub(crate) cluster: Option<crate::cluster::Cluster>,
}

/// The counters two samples are told apart by.
#[derive(Debug, Clone)]
pub(crate) struct Counters {
    pub(crate) at: Instant,
    http: u64,
    rpc: u64,
    /// Cumulative counts of the latency buckets, HTTP and RPC together.
    buckets: Vec<(f64, u64)>,
    /// Accepted clients, by listener name.
    accepted: Vec<(String, u64)>,
    commits: u64,
    writes: u64,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Now, in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(ms)
        .unwrap_or(0)
}

/// The view of one tree entry at `path`.
fn tree_view(t: &SupervisionTree, path: Vec<String>) -> TreeView {
    let status = match t.state {
        ChildState::Running(_) | ChildState::Task => "running",
        ChildState::Restarting => "restarting",
        ChildState::Undefined => "not_running",
    };
    let mut v = TreeView {
        id: t.id.clone(),
        path: path.clone(),
        kind: String::new(),
        status: status.into(),
        strategy: None,
        restart: t.restart.map(|r| r.name().to_string()),
        restarts: t.history.restarts,
        last_restart_reason: t.history.last_restart_reason.clone(),
        since_last_restart_ms: t.history.since_last_restart.map(ms),
        uptime_ms: t.history.uptime.map(ms),
        supervisor_restarts: t.supervisor.map(|s| s.restarts),
        max_restarts: t.supervisor.map(|s| s.max_restarts),
        period_ms: t.supervisor.map(|s| ms(s.period)),
        template: None,
        running: None,
        total: None,
        children: Vec::new(),
    };
    match &t.kind {
        TreeKind::Worker => v.kind = "worker".into(),
        TreeKind::Supervisor {
            strategy, children, ..
        } => {
            v.kind = "supervisor".into();
            v.strategy = Some(strategy.name().into());
            v.children = children
                .iter()
                .map(|c| {
                    let mut p = path.clone();
                    p.push(c.id.clone());
                    tree_view(c, p)
                })
                .collect();
        }
        TreeKind::Dynamic {
            template,
            running,
            total,
            ..
        } => {
            v.kind = "dynamic".into();
            v.strategy = Some("simple_one_for_one".into());
            v.template = Some(template.clone());
            v.running = Some(*running);
            v.total = Some(*total);
        }
        _ => v.kind = "unknown".into(),
    }
    v
}

impl Sources {
    fn listener_handles(&self) -> &[ListenerHandle] {
        self.listeners.get().map(Vec::as_slice).unwrap_or(&[])
    }

    /// The running tree, or `None` before it runs (or once it is gone).
    pub(crate) async fn tree(&self) -> Option<TreeView> {
        let root = self.root.get()?;
        let tree = root.tree().await.ok()?;
        Some(tree_view(&tree, Vec::new()))
    }

    /// The counters now.
    pub(crate) fn counters(&self) -> Counters {
        let sum_counters = |c: &dyn Collector| -> u64 {
            c.collect()
                .iter()
                .flat_map(|f| f.get_metric())
                .map(|m| m.get_counter().value() as u64)
                .sum()
        };
        let mut buckets: Vec<(f64, u64)> = Vec::new();
        for h in [
            &self.metrics.http_latency as &dyn Collector,
            &self.metrics.rpc_latency,
        ] {
            for family in h.collect() {
                for m in family.get_metric() {
                    for (i, b) in m.get_histogram().get_bucket().iter().enumerate() {
                        match buckets.get_mut(i) {
                            Some(slot) => slot.1 += b.cumulative_count(),
                            None => buckets.push((b.upper_bound(), b.cumulative_count())),
                        }
                    }
                }
            }
        }
        #[cfg_attr(not(feature = "chat"), allow(unused_mut))]
        let (mut commits, mut writes) = (0, 0);
        #[cfg(feature = "chat")]
        if let Some(chat) = &self.chat {
            let s = chat.store().commit_stats();
            (commits, writes) = (s.commits, s.writes);
        }
        Counters {
            at: Instant::now(),
            http: sum_counters(&self.metrics.http_requests),
            rpc: sum_counters(&self.metrics.rpc_requests),
            buckets,
            accepted: self
                .listener_handles()
                .iter()
                .map(|l| (l.name().to_string(), l.stats().accepted))
                .collect(),
            commits,
            writes,
        }
    }

    /// The listeners, their accept rates since `prev`.
    pub(crate) fn listeners(&self, now: &Counters, prev: Option<&Counters>) -> Vec<ListenerView> {
        self.listener_handles()
            .iter()
            .map(|l| {
                let s = l.stats();
                let state = if s.draining {
                    "draining"
                } else if !s.running {
                    "restarting"
                } else if s.suspended {
                    "suspended"
                } else {
                    "accepting"
                };
                let rate = prev
                    .and_then(|p| {
                        let before = p.accepted.iter().find(|(n, _)| *n == s.name)?.1;
                        let after = now.accepted.iter().find(|(n, _)| *n == s.name)?.1;
                        per_second(after.saturating_sub(before), now.at - p.at)
                    })
                    .unwrap_or(0.0);
                ListenerView {
                    address: s.local_addr.map(|a| a.to_string()),
                    transport: s.transport.to_string(),
                    state: state.into(),
                    connections: s.connections,
                    max_connections: s.max_connections,
                    accepted: s.accepted,
                    accept_rate: rate,
                    name: s.name,
                }
            })
            .collect()
    }

    /// The chat, its recent batch size since `prev`.
    pub(crate) fn chat(&self, now: &Counters, prev: Option<&Counters>) -> ChatView {
        #[cfg_attr(not(feature = "chat"), allow(unused_mut))]
        let mut v = ChatView {
            enabled: false,
            users_online: 0,
            online: Vec::new(),
            sessions: 0,
            topics: 0,
            subscriptions: 0,
            busiest: Vec::new(),
            queued_pushes: 0,
            deepest_queues: Vec::new(),
            pushes_delivered: self.metrics.chat_pushes_delivered.get(),
            pushes_dropped: self.metrics.chat_pushes_dropped.get(),
            store_path: None,
            store_bytes: None,
            commits: now.commits,
            writes: now.writes,
            largest_batch: 0,
            recent_batch: prev.and_then(|p| {
                let commits = now.commits.saturating_sub(p.commits);
                (commits > 0).then(|| now.writes.saturating_sub(p.writes) as f64 / commits as f64)
            }),
        };
        #[cfg(feature = "chat")]
        if let Some(chat) = &self.chat {
            let hub = chat.hub();
            let stats = hub.stats(TOP);
            v.enabled = true;
            v.users_online = stats.users_online;
            v.online = hub.online().into_iter().take(NAMES).collect();
            v.sessions = stats.sessions;
            v.topics = stats.topics;
            v.subscriptions = stats.subscriptions;
            v.queued_pushes = stats.queued_total;
            v.busiest = stats
                .busiest
                .into_iter()
                .map(|(t, n)| TopicView {
                    kind: match &t {
                        crate::chat::Topic::Channel(_) => "channel",
                        crate::chat::Topic::Private(_) => "private",
                    }
                    .into(),
                    name: t.name().to_string(),
                    subscribers: n,
                })
                .collect();
            v.deepest_queues = stats
                .deepest
                .into_iter()
                .map(|q| QueueView {
                    user: q.user,
                    connection: q.connection,
                    queued: q.queued,
                    limit: q.limit,
                })
                .collect();
            let store = chat.store();
            v.store_path = Some(store.path().display().to_string());
            v.store_bytes = std::fs::metadata(store.path()).ok().map(|m| m.len());
            v.largest_batch = store.commit_stats().largest_batch;
        }
        v
    }

    /// The cluster.
    pub(crate) fn cluster(&self) -> ClusterView {
        #[cfg_attr(not(feature = "cluster"), allow(unused_mut))]
        let mut v = ClusterView {
            enabled: false,
            me: None,
            nats_connected: false,
            primary: None,
            failovers: 0,
            log_applied: 0,
            log_lag: 0,
            members: Vec::new(),
        };
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            let m = cluster.members();
            let lag = self.metrics.cluster_log_lag.get();
            let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
            v.enabled = true;
            v.me = Some(m.me().to_string());
            v.nats_connected = self.metrics.cluster_nats_connected.get() == 1;
            v.primary = m.primary();
            v.failovers = m.failovers();
            v.log_applied = self.metrics.cluster_log_applied.get();
            v.log_lag = lag;
            v.members = m
                .members()
                .into_iter()
                .map(|p| MemberView {
                    lag: (p.name == m.me()).then_some(lag),
                    heartbeat_age_ms: now
                        .saturating_sub(i64::try_from(p.last_heartbeat_ms).unwrap_or(i64::MAX)),
                    role: p.role.as_str().into(),
                    rank: p.rank,
                    clock_offset_ms: p.offset_ms,
                    rpc: p.rpc,
                    http: p.http,
                    name: p.name,
                })
                .collect();
        }
        v
    }
}

fn per_second(n: u64, over: std::time::Duration) -> Option<f64> {
    let s = over.as_secs_f64();
    (s > 0.0).then(|| n as f64 / s)
}

/// The quantile `q` of the requests between two bucket snapshots: the upper
/// bound, in ms, of the bucket it falls in (`None` without requests; the
/// largest bound when it falls beyond them).
fn quantile(now: &[(f64, u64)], prev: &[(f64, u64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, u64)> = now
        .iter()
        .enumerate()
        .map(|(i, (bound, c))| {
            let before = prev.get(i).map_or(0, |p| p.1);
            (*bound, c.saturating_sub(before))
        })
        .collect();
    let total = delta.last()?.1;
    if total == 0 {
        return None;
    }
    let want = (q * total as f64).ceil() as u64;
    let bound = delta
        .iter()
        .find(|(_, c)| *c >= want)
        .or(delta.last())
        .map(|(b, _)| *b)?;
    Some(bound * 1000.0)
}

/// The sample of the interval from `prev` to `now`.
pub(crate) fn sample(now: &Counters, prev: &Counters) -> Sample {
    let over = now.at - prev.at;
    Sample {
        at_ms: now_ms(),
        http_rate: per_second(now.http.saturating_sub(prev.http), over).unwrap_or(0.0),
        rpc_rate: per_second(now.rpc.saturating_sub(prev.rpc), over).unwrap_or(0.0),
        p50_ms: quantile(&now.buckets, &prev.buckets, 0.5),
        p99_ms: quantile(&now.buckets, &prev.buckets, 0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_from_bucket_deltas() {
        let prev = [(0.001, 10), (0.01, 10), (0.1, 10)];
        let now = [(0.001, 60), (0.01, 109), (0.1, 110)];
        // 100 requests: 50 under 1 ms, 49 under 10 ms, 1 under 100 ms.
        assert_eq!(quantile(&now, &prev, 0.5), Some(1.0));
        assert_eq!(quantile(&now, &prev, 0.99), Some(10.0));
        assert_eq!(quantile(&prev, &prev, 0.5), None);
    }
}
