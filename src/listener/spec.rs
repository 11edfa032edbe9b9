//! Building a listener subtree (Ranch's design): `listener_sup:<name>`, a
//! rest_for_one supervisor whose first child is `acceptor_sup` (a dynamic
//! supervisor of temporary connection actors) and whose second is the
//! `listener`. acceptor_sup starts first; if it dies the listener is restarted
//! after it (it must never hand sockets to a dead supervisor); if the listener
//! dies, live connections are left alone.

use super::accept::{ListenerActor, ListenerMsg};
use super::connection::{ConnArgs, ConnectionActor};
use super::protocol::Protocol;
use crate::metrics::Metrics;
use crate::supervisor::{
    ChildKind, ChildSpec, ChildTemplate, DynamicSpec, DynamicSupervisor, Restart, Shutdown,
    Started, Strategy, SupervisorFlags, SupervisorSpec,
};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The transport a listener binds.
pub(crate) enum ListenTransport {
    Tcp,
    Sctp(crate::transport::SctpOptions),
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
    pub(crate) inbox_capacity: usize,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Connections handed to a connection actor and not yet closed.
    open: AtomicUsize,
    drain: Mutex<CancellationToken>,
    local_addr: Mutex<Option<SocketAddr>>,
    acceptor: Mutex<Option<DynamicSupervisor<()>>>,
    listener: Mutex<Option<ActorRef<ListenerMsg>>>,
    suspended: Mutex<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
        }
    }

    pub(crate) fn lock_local_addr(&self) -> MutexGuard<'_, Option<SocketAddr>> {
        lock(&self.local_addr)
    }

    pub(crate) fn acceptor(&self) -> Option<DynamicSupervisor<()>> {
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

    pub(crate) fn connection_opened(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The settings of one listener and the protocol it serves.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use corral::listener::{Connection, ListenerSpec, Protocol, ServeFuture};
/// use corral::supervisor::{Supervisor, SupervisorSpec};
///
/// struct Hangup;
/// impl Protocol for Hangup {
///     type Msg = ();
///     fn serve(&self, _conn: Connection<()>) -> ServeFuture {
///         Box::pin(async { Ok(()) }) // closes at once
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
    inbox_capacity: usize,
    metrics: Option<Arc<Metrics>>,
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
            inbox_capacity: 1024,
            metrics: None,
            protocol,
        }
    }

    /// An SCTP listener; see [`ListenerSpec::sctp_shared`].
    pub fn sctp(
        name: impl Into<String>,
        bind: impl Into<String>,
        protocol: P,
        opts: crate::transport::SctpOptions,
    ) -> Self {
        Self::sctp_shared(name, bind, Arc::new(protocol), opts)
    }

    /// An SCTP listener (kernel SCTP, one-to-one style: one connection actor
    /// per association) named `name` on `bind` serving `protocol`, its
    /// sockets set up with `opts`. The protocol gets [`Socket::Sctp`]
    /// sockets. Defaults as for [`ListenerSpec::tcp`].
    ///
    /// [`Socket::Sctp`]: super::Socket::Sctp
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

    /// Counts connections in these metrics.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
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
            inbox_capacity: self.inbox_capacity,
            permits: Arc::new(Semaphore::new(self.max_connections)),
            metrics: self.metrics,
            open: AtomicUsize::new(0),
            drain: Mutex::new(CancellationToken::new()),
            local_addr: Mutex::new(None),
            acceptor: Mutex::new(None),
            listener: Mutex::new(None),
            suspended: Mutex::new(false),
        });
        let conn_args = ConnArgs {
            protocol: self.protocol,
            shared: shared.clone(),
        };
        let template = ChildTemplate::new("connection", move |sup, ()| {
            let args = conn_args.clone();
            async move {
                let (r, _) =
                    ConnectionActor::<P>::spawn_linked(None, ConnectionActor::new(), args, sup)
                        .await?;
                Ok(Started::Child(r.get_cell()))
            }
        })
        .restart(Restart::Temporary)
        // Connections have had the drain timeout to finish when this applies.
        .shutdown(Shutdown::BrutalKill);
        let acceptor_name = format!("acceptor_sup:{}", self.name);
        let slot = shared.clone();
        let acceptor = ChildSpec::new("acceptor_sup", move |sup| {
            let spec = DynamicSpec::new(acceptor_name.clone(), template.clone());
            let slot = slot.clone();
            async move {
                let acceptor = DynamicSupervisor::start_linked(spec, sup).await?;
                let cell = acceptor.cell();
                *lock(&slot.acceptor) = Some(acceptor);
                Ok(Started::Child(cell))
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
        (spec, ListenerHandle { shared })
    }
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

/// An error from suspending or resuming a listener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerError {
    /// The listener is not running (restarting, or stopped).
    #[error("listener {0} is not running")]
    NotRunning(String),
    /// The listening socket could not be bound again.
    #[error("listener {name}: {message}")]
    Bind {
        /// The listener.
        name: String,
        /// Why.
        message: String,
    },
}

impl ListenerHandle {
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
            Ok(CallResult::Success(Err(message))) => Err(ListenerError::Bind {
                name: self.shared.name.to_string(),
                message,
            }),
            _ => Err(ListenerError::NotRunning(self.shared.name.to_string())),
        }
    }

    /// Asks every open connection to finish and close (they see
    /// [`Connection::draining`](super::Connection::draining) cancelled); the
    /// listener keeps accepting new ones.
    pub fn drain_connections(&self) {
        let old = std::mem::replace(&mut *lock(&self.shared.drain), CancellationToken::new());
        old.cancel();
    }
}
