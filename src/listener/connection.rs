//! One connection: a task, a temporary child of the listener's
//! `acceptor_sup` (see `conns.rs`). It does the TLS handshake (TLS
//! listeners), runs the protocol's `serve` and ends when `serve` does; a
//! panic in `serve` ends that connection alone, logged as a crash.

use super::conns::{Closed, Conns};
use super::protocol::{Connection, ConnectionRef, Protocol, Socket};
use super::shared::ListenerShared;
use futures::FutureExt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Counts the connection open while it lives; holds its permit.
struct Open {
    shared: Arc<ListenerShared>,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(o) = &self.shared.observer {
            o.closed();
        }
        tracing::debug!(listener = %self.shared.name, peer = %self.peer, "connection closed");
        // Last, so that a caller who sees the count drop sees the metrics too.
        self.shared.connection_closed();
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// The server side of a TLS handshake on `socket` (a TCP one), within
/// `timeout`: the TLS socket, `None` if the listener drains meanwhile, or
/// why it failed.
#[cfg(feature = "tls")]
async fn handshake(
    socket: Socket,
    acceptor: tokio_rustls::TlsAcceptor,
    timeout: std::time::Duration,
    draining: &tokio_util::sync::CancellationToken,
) -> Result<Option<Socket>, String> {
    let Socket::Tcp(stream) = socket else {
        return Err("TLS over a transport other than TCP".into());
    };
    tokio::select! {
        r = tokio::time::timeout(timeout, acceptor.accept(stream)) => match r {
            Ok(Ok(tls)) => Ok(Some(Socket::Tls(Box::new(tls)))),
            Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
            Err(_) => Err(format!("TLS handshake timed out after {timeout:?}")),
        },
        () = draining.cancelled() => Ok(None),
    }
}

/// How a connection ended.
enum Outcome {
    Closed,
    Error(String),
    Panicked(String),
}

/// Serves one accepted socket to its end, holding its `permit` against
/// max_connections meanwhile; counts it open and closed.
pub(crate) async fn run<P: Protocol>(
    protocol: Arc<P>,
    shared: Arc<ListenerShared>,
    socket: Socket,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    if let Some(o) = &shared.observer {
        o.opened();
    }
    tracing::debug!(listener = %shared.name, %peer, "connection opened");
    shared.connection_opened();
    // First in, last out: counted closed once everything below is gone.
    let _open = Open {
        shared: shared.clone(),
        peer,
        _permit: permit,
    };
    let outcome = serve(protocol, &shared, socket, peer).await;
    match outcome {
        Outcome::Closed => {}
        Outcome::Error(e) => {
            tracing::debug!(listener = %shared.name, %peer, error = %e, "connection ended: shutdown")
        }
        Outcome::Panicked(p) => {
            tracing::error!(listener = %shared.name, %peer, panic = %p, "connection handler panicked")
        }
    }
}

async fn serve<P: Protocol>(
    protocol: Arc<P>,
    shared: &ListenerShared,
    socket: Socket,
    peer: SocketAddr,
) -> Outcome {
    let (tx, inbox) = super::inbox::inbox(shared.inbox_capacity);
    let draining = shared.drain_token().child_token();
    #[cfg(feature = "tls")]
    let socket = match &shared.transport {
        super::shared::ListenTransport::Tls(acceptor) => {
            match handshake(
                socket,
                acceptor.clone(),
                shared.handshake_timeout,
                &draining,
            )
            .await
            {
                Ok(Some(socket)) => socket,
                Ok(None) => return Outcome::Closed,
                Err(e) => {
                    tracing::debug!(listener = %shared.name, %peer, error = %e, "TLS handshake failed");
                    return Outcome::Error(e);
                }
            }
        }
        _ => socket,
    };
    let conn = Connection {
        socket: Some(socket),
        peer,
        listener: shared.name.clone(),
        draining: draining.clone(),
        inbox,
        handle: ConnectionRef { tx, draining, peer },
    };
    // `serve` itself may panic before its future does.
    let serve = async move { protocol.serve(conn).await };
    match AssertUnwindSafe(serve).catch_unwind().await {
        Ok(Ok(())) => Outcome::Closed,
        Ok(Err(e)) => Outcome::Error(e.to_string()),
        Err(p) => Outcome::Panicked(panic_message(p)),
    }
}

/// What the accept loop hands each accepted socket to: the running
/// acceptor_sup's registry, with the listener's protocol.
pub(crate) trait StartConnection: Send + Sync {
    /// Starts a connection task for `socket`; `Err` if acceptor_sup has
    /// ended (the socket is then closed).
    fn start(
        &self,
        shared: &Arc<ListenerShared>,
        socket: Socket,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), Closed>;
}

/// [`StartConnection`] for protocol `P`.
pub(crate) struct Starter<P> {
    pub(crate) conns: Arc<Conns>,
    pub(crate) protocol: Arc<P>,
}

impl<P: Protocol> StartConnection for Starter<P> {
    fn start(
        &self,
        shared: &Arc<ListenerShared>,
        socket: Socket,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), Closed> {
        self.conns.start(run(
            self.protocol.clone(),
            shared.clone(),
            socket,
            peer,
            permit,
        ))
    }
}
