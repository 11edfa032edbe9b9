//! A handle to a running listener: its address and connections, suspend,
//! resume and drain.

use super::error::ListenerError;
use super::msg::ListenerMsg;
use super::shared::{lock, ListenerShared};
use ractor::rpc::CallResult;
use ractor::ActorRef;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// One listener's figures at one moment ([`ListenerHandle::stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerStats {
    /// The listener's name.
    pub name: String,
    /// `"tcp"`, `"tls"` or `"sctp"`.
    pub transport: &'static str,
    /// The address it is bound to, once it has started.
    pub local_addr: Option<SocketAddr>,
    /// Connections open now.
    pub connections: usize,
    /// Most connections open at once (more wait in the backlog).
    pub max_connections: usize,
    /// Clients accepted since it was built (its rate is the accept rate).
    pub accepted: u64,
    /// Whether the listener actor runs (false while it restarts).
    pub running: bool,
    /// Suspended: not accepting, open connections kept.
    pub suspended: bool,
    /// Its open connections have been asked to finish (a drain).
    pub draining: bool,
}

/// A handle to a listener: its address, its connections, suspend and resume.
#[derive(Clone)]
pub struct ListenerHandle {
    shared: Arc<ListenerShared>,
}

impl std::fmt::Debug for ListenerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerHandle")
            .field("name", &self.shared.name)
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

impl ListenerHandle {
    pub(crate) fn new(shared: Arc<ListenerShared>) -> Self {
        ListenerHandle { shared }
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address the listener is bound to, once it has started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *self.shared.lock_local_addr()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.connections()
    }

    /// True while the listener runs and accepts (not suspended, not restarting).
    pub fn is_accepting(&self) -> bool {
        lock(&self.shared.listener).is_some() && !*lock(&self.shared.suspended)
    }

    /// What the listener is doing now: its figures in one read (see
    /// [`ListenerStats`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use corral::listener::{Connection, ListenerSpec, Protocol, ProtocolError};
    /// # struct Hangup;
    /// # #[corral::async_trait]
    /// # impl Protocol for Hangup {
    /// #     type Msg = ();
    /// #     async fn serve(&self, _: Connection<()>) -> Result<(), ProtocolError> { Ok(()) }
    /// # }
    /// use corral::supervisor::{Supervisor, SupervisorSpec};
    /// let (child, listener) = ListenerSpec::tcp("web", "127.0.0.1:0", Hangup).max_connections(5).build();
    /// let root = Supervisor::start(SupervisorSpec::new("root").child(child)).await?;
    /// let stats = listener.stats();
    /// assert_eq!((stats.transport, stats.max_connections, stats.suspended), ("tcp", 5, false));
    /// listener.suspend().await?;
    /// assert!(listener.stats().suspended);
    /// root.stop().await;
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> ListenerStats {
        let s = &self.shared;
        ListenerStats {
            name: s.name.to_string(),
            transport: s.transport.name(),
            local_addr: self.local_addr(),
            connections: s.connections(),
            max_connections: s.max_connections,
            accepted: s.accepted.load(std::sync::atomic::Ordering::Relaxed),
            running: lock(&s.listener).is_some(),
            suspended: *lock(&s.suspended),
            draining: lock(&s.drain).is_cancelled(),
        }
    }

    fn listener(&self) -> Result<ActorRef<ListenerMsg>, ListenerError> {
        lock(&self.shared.listener)
            .clone()
            .ok_or_else(|| ListenerError::NotRunning(self.shared.name.to_string()))
    }

    /// Stops accepting and closes the listening socket (new clients are
    /// refused); open connections go on.
    pub async fn suspend(&self) -> Result<(), ListenerError> {
        let l = self.listener()?;
        match l.call(ListenerMsg::Suspend, None).await {
            Ok(CallResult::Success(())) => Ok(()),
            _ => Err(ListenerError::NotRunning(self.shared.name.to_string())),
        }
    }

    /// Listens again on the same address.
    pub async fn resume(&self) -> Result<(), ListenerError> {
        let l = self.listener()?;
        match l.call(ListenerMsg::Resume, None).await {
            Ok(CallResult::Success(Ok(()))) => Ok(()),
            Ok(CallResult::Success(Err(source))) => Err(ListenerError::Bind {
                name: self.shared.name.to_string(),
                source,
            }),
            _ => Err(ListenerError::NotRunning(self.shared.name.to_string())),
        }
    }

    /// Stops accepting (as [`suspend`](Self::suspend)), asks every open
    /// connection to finish and close, and waits up to the listener's drain
    /// timeout until they have; true if they all did. A node's shutdown
    /// drains all its listeners at once this way before it stops the tree.
    pub async fn drain(&self) -> bool {
        // A listener that is not running accepts nothing: drain what is open.
        let _ = self.suspend().await;
        self.shared.drain().await
    }

    /// Asks every open connection to finish and close (they see
    /// [`Connection::draining`](super::Connection::draining) cancelled); the
    /// listener keeps accepting new ones.
    pub fn drain_connections(&self) {
        let old = std::mem::replace(&mut *lock(&self.shared.drain), CancellationToken::new());
        old.cancel();
    }
}
