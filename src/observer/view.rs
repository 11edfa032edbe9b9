//! What the observer shows, as JSON: the tree, the listeners, the chat,
//! the cluster, and the samples of the charts. The same types read the
//! JSON back (`corral observe` does), and [`TreeView`] draws itself as text.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One entry of the supervision tree: the root, a supervisor, a worker, or
/// a dynamic supervisor's children counted (`GET /observer/api/tree`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TreeView {
    /// Its id under its supervisor (the root: the node's name).
    pub id: String,
    /// The ids from the root's children down to this entry (empty for the
    /// root): how an action names a child.
    pub path: Vec<String>,
    /// `"worker"`, `"supervisor"`, `"dynamic"` (simple_one_for_one) or
    /// `"unknown"` (a supervisor that could not be asked).
    pub kind: String,
    /// `"running"`, `"restarting"` or `"not_running"`.
    pub status: String,
    /// A supervisor's strategy (`one_for_one`, ..., `simple_one_for_one`).
    pub strategy: Option<String>,
    /// Its restart type (`permanent`, `transient`, `temporary`); none for
    /// the root.
    pub restart: Option<String>,
    /// Starts after its first one (see
    /// [`ChildHistory`](crate::supervisor::ChildHistory)).
    pub restarts: u64,
    /// Why it was last restarted.
    pub last_restart_reason: Option<String>,
    /// How long ago it was last restarted, in ms.
    pub since_last_restart_ms: Option<u64>,
    /// How long it has been running, in ms.
    pub uptime_ms: Option<u64>,
    /// A supervisor's own restarts (of any of its children).
    pub supervisor_restarts: Option<u64>,
    /// A supervisor's intensity: at most this many restarts ...
    pub max_restarts: Option<u32>,
    /// ... within this many ms.
    pub period_ms: Option<u64>,
    /// A dynamic supervisor's template id (its children's name).
    pub template: Option<String>,
    /// A dynamic supervisor's children running ...
    pub running: Option<usize>,
    /// ... and held (running or being restarted).
    pub total: Option<usize>,
    /// A static supervisor's children, in start order.
    pub children: Vec<TreeView>,
}

impl TreeView {
    /// The entry at `path` (ids below this one).
    pub fn at(&self, path: &[&str]) -> Option<&TreeView> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => self
                .children
                .iter()
                .find(|c| c.id == *first)
                .and_then(|c| c.at(rest)),
        }
    }

    fn label(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        if let Some(s) = &self.strategy {
            write!(f, " ({s})")?;
        }
        if let Some(r) = &self.restart {
            write!(f, " {r}")?;
        }
        if self.status != "running" {
            write!(f, " [{}]", self.status.replace('_', " "))?;
        }
        if let Some(up) = self.uptime_ms {
            write!(f, " up {}", Ms(up))?;
        }
        if self.restarts > 0 {
            write!(f, " restarts {}", self.restarts)?;
            if let Some(why) = &self.last_restart_reason {
                write!(f, " (last: {}", one_line(why))?;
                if let Some(ago) = self.since_last_restart_ms {
                    write!(f, ", {} ago", Ms(ago))?;
                }
                f.write_str(")")?;
            }
        }
        Ok(())
    }

    fn draw(&self, f: &mut fmt::Formatter<'_>, prefix: &str) -> fmt::Result {
        let dynamic = self.kind == "dynamic";
        let rows = if dynamic { 1 } else { self.children.len() };
        for i in 0..rows {
            let last = i + 1 == rows;
            let (branch, indent) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            write!(f, "{prefix}{branch}")?;
            if dynamic {
                let template = self.template.as_deref().unwrap_or("child");
                write!(f, "{template} × {}", self.running.unwrap_or(0))?;
                let (running, total) = (self.running.unwrap_or(0), self.total.unwrap_or(0));
                if total > running {
                    write!(f, " ({} restarting)", total - running)?;
                }
                f.write_str("\n")?;
            } else {
                let child = &self.children[i];
                child.label(f)?;
                f.write_str("\n")?;
                child.draw(f, &format!("{prefix}{indent}"))?;
            }
        }
        Ok(())
    }
}

/// A reason on one line, control characters shown as `?` (a name or a
/// reason comes from anywhere; a terminal must not obey it).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A duration in ms, shortly: `850ms`, `12s`, `3m12s`, `5h03m`, `2d04h`.
struct Ms(u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        let s = ms / 1000;
        match s {
            0 => write!(f, "{ms}ms"),
            1..=59 => write!(f, "{s}s"),
            60..=3599 => write!(f, "{}m{:02}s", s / 60, s % 60),
            3600..=86_399 => write!(f, "{}h{:02}m", s / 3600, s % 3600 / 60),
            _ => write!(f, "{}d{:02}h", s / 86_400, s % 86_400 / 3600),
        }
    }
}

