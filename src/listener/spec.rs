//! Building a listener subtree (Ranch's design): `listener_sup:<name>`, a
//! rest_for_one supervisor whose first child is `acceptor_sup` (the
//! supervisor of its connections, temporary tasks) and whose second is the
//! `listener`. acceptor_sup starts first; if it dies the listener is restarted
//! after it (it must never hand sockets to a dead supervisor); if the listener
//! dies, live connections are left alone.

use super::actor::ListenerActor;
use super::connection::Starter;
use super::conns::{Conns, ConnsSup, ConnsSupArgs};
use super::handle::ListenerHandle;
use super::observer::ListenerObserver;
use super::protocol::Protocol;
use super::shared::{lock, ListenTransport, ListenerShared};
use crate::supervisor::{
    ChildKind, ChildSpec, Shutdown, Started, Strategy, SupervisorFlags, SupervisorSpec,
};
use ractor::Actor;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a TLS handshake may take by default: 10 s.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of one listener and the protocol it serves.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use corral::async_trait;
/// use corral::listener::{Connection, ListenerSpec, Protocol, ProtocolError};
/// use corral::supervisor::{Supervisor, SupervisorSpec};
///
/// struct Hangup;
/// #[async_trait]
/// impl Protocol for Hangup {
///     type Msg = ();
///     async fn serve(&self, _conn: Connection<()>) -> Result<(), ProtocolError> {
///         Ok(()) // closes at once
///     }
/// }
///
/// let (child, listener) = ListenerSpec::tcp("hangup", "127.0.0.1:0", Hangup)
///     .max_connections(100)
///     .build();
/// let root = Supervisor::start(SupervisorSpec::new("root").child(child)).await?;
/// let addr = listener.local_addr().expect("bound");
/// let _ = tokio::net::TcpStream::connect(addr).await?;
/// root.stop().await;
/// # Ok(()) }
/// ```
pub struct ListenerSpec<P> {
    name: String,
    bind: String,
    transport: ListenTransport,
    backlog: u32,
    max_connections: usize,
    drain_timeout: Duration,
    handshake_timeout: Duration,
    inbox_capacity: usize,
    observer: Option<Arc<dyn ListenerObserver>>,
    protocol: Arc<P>,
}

impl<P: Protocol> ListenerSpec<P> {
    /// A TCP listener named `name` on `bind` (`"127.0.0.1:7070"`; port 0 picks
    /// a free port, kept across restarts) serving `protocol`. Defaults:
    /// backlog 1024, max_connections 10,000, drain timeout 5 s, inbox 1024.
    pub fn tcp(name: impl Into<String>, bind: impl Into<String>, protocol: P) -> Self {
        Self::tcp_shared(name, bind, Arc::new(protocol))
    }

    /// Same as [`ListenerSpec::tcp`], with a protocol shared with others.
    pub fn tcp_shared(name: impl Into<String>, bind: impl Into<String>, protocol: Arc<P>) -> Self {
        ListenerSpec {
            name: name.into(),
            bind: bind.into(),
            transport: ListenTransport::Tcp,
            backlog: 1024,
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(5),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            inbox_capacity: 1024,
            observer: None,
            protocol,
        }
    }

    /// An SCTP listener; see [`ListenerSpec::sctp_shared`].
    #[cfg(feature = "sctp")]
    pub fn sctp(
        name: impl Into<String>,
        bind: impl Into<String>,
        protocol: P,
        opts: crate::transport::SctpOptions,
    ) -> Self {
        Self::sctp_shared(name, bind, Arc::new(protocol), opts)
    }

    /// An SCTP listener (kernel SCTP, one-to-one style: one connection task
    /// per association) named `name` on `bind` serving `protocol`, its
    /// sockets set up with `opts`. The protocol gets [`Socket::Sctp`]
    /// sockets. Defaults as for [`ListenerSpec::tcp`].
    ///
    /// [`Socket::Sctp`]: super::Socket::Sctp
    #[cfg(feature = "sctp")]
    pub fn sctp_shared(
        name: impl Into<String>,
        bind: impl Into<String>,
        protocol: Arc<P>,
        opts: crate::transport::SctpOptions,
    ) -> Self {
        let mut spec = Self::tcp_shared(name, bind, protocol);
        spec.transport = ListenTransport::Sctp(opts);
        spec
    }

    /// A TLS listener; see [`ListenerSpec::tls_shared`].
    #[cfg(feature = "tls")]
    pub fn tls(
        name: impl Into<String>,
        bind: impl Into<String>,
        protocol: P,
        config: Arc<crate::transport::tls::rustls::ServerConfig>,
    ) -> Self {
        Self::tls_shared(name, bind, Arc::new(protocol), config)
    }

