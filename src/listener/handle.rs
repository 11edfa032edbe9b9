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
