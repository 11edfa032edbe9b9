//! How a listener reports its connections: a small observer of its own, so
//! the listener needs nothing of the node's metrics.

use std::io;

/// Told as one listener's connections come and go. The node gives each
/// listener one that counts in its Prometheus metrics
/// (`corral_connections_*`); a library user can count elsewhere. Every
/// method has an empty default, and each is called on the listener's or the
/// connection's task, so it should be quick.
///
/// ```
/// use corral::listener::ListenerObserver;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// #[derive(Debug, Default)]
/// struct Open(AtomicUsize);
/// impl ListenerObserver for Open {
///     fn opened(&self) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
///     fn closed(&self) {
///         self.0.fetch_sub(1, Ordering::Relaxed);
///     }
/// }
/// ```
pub trait ListenerObserver: Send + Sync + 'static {
    /// A client was accepted; its connection is being started.
    fn accepted(&self) {}
    /// The connection's task took the socket: it is open.
    fn opened(&self) {}
    /// An open connection closed.
    fn closed(&self) {}
    /// `accept(2)` failed (EMFILE and the like); the listener retries.
    fn accept_failed(&self, error: &io::Error) {
        let _ = error;
    }
}