    /// A TLS-over-TCP listener named `name` on `bind` serving `protocol`
    /// with the rustls `config` (certificate, key, ALPN; see
    /// [`transport::tls::server_config`](crate::transport::tls::server_config)).
    /// Each connection does the handshake in its own task, within
    /// the [handshake timeout](ListenerSpec::tls_handshake_timeout), and
    /// the protocol gets a [`Socket::Tls`]; a client that fails the
    /// handshake is closed without reaching the protocol. Defaults as for
    /// [`ListenerSpec::tcp`].
    ///
    /// [`Socket::Tls`]: super::Socket::Tls
    #[cfg(feature = "tls")]
    pub fn tls_shared(
        name: impl Into<String>,
        bind: impl Into<String>,
        protocol: Arc<P>,
        config: Arc<crate::transport::tls::rustls::ServerConfig>,
    ) -> Self {
        let mut spec = Self::tcp_shared(name, bind, protocol);
        spec.transport = ListenTransport::Tls(tokio_rustls::TlsAcceptor::from(config));
        spec
    }

    /// How long a TLS handshake may take (default 10 s); a client slower
    /// than that is closed. Only TLS listeners do handshakes.
    pub fn tls_handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// The listen backlog.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// The most connections open at once; more wait in the backlog.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long open connections get to finish at shutdown.
    pub fn drain_timeout(mut self, t: Duration) -> Self {
        self.drain_timeout = t;
        self
    }

    /// How many messages a connection's inbox holds.
    pub fn inbox_capacity(mut self, n: usize) -> Self {
        self.inbox_capacity = n.max(1);
        self
    }

    /// Tells `observer` of every connection accepted, opened and closed,
    /// and of accept errors (the node counts them in its metrics).
    pub fn observer(mut self, observer: Arc<dyn ListenerObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The listener subtree as a child spec (`listener_sup:<name>`), and a
    /// handle to the listener.
    pub fn build(self) -> (ChildSpec, ListenerHandle) {
        let shared = Arc::new(ListenerShared {
            name: Arc::from(self.name.as_str()),
            bind: self.bind,
            transport: self.transport,
            backlog: self.backlog,
            max_connections: self.max_connections,
            drain_timeout: self.drain_timeout,
            handshake_timeout: self.handshake_timeout,
            inbox_capacity: self.inbox_capacity,
            permits: Arc::new(Semaphore::new(self.max_connections)),
            observer: self.observer,
            open: AtomicUsize::new(0),
            accepted: std::sync::atomic::AtomicU64::new(0),
            drain: Mutex::new(CancellationToken::new()),
            drain_deadline: Mutex::new(None),
            local_addr: Mutex::new(None),
            acceptor: Mutex::new(None),
            listener: Mutex::new(None),
            suspended: Mutex::new(false),
        });
        let acceptor_name: Arc<str> = Arc::from(format!("acceptor_sup:{}", self.name));
        let slot = shared.clone();
        let protocol = self.protocol;
        let acceptor = ChildSpec::new("acceptor_sup", move |sup| {
            let name = acceptor_name.clone();
            let slot = slot.clone();
            let protocol = protocol.clone();
            async move {
                let conns = Conns::new();
                let args = ConnsSupArgs {
                    name,
                    conns: conns.clone(),
                };
                let (r, _) = ConnsSup::spawn_linked(None, ConnsSup, args, sup).await?;
                *lock(&slot.acceptor) = Some(Arc::new(Starter { conns, protocol }));
                Ok(Started::Child(r.get_cell()))
            }
        })
        .kind(ChildKind::Supervisor)
        .shutdown(Shutdown::Infinity);
        let listener_args = shared.clone();
        let listener = ChildSpec::new("listener", move |sup| {
            let args = listener_args.clone();
            async move {
                let (r, _) = ListenerActor::spawn_linked(None, ListenerActor, args, sup).await?;
                Ok(Started::Child(r.get_cell()))
            }
        })
        .shutdown(Shutdown::Timeout(
            self.drain_timeout + Duration::from_secs(5),
        ));
        let sup_name = format!("listener_sup:{}", self.name);
        let spec = ChildSpec::supervisor(
            sup_name.clone(),
            SupervisorSpec::new(sup_name)
                .flags(
                    SupervisorFlags::new(Strategy::RestForOne)
                        .intensity(10, Duration::from_secs(10)),
                )
                .child(acceptor)
                .child(listener),
        );
        (spec, ListenerHandle::new(shared))
    }
}

impl<P> std::fmt::Debug for ListenerSpec<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSpec")
            .field("name", &self.name)
            .field("bind", &self.bind)
            .field("transport", &self.transport.name())
            .field("backlog", &self.backlog)
            .field("max_connections", &self.max_connections)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}
