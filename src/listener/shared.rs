//! What every incarnation of a listener and its connections share: it
//! outlives restarts of the listener actor and of acceptor_sup.

use super::connection::StartConnection;
use super::msg::ListenerMsg;
use super::observer::ListenerObserver;
use ractor::ActorRef;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The transport a listener binds.
pub(crate) enum ListenTransport {
    Tcp,
    #[cfg(feature = "sctp")]
    Sctp(crate::transport::SctpOptions),
    /// TCP, then a TLS handshake in each connection's task.
    #[cfg(feature = "tls")]
    Tls(tokio_rustls::TlsAcceptor),
}

impl ListenTransport {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ListenTransport::Tcp => "tcp",
            #[cfg(feature = "sctp")]
            ListenTransport::Sctp(_) => "sctp",
            #[cfg(feature = "tls")]
            ListenTransport::Tls(_) => "tls",
        }
    }
}

/// What every incarnation of a listener and its connections share; it
/// outlives restarts of the listener and of acceptor_sup.
pub(crate) struct ListenerShared {
    pub(crate) name: Arc<str>,
    pub(crate) bind: String,
    pub(crate) transport: ListenTransport,
    pub(crate) backlog: u32,
    pub(crate) max_connections: usize,
    pub(crate) drain_timeout: Duration,
    /// How long a TLS handshake may take (TLS listeners only).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) handshake_timeout: Duration,
    pub(crate) inbox_capacity: usize,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) observer: Option<Arc<dyn ListenerObserver>>,
    /// Connections started and not yet closed.
    pub(crate) open: AtomicUsize,
    /// Clients accepted since the listener was built (across restarts).
    pub(crate) accepted: AtomicU64,
    pub(crate) drain: Mutex<CancellationToken>,
    /// When the drain of the current token ends: set by the first
    /// [`drain`](Self::drain), so that a second one (the node drained the
    /// listener, then the tree stops it) waits no longer than the first.
    pub(crate) drain_deadline: Mutex<Option<tokio::time::Instant>>,
    pub(crate) local_addr: Mutex<Option<SocketAddr>>,
    /// Where accepted sockets go: the running acceptor_sup.
    pub(crate) acceptor: Mutex<Option<Arc<dyn StartConnection>>>,
    pub(crate) listener: Mutex<Option<ActorRef<ListenerMsg>>>,
    pub(crate) suspended: Mutex<bool>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ListenerShared {
    pub(crate) fn drain_token(&self) -> CancellationToken {
        lock(&self.drain).clone()
    }

    /// A listener starting again after a drain gets a fresh token.
    pub(crate) fn renew_drain_token(&self) {
        let mut t = lock(&self.drain);
        if t.is_cancelled() {
            *t = CancellationToken::new();
            *lock(&self.drain_deadline) = None;
        }
    }

    pub(crate) fn lock_local_addr(&self) -> MutexGuard<'_, Option<SocketAddr>> {
        lock(&self.local_addr)
    }

    pub(crate) fn acceptor(&self) -> Option<Arc<dyn StartConnection>> {
        lock(&self.acceptor).clone()
    }

    pub(crate) fn set_listener(&self, l: Option<ActorRef<ListenerMsg>>) {
        *lock(&self.listener) = l;
    }

    /// Forgets the listener actor `id` if it is still the registered one (a
    /// killed listener runs no `post_stop`; its successor may already be in).
    pub(crate) fn clear_listener(&self, id: ractor::ActorId) {
        let mut l = lock(&self.listener);
        if l.as_ref().is_some_and(|r| r.get_id() == id) {
            *l = None;
        }
    }

    pub(crate) fn set_suspended(&self, s: bool) {
        *lock(&self.suspended) = s;
    }

    /// Connections open now. Not derived from the permits: the accept loop
    /// holds one while it waits for the next client.
    pub(crate) fn connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Permits taken: open connections, sockets being handed over, and the
    /// one the accept loop holds while it waits.
    pub(crate) fn permits_in_use(&self) -> usize {
        self.max_connections
            .saturating_sub(self.permits.available_permits())
    }

    /// Asks every open connection to finish (cancels the drain token) and
    /// waits until they have, at most until the drain timeout after the
    /// first call; true if they all did. Call it once the accept loop has
    /// stopped: it holds a permit too.
    pub(crate) async fn drain(&self) -> bool {
        self.drain_token().cancel();
        let (deadline, first) = {
            let mut d = lock(&self.drain_deadline);
            let first = d.is_none();
            (
                *d.get_or_insert_with(|| tokio::time::Instant::now() + self.drain_timeout),
                first,
            )
        };
        let open = self.permits_in_use();
        if open == 0 {
            return true;
        }
        if first {
            tracing::info!(listener = %self.name, open, "draining connections");
        } else if tokio::time::Instant::now() >= deadline {
            return false;
        }
        let all = self.max_connections.min(u32::MAX as usize) as u32;
        match tokio::time::timeout_at(deadline, self.permits.acquire_many(all)).await {
            Ok(Ok(_all)) => true,
            _ => {
                tracing::warn!(
                    listener = %self.name,
                    open = self.connections(),
                    "drain timeout: closing remaining connections"
                );
                false
            }
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}
