//! The listener actor: owns the listening socket and accepts. Before each
//! accept it takes a permit, so `max_connections` is back-pressure (one more
//! client waits in the kernel's backlog), not an error. Each accepted socket
//! becomes a connection task under `acceptor_sup`.

use super::msg::ListenerMsg;
use super::protocol::Socket;
use super::shared::{ListenTransport, ListenerShared};
use crate::util::AbortOnDrop;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Pause after an accept error that says the process is out of a resource
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM) before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

pub(crate) struct ListenerActor;

pub(crate) struct State {
    shared: Arc<ListenerShared>,
    accepting: Option<AbortOnDrop>,
    me: Option<ractor::ActorId>,
}

impl Drop for State {
    /// However the listener ended (a kill runs no `post_stop`), it no longer
    /// accepts: readiness must not report it.
    fn drop(&mut self) {
        if let Some(id) = self.me {
            self.shared.clear_listener(id);
        }
    }
}

/// A bound listening socket of either transport: the one accept loop serves
/// both.
enum Bound {
    Tcp(TcpListener),
    #[cfg(feature = "sctp")]
    Sctp(tokio_sctp::SctpListener),
}

impl Bound {
    #[cfg_attr(not(feature = "sctp"), allow(unused_variables))]
    async fn accept(&self, shared: &ListenerShared) -> io::Result<(Socket, SocketAddr)> {
        match self {
            Bound::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((Socket::Tcp(stream), peer))
            }
            #[cfg(feature = "sctp")]
            Bound::Sctp(l) => {
                let (stream, peer) = l.accept().await?;
                if let ListenTransport::Sctp(opts) = &shared.transport {
                    let _ = stream.set_nodelay(opts.nodelay);
                }
                Ok((Socket::Sctp(stream), peer))
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Bound::Tcp(l) => l.local_addr(),
            #[cfg(feature = "sctp")]
            Bound::Sctp(l) => l.local_addr(),
        }
    }
}

/// Binds the listening socket with the configured backlog. On a restart the
/// previous socket may still be closing; the address is then retried briefly.
async fn bind(shared: &ListenerShared) -> io::Result<Bound> {
    let bound = *shared.lock_local_addr();
    let addr: SocketAddr = match bound {
        Some(bound) => bound,
        None => tokio::net::lookup_host(&shared.bind)
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?,
    };
    let mut tries = 0;
    loop {
        let listening = match &shared.transport {
            ListenTransport::Tcp => bind_once(addr, shared.backlog).map(Bound::Tcp),
            // The handshake is the connection's task's: a slow client never
            // holds up the accept loop.
            #[cfg(feature = "tls")]
            ListenTransport::Tls(_) => bind_once(addr, shared.backlog).map(Bound::Tcp),
            #[cfg(feature = "sctp")]
            ListenTransport::Sctp(opts) => {
                crate::transport::sctp::bind(addr, opts, shared.backlog).map(Bound::Sctp)
            }
        };
        match listening {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && bound.is_some() && tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

fn bind_once(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

fn resource_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == libc_code::EMFILE || code == libc_code::ENFILE || code == libc_code::ENOBUFS || code == libc_code::ENOMEM
    )
}

/// errno values (Linux) for the accept errors that call for a pause.
mod libc_code {
    pub(super) const EMFILE: i32 = 24;
    pub(super) const ENFILE: i32 = 23;
    pub(super) const ENOBUFS: i32 = 105;
    pub(super) const ENOMEM: i32 = 12;
}

async fn accept_loop(listener: Bound, shared: Arc<ListenerShared>, me: ActorRef<ListenerMsg>) {
    loop {
        let Ok(permit) = shared.permits.clone().acquire_owned().await else {
            return;
        };
        let (socket, peer) = loop {
            match listener.accept(&shared).await {
                Ok(accepted) => break accepted,
                Err(e) => {
                    if let Some(o) = &shared.observer {
                        o.accept_failed(&e);
                    }
                    tracing::warn!(listener = %shared.name, error = %e, "accept failed");
                    if resource_exhausted(&e) {
                        tokio::time::sleep(ACCEPT_PAUSE).await;
                    }
                }
            }
        };
        shared
            .accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(o) = &shared.observer {
            o.accepted();
        }
        let Some(acceptor) = shared.acceptor() else {
            let _ = me.cast(ListenerMsg::LoopEnded("acceptor_sup is not running".into()));
            return;
        };
        if acceptor.start(&shared, socket, peer, permit).is_err() {
            let _ = me.cast(ListenerMsg::LoopEnded("acceptor_sup is not running".into()));
            return;
        }
    }
}

impl State {
    async fn start_accepting(&mut self, me: &ActorRef<ListenerMsg>) -> io::Result<()> {
        let listener = bind(&self.shared).await?;
        let addr = listener.local_addr()?;
        *self.shared.lock_local_addr() = Some(addr);
        tracing::info!(listener = %self.shared.name, %addr, "listening");
        let task = tokio::spawn(accept_loop(listener, self.shared.clone(), me.clone()));
        self.accepting = Some(AbortOnDrop::new(task));
        Ok(())
    }
}

impl Actor for ListenerActor {
    type Msg = ListenerMsg;
    type State = State;
    type Arguments = Arc<ListenerShared>;

    async fn pre_start(
        &self,
        myself: ActorRef<ListenerMsg>,
        shared: Arc<ListenerShared>,
    ) -> Result<State, ActorProcessingErr> {
        shared.renew_drain_token();
        let mut state = State {
            shared,
            accepting: None,
            me: None,
        };
        if let Err(e) = state.start_accepting(&myself).await {
            return Err(format!(
                "listener {}: cannot listen on {}: {e}",
                state.shared.name, state.shared.bind
            )
            .into());
        }
        state.me = Some(myself.get_id());
        state.shared.set_listener(Some(myself));
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<ListenerMsg>,
        msg: ListenerMsg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ListenerMsg::Suspend(reply) => {
                if let Some(accepting) = state.accepting.take() {
                    accepting.stop().await;
                    tracing::info!(listener = %state.shared.name, "suspended");
                }
                state.shared.set_suspended(true);
                let _ = reply.send(());
            }
            ListenerMsg::Resume(reply) => {
                let r = if state.accepting.is_some() {
                    Ok(())
                } else {
                    state.start_accepting(&myself).await
                };
                if r.is_ok() {
                    state.shared.set_suspended(false);
                }
                let _ = reply.send(r);
            }
            ListenerMsg::LoopEnded(why) => return Err(why.into()),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ListenerMsg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        // Stop accepting, then let open connections finish for the drain timeout.
        if let Some(accepting) = state.accepting.take() {
            accepting.stop().await;
        }
        state.shared.set_listener(None);
        // Permits, not connections: a socket being handed over counts too.
        state.shared.drain().await;
        Ok(())
    }
}
