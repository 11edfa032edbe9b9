//! Node-wide RPC counters, shown by the `stats` service.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Node-wide counters shown by the `stats` service.
#[derive(Debug)]
pub(crate) struct RpcStats {
    requests: AtomicU64,
    connections: AtomicU64,
    next_conn: AtomicU64,
    started: Instant,
}

impl RpcStats {
    pub(crate) fn new() -> Self {
        RpcStats {
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
            started: Instant::now(),
        }
    }

    /// Counts one request received.
    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests received (every body, well-formed or not).
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Connections being served.
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts a connection until the guard drops; returns its number too.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> (u64, ConnGuard) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        (id, ConnGuard(self.clone()))
    }
}

/// Decrements the open-connection count when dropped.
#[derive(Debug)]
pub(crate) struct ConnGuard(Arc<RpcStats>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
