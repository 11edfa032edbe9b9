//! The connection actor: one per accepted connection, a temporary child of
//! the listener's `acceptor_sup`. It is started first and then handed the
//! socket, so nothing blocks in its start-up; it runs the protocol's `serve`
//! in a task it owns, and ends when `serve` does.

use super::protocol::{Connection, ConnectionRef, Protocol, Socket};
use super::shared::ListenerShared;
use crate::util::AbortOnDrop;
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

pub(crate) enum ConnMsg {
    /// The accepted socket, its peer, and the permit it holds against
    /// max_connections.
    Socket(Socket, SocketAddr, OwnedSemaphorePermit),
    /// `serve` returned (or panicked).
    Done(Outcome),
}

pub(crate) enum Outcome {
    Closed,
    Error(String),
    Panicked(String),
}

pub(crate) struct ConnectionActor<P>(PhantomData<fn() -> P>);

impl<P> ConnectionActor<P> {
    pub(crate) fn new() -> Self {
        ConnectionActor(PhantomData)
    }
}

pub(crate) struct ConnArgs<P> {
    pub(crate) protocol: Arc<P>,
    pub(crate) shared: Arc<ListenerShared>,
}

impl<P> Clone for ConnArgs<P> {
    fn clone(&self) -> Self {
        ConnArgs {
            protocol: self.protocol.clone(),
            shared: self.shared.clone(),
        }
    }
}

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

pub(crate) struct ConnState<P> {
    args: ConnArgs<P>,
    // Field order matters: the task is aborted before the permit is released.
    task: Option<AbortOnDrop>,
    open: Option<Open>,
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

impl<P: Protocol> Actor for ConnectionActor<P> {
    type Msg = ConnMsg;
    type State = ConnState<P>;
    type Arguments = ConnArgs<P>;

    async fn pre_start(
        &self,
        _: ActorRef<ConnMsg>,
        args: ConnArgs<P>,
    ) -> Result<ConnState<P>, ActorProcessingErr> {
        Ok(ConnState {
            args,
            task: None,
            open: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ConnMsg>,
        msg: ConnMsg,
        state: &mut ConnState<P>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConnMsg::Socket(socket, peer, permit) => {
                let shared = &state.args.shared;
                if let Some(o) = &shared.observer {
                    o.opened();
                }
                tracing::debug!(listener = %shared.name, %peer, "connection opened");
                shared.connection_opened();
                state.open = Some(Open {
                    shared: shared.clone(),
                    peer,
                    _permit: permit,
                });
                let (tx, inbox) = mpsc::channel(shared.inbox_capacity);
                let draining = shared.drain_token().child_token();
                let listener = shared.name.clone();
                #[cfg(feature = "tls")]
                let tls = match &shared.transport {
                    super::shared::ListenTransport::Tls(acceptor) => {
                        Some((acceptor.clone(), shared.handshake_timeout))
                    }
                    _ => None,
                };
                let protocol = state.args.protocol.clone();
                let me = myself.clone();
                let task = tokio::spawn(async move {
                    #[cfg(feature = "tls")]
                    let socket = match tls {
                        Some((acceptor, timeout)) => {
                            match handshake(socket, acceptor, timeout, &draining).await {
                                Ok(Some(socket)) => socket,
                                Ok(None) => {
                                    let _ = me.cast(ConnMsg::Done(Outcome::Closed));
                                    return;
                                }
                                Err(e) => {
                                    tracing::debug!(%listener, %peer, error = %e, "TLS handshake failed");
                                    let _ = me.cast(ConnMsg::Done(Outcome::Error(e)));
                                    return;
                                }
                            }
                        }
                        None => socket,
                    };
                    let conn = Connection {
                        socket: Some(socket),
                        peer,
                        listener,
                        draining: draining.clone(),
                        inbox,
                        handle: ConnectionRef { tx, draining, peer },
                    };
                    // `serve` itself may panic before its future does.
                    let serve = async move { protocol.serve(conn).await };
                    let outcome = match AssertUnwindSafe(serve).catch_unwind().await {
                        Ok(Ok(())) => Outcome::Closed,
                        Ok(Err(e)) => Outcome::Error(e.to_string()),
                        Err(p) => Outcome::Panicked(panic_message(p)),
                    };
                    let _ = me.cast(ConnMsg::Done(outcome));
                });
                state.task = Some(AbortOnDrop::new(task));
            }
            ConnMsg::Done(Outcome::Closed) => myself.stop(None),
            ConnMsg::Done(Outcome::Error(e)) => myself.stop(Some(format!("shutdown: {e}"))),
            ConnMsg::Done(Outcome::Panicked(p)) => {
                return Err(format!("connection handler panicked: {p}").into())
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ConnMsg>,
        state: &mut ConnState<P>,
    ) -> Result<(), ActorProcessingErr> {
        state.task.take();
        state.open.take();
        Ok(())
    }
}