impl fmt::Display for TreeView {
    /// The tree as `tree(1)` draws it, one line per entry with its restart
    /// type, state, uptime and restarts; control characters in names are
    /// shown as `?`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = clean(self);
        t.label(f)?;
        f.write_str("\n")?;
        t.draw(f, "")
    }
}

/// The tree with its names on one line each.
fn clean(t: &TreeView) -> TreeView {
    TreeView {
        id: one_line(&t.id),
        template: t.template.as_deref().map(one_line),
        children: t.children.iter().map(clean).collect(),
        ..t.clone()
    }
}

/// One listener (`GET /observer/api/listeners`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListenerView {
    /// Its name.
    pub name: String,
    /// `"tcp"`, `"tls"` or `"sctp"`.
    pub transport: String,
    /// The address it is bound to.
    pub address: Option<String>,
    /// `"accepting"`, `"suspended"`, `"draining"` or `"restarting"`.
    pub state: String,
    /// Connections open now.
    pub connections: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Clients accepted since it started.
    pub accepted: u64,
    /// Clients accepted per second over the last sample (0 before two
    /// samples).
    pub accept_rate: f64,
}

/// The chat (`GET /observer/api/chat`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatView {
    /// Whether the node runs the chat; the rest is empty when not.
    pub enabled: bool,
    /// Users logged in now.
    pub users_online: usize,
    /// Their names (the first 100, by name).
    pub online: Vec<String>,
    /// Connections with a chat session.
    pub sessions: usize,
    /// Topics with subscribers.
    pub topics: usize,
    /// Subscriptions (connection, topic).
    pub subscriptions: usize,
    /// The topics with the most subscribers (at most 10).
    pub busiest: Vec<TopicView>,
    /// Pushes queued for every session together.
    pub queued_pushes: usize,
    /// The deepest push queues (at most 10).
    pub deepest_queues: Vec<QueueView>,
    /// Pushes queued for subscribers since start.
    pub pushes_delivered: u64,
    /// Pushes dropped because a subscriber's queue was full.
    pub pushes_dropped: u64,
    /// The store's file.
    pub store_path: Option<String>,
    /// Its size in bytes.
    pub store_bytes: Option<u64>,
    /// Write transactions committed.
    pub commits: u64,
    /// Writes they held.
    pub writes: u64,
    /// The largest batch.
    pub largest_batch: u64,
    /// Writes per commit over the last sample (`None` without commits).
    pub recent_batch: Option<f64>,
}

/// A topic and its subscribers ([`ChatView::busiest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TopicView {
    /// The channel's or user's name.
    pub name: String,
    /// `"channel"` or `"private"`.
    pub kind: String,
    /// Connections subscribed.
    pub subscribers: usize,
}

/// One push queue ([`ChatView::deepest_queues`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueView {
    /// The logged-in user, if any.
    pub user: Option<String>,
    /// The connection's number in the hub.
    pub connection: u64,
    /// Pushes waiting.
    pub queued: usize,
    /// The queue's bound.
    pub limit: usize,
}

/// The cluster (`GET /observer/api/cluster`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterView {
    /// Whether the node is in a cluster; the rest is empty when not.
    pub enabled: bool,
    /// This node's name.
    pub me: Option<String>,
    /// Whether NATS answers.
    pub nats_connected: bool,
    /// The primary's name.
    pub primary: Option<String>,
    /// Failovers seen.
    pub failovers: u64,
    /// The last log sequence applied here.
    pub log_applied: i64,
    /// Log entries this node has yet to apply.
    pub log_lag: i64,
    /// The live members, by rank.
    pub members: Vec<MemberView>,
}

/// One member of the cluster ([`ClusterView::members`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemberView {
    /// Its name.
    pub name: String,
    /// Its rank (registration order).
    pub rank: u64,
    /// `"primary"` or `"backup"`.
    pub role: String,
    /// The clock correction applied to it, in ms.
    pub clock_offset_ms: i64,
    /// How old its last heartbeat is by this node's clock, in ms (by wall
    /// clocks: an estimate).
    pub heartbeat_age_ms: i64,
    /// This node's own log lag; other members' is not known here.
    pub lag: Option<i64>,
    /// Its RPC address.
    pub rpc: Option<String>,
    /// Its HTTP address.
    pub http: Option<String>,
}

/// One point of the charts: the node's request rate and latency over one
/// sampling interval, from its own metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Sample {
    /// When it was taken, in ms since the Unix epoch.
    pub at_ms: u64,
    /// HTTP requests answered per second.
    pub http_rate: f64,
    /// RPC requests handled per second.
    pub rpc_rate: f64,
    /// Median latency of the HTTP and RPC requests of the interval, in ms
    /// (the upper bound of its histogram bucket); `None` without requests.
    pub p50_ms: Option<f64>,
    /// 99th percentile, likewise.
    pub p99_ms: Option<f64>,
}
