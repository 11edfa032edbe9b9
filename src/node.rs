//! A running node: the root supervision tree built from a [`Config`], its
//! start, and its graceful shutdown.
//!
//! ```text
//! corral                      root, one_for_one (named after [node] name)
//! ├── metrics_sup             one_for_one
//! │   └── metrics             owns the registry's run-time registrations
//! │                           (the process collector)
//! ├── cache_sup               one_for_one (when static files are served:
//! │   │                       with an HTTP listener)
//! │   └── file_cache          owns the static file cache
//! ├── chat_sup                rest_for_one (when `[chat] enabled`)
//! │   ├── chat_store          owns the chat store (<data_dir>/chat.redb)
//! │   └── chat_hub            owns the pub/sub hub
//! ├── cluster_sup             rest_for_one (when `[cluster] enabled`)
//! │   ├── nats                the connection to NATS
//! │   ├── log_consumer        applies the replicated chat log
//! │   ├── membership          registration + heartbeats, ranks, primary
//! │   └── clock_sync          Berkeley rounds, run by the primary
//! └── listener_sup:<name>     rest_for_one, one per configured listener
//!     ├── acceptor_sup        simple_one_for_one; one temporary task per connection
//!     │   └── connection
//!     └── listener            owns the socket, accepts, hands sockets over
//! ```
//!
//! Subtrees of your own are added with [`NodeBuilder::child`]: after
//! chat_sup, before the listeners. At start-up the node logs the running
//! tree (`supervision tree`, level info) as [`Node::tree`] draws it.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), corral::node::NodeError> {
//! use corral::config::Config;
//! use corral::node::Node;
//!
//! let node = Node::start(Config::embedded_default()).await?;
//! println!("RPC on {:?}", node.local_addr("rpc"));
//! node.shutdown().await;
//! # Ok(()) }
//! ```

use crate::config::{Config, ProtocolKind};
#[cfg(feature = "http")]
use crate::http::{FileCache, HttpProtocol, Routes};
use crate::listener::{ListenerHandle, ListenerSpec};
use crate::metrics::Metrics;
use crate::rpc::{Registry, RpcProtocol};
use crate::supervisor::{
    ChildSpec, Strategy, SupervisionTree, Supervisor, SupervisorError, SupervisorFlags,
    SupervisorSpec,
};
use crate::transport::Transport;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Why a node could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A part of the tree failed to start (a listener that cannot bind, ...).
    #[error("the node failed to start: {0}")]
    Start(#[source] SupervisorError),
    /// A listener is configured with a transport this build cannot serve.
    #[error("listener {listener}: {message}")]
    Transport {
        /// The listener's name.
        listener: String,
        /// Why, and what to do.
        message: String,
    },
    /// A TLS listener's certificate or key is unusable (the error names
    /// the file).
    #[cfg(feature = "tls")]
    #[error("listener {listener}: {source}")]
    Tls {
        /// The listener's name.
        listener: String,
        /// Why (boxed: it is large, and start-up errors are rare).
        #[source]
        source: Box<crate::transport::tls::TlsError>,
    },
    /// The chat could not start (its store cannot be opened, ...).
    #[cfg(feature = "chat")]
    #[error(transparent)]
    Chat(#[from] crate::chat::ChatError),
    /// Waiting for a shutdown signal failed.
    #[error("cannot wait for signals: {0}")]
    Signal(#[source] std::io::Error),
}

/// Builds a node: its configuration, extra RPC services, extra subtrees.
pub struct NodeBuilder {
    config: Config,
    services: Registry,
    children: Vec<ChildSpec>,
    metrics: Option<Arc<Metrics>>,
    #[cfg(feature = "http")]
    routes: Routes,
}

impl NodeBuilder {
    /// Adds HTTP routes, served after `/metrics` and `/health` and before
    /// the static files, on every HTTP listener. The node adds `/ws` (the
    /// RPC service over WebSocket), `/chat` (the web chat page) and
    /// `/observer` (the [observer](crate::observer), when `[observer]
    /// enabled`) after these, so a route of the same prefix added here wins.
    #[cfg(feature = "http")]
    pub fn routes(mut self, routes: Routes) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Adds one HTTP route (see [`NodeBuilder::routes`]).
    #[cfg(feature = "http")]
    pub fn route(mut self, prefix: &str, handler: impl crate::http::Handler) -> Self {
        self.routes = self.routes.route(prefix, handler);
        self
    }

    /// Adds an RPC service (it overrides a built-in of the same name).
    pub fn service(mut self, name: &str, service: Arc<dyn crate::rpc::Service>) -> Self {
        self.services.register(name, service);
        self
    }

    /// Adds a subtree under the root, started after the node's own
    /// (metrics_sup, cache_sup, chat_sup) and before the listeners, in the
    /// order added, and stopped after the listeners.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Uses these metrics instead of a fresh set.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Starts the tree: metrics_sup, cache_sup (with an HTTP listener),
    /// chat_sup (with the chat), the extra subtrees, then one listener
    /// subtree per configured listener, in order.
    pub async fn start(self) -> Result<Node, NodeError> {
        let config = self.config;
        config.validate()?;
        let metrics = self.metrics.unwrap_or_else(Metrics::new);
        let sctp_opts = config.sctp.clone();
        #[cfg(feature = "sctp")]
        if let Some(l) = config
            .listeners
            .iter()
            .find(|l| l.transport == Transport::Sctp)
        {
            // Refuse to start rather than quietly skip the listener.
            crate::transport::sctp::probe().map_err(|e| NodeError::Transport {
                listener: l.name.clone(),
                message: e.to_string(),
            })?;
        }
        #[cfg_attr(not(feature = "chat"), allow(unused_mut))]
        let mut services = self.services;
        #[cfg(feature = "chat")]
        let chat = if config.chat.enabled {
            let chat = crate::chat::Chat::open(
                &config.chat,
                &config.node.data_dir,
                Some(metrics.clone()),
            )?;
            chat.set_reply_limit(
                config
                    .rpc
                    .max_frame_bytes
                    .min(config.sctp.max_message_bytes),
            );
            chat.register_into(&mut services);
            Some(chat)
        } else {
            None
        };
        // The cluster: from here on the chat's writes go through the
        // replicated log.
        #[cfg(feature = "cluster")]
        let cluster = match &chat {
            Some(chat) if config.cluster.enabled => Some(crate::cluster::Cluster::new(
                &config.cluster,
                &config.node.name,
                chat,
                metrics.clone(),
            )),
            _ => None,
        };
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &cluster {
            // servers, list, rank, heartbeat.
            cluster.register_into(&mut services);
        }
        let rpc = RpcProtocol::new(config.rpc.clone(), metrics.clone(), services)
            .sctp_max_message_bytes(sctp_opts.max_message_bytes);
        let rpc = Arc::new(rpc);
        let all_listeners: Arc<OnceLock<Vec<ListenerHandle>>> = Arc::new(OnceLock::new());
        // Closes the WebSockets at shutdown: once upgraded they have left
        // the HTTP connection that the listener drains.
        let websockets = tokio_util::sync::CancellationToken::new();
        // The observer reads the tree, listeners, chat and cluster; its
        // live streams end with the WebSockets at shutdown.
        #[cfg(feature = "http")]
        let observer = config.observer.enabled.then(|| {
            crate::observer::Observer::new(
                config.observer.clone(),
                crate::observer::Sources {
                    root: OnceLock::new(),
                    listeners: all_listeners.clone(),
                    metrics: metrics.clone(),
                    #[cfg(feature = "chat")]
                    chat: chat.clone(),
                    #[cfg(feature = "cluster")]
                    cluster: cluster.clone(),
                },
                websockets.clone(),
            )
        });
        #[cfg(feature = "http")]
        let (files, http) = {
            let serves_http = config
                .listeners
                .iter()
                .any(|l| l.protocol == ProtocolKind::Http);
            let files = serves_http.then(|| {
                FileCache::new(
                    config.http.docroot.clone(),
                    &config.cache,
                    Some(metrics.clone()),
                )
            });
            let mut http = HttpProtocol::builder(metrics.clone(), &config.http)
                .metrics_enabled(config.metrics.enabled)
                .listeners(all_listeners.clone())
                .routes(self.routes)
                // The chat's web face: the WebSocket RPC endpoint and the page.
                .routes(
                    Routes::new()
                        .route(
                            "/ws",
                            crate::http::websocket_handler(rpc.clone(), websockets.clone()),
                        )
                        .route("/chat", crate::http::chat_page_handler()),
                );
            if let Some(observer) = &observer {
                http = http.routes(Routes::new().route("/observer", observer.handler()));
            }
            if let Some(files) = &files {
                http = http.files(files.clone());
            }
            #[cfg(feature = "cluster")]
            if let Some(cluster) = &cluster {
                http = http.health_check(cluster.health_check());
            }
            (files, http.build())
        };
        #[cfg_attr(not(feature = "http"), allow(unused_mut))]
        let mut restart_hook = metrics.restart_hook();
        #[cfg(feature = "http")]
        if let Some(observer) = &observer {
            restart_hook = restart_hook.then(observer.restart_hook());
        }
        let mut root = SupervisorSpec::new(config.node.name.clone())
            .flags(SupervisorFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(10)))
            .on_restart(restart_hook)
            .child(metrics.supervisor_spec());
        #[cfg(feature = "http")]
        if let Some(files) = &files {
            root = root.child(files.supervisor_spec());
        }
        #[cfg(feature = "chat")]
        if let Some(chat) = &chat {
            root = root.child(chat.supervisor_spec());
        }
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &cluster {
            root = root.child(cluster.supervisor_spec(Vec::new()));
        }
        for child in self.children {
            root = root.child(child);
        }
        let push_queue = rpc.settings().push_queue;
        let mut handles = Vec::new();
        #[cfg(feature = "http")]
        if config.http.tls_cert.is_some() {
            tracing::warn!(
                "[http] tls_cert and tls_key are deprecated: give each HTTP listener \
                 transport = \"tls\" and its own tls_cert and tls_key"
            );
        }
        for l in &config.served_listeners() {
            let bind = l.bind_address();
            let unavailable = |message: &str| NodeError::Transport {
                listener: l.name.clone(),
                message: message.to_string(),
            };
            // A TLS listener's certificate and key are loaded now: a bad
            // file stops start-up, naming it. HTTP offers ALPN h2 and
            // http/1.1; RPC takes no part in ALPN.
            #[cfg(feature = "tls")]
            let tls = match (&l.tls_cert, &l.tls_key) {
                (Some(cert), Some(key)) if l.transport == Transport::Tls => {
                    let alpn = match l.protocol {
                        ProtocolKind::Http => crate::transport::tls::HTTP_ALPN,
                        _ => &[],
                    };
                    Some(
                        crate::transport::tls::server_config_with_alpn(cert, key, alpn).map_err(
                            |source| NodeError::Tls {
                                listener: l.name.clone(),
                                source: Box::new(source),
                            },
                        )?,
                    )
                }
                _ => None,
            };
            let (spec, handle) = match (l.protocol, l.transport) {
                #[cfg(feature = "sctp")]
                (ProtocolKind::Rpc, Transport::Sctp) => limits(
                    ListenerSpec::sctp_shared(l.name.clone(), bind, rpc.clone(), sctp_opts.clone())
                        .inbox_capacity(push_queue),
                    l,
                    &metrics,
                ),
                (ProtocolKind::Rpc, Transport::Tcp) => limits(
                    ListenerSpec::tcp_shared(l.name.clone(), bind, rpc.clone())
                        .inbox_capacity(push_queue),
                    l,
                    &metrics,
                ),
                #[cfg(feature = "tls")]
                (ProtocolKind::Rpc, Transport::Tls) => limits(
                    ListenerSpec::tls_shared(
                        l.name.clone(),
                        bind,
                        rpc.clone(),
                        tls.clone().ok_or_else(|| unavailable("no TLS certificate"))?,
                    )
                    .inbox_capacity(push_queue),
                    l,
                    &metrics,
                ),
                #[cfg(feature = "http")]
                (ProtocolKind::Http, Transport::Tcp) => limits(
                    ListenerSpec::tcp(l.name.clone(), bind, http.clone()),
                    l,
                    &metrics,
                ),
                #[cfg(all(feature = "http", feature = "tls"))]
                (ProtocolKind::Http, Transport::Tls) => limits(
                    ListenerSpec::tls(
                        l.name.clone(),
                        bind,
                        http.clone(),
                        tls.clone().ok_or_else(|| unavailable("no TLS certificate"))?,
                    ),
                    l,
                    &metrics,
                ),
                #[cfg(feature = "zmq")]
                (ProtocolKind::ZmqRouter, Transport::Tcp) => limits(
                    ListenerSpec::tcp(
                        l.name.clone(),
                        bind,
                        crate::zmq::ZmqRouter::new(rpc.clone(), config.zmq.clone()),
                    )
                    .inbox_capacity(push_queue),
                    l,
                    &metrics,
                ),
                #[cfg(feature = "zmq")]
                (ProtocolKind::ZmqXpub, Transport::Tcp) => {
                    let chat = chat
                        .as_ref()
                        .ok_or_else(|| unavailable("\"zmq_xpub\" needs the chat (chat.enabled)"))?;
                    limits(
                        ListenerSpec::tcp(
                            l.name.clone(),
                            bind,
                            crate::zmq::ZmqXpub::new(
                                rpc.clone(),
                                chat.hub().clone(),
                                config.zmq.clone(),
                            ),
                        )
                        .inbox_capacity(push_queue),
                        l,
                        &metrics,
                    )
                }
                (ProtocolKind::Http, Transport::Sctp) => {
                    return Err(unavailable("transport \"sctp\" serves protocol \"rpc\" only"))
                }
                #[allow(unreachable_patterns)]
                (protocol, transport) => {
                    return Err(unavailable(&format!(
                        "this build of corral cannot serve {protocol} over {transport} (cargo features)"
                    )))
                }
            };
            root = root.child(spec);
            handles.push(handle);
        }
        let _ = all_listeners.set(handles.clone());
        let root = Supervisor::start(root).await.map_err(NodeError::Start)?;
        #[cfg(feature = "http")]
        if let Some(observer) = &observer {
            observer.set_root(root.clone());
        }
        for h in &handles {
            tracing::info!(listener = h.name(), addr = ?h.local_addr(), "listener ready");
        }
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &cluster {
            // The registration carries the first RPC and HTTP listeners'
            // addresses (a port 0 is known only now).
            let addr_of = |protocol: ProtocolKind| {
                config
                    .served_listeners()
                    .iter()
                    .zip(&handles)
                    .find(|(l, _)| l.protocol == protocol)
                    .and_then(|(_, h)| h.local_addr())
                    .map(|a| a.to_string())
            };
            cluster.set_addresses(addr_of(ProtocolKind::Rpc), addr_of(ProtocolKind::Http));
        }
        match root.tree().await {
            Ok(tree) => tracing::info!("supervision tree\n{}", tree.to_string().trim_end()),
            Err(e) => tracing::warn!(error = %e, "cannot draw the supervision tree"),
        }
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        tracing::info!(node = %config.node.name, worker_threads = workers, "node started");
        Ok(Node {
            root,
            listeners: handles,
            metrics,
            shutdown_timeout: config.node.shutdown_timeout(),
            #[cfg(feature = "chat")]
            chat,
            #[cfg(feature = "cluster")]
            cluster,
            #[cfg(feature = "http")]
            observer,
            websockets,
        })
    }
}

/// A listener's limits from its config, and its subtree.
fn limits<P: crate::listener::Protocol>(
    spec: ListenerSpec<P>,
    l: &crate::config::ListenerConfig,
    metrics: &Arc<Metrics>,
) -> (ChildSpec, ListenerHandle) {
    spec.backlog(l.backlog)
        .max_connections(l.max_connections)
        .drain_timeout(l.drain_timeout())
        .tls_handshake_timeout(l.tls_handshake_timeout())
        .observer(metrics.listener_observer(&l.name))
        .build()
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    root: Supervisor,
    listeners: Vec<ListenerHandle>,
    metrics: Arc<Metrics>,
    shutdown_timeout: Duration,
    #[cfg(feature = "chat")]
    chat: Option<crate::chat::Chat>,
    #[cfg(feature = "cluster")]
    cluster: Option<crate::cluster::Cluster>,
    #[cfg(feature = "http")]
    observer: Option<crate::observer::Observer>,
    websockets: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder").finish_non_exhaustive()
    }
}

impl Node {
    /// A builder for a node with this configuration.
    pub fn builder(config: Config) -> NodeBuilder {
        NodeBuilder {
            config,
            services: Registry::new(),
            children: Vec::new(),
            metrics: None,
            #[cfg(feature = "http")]
            routes: Routes::new(),
        }
    }

    /// Starts a node with this configuration and the built-in services.
    pub async fn start(config: Config) -> Result<Node, NodeError> {
        Self::builder(config).start().await
    }

    /// The root supervisor.
    pub fn root(&self) -> &Supervisor {
        &self.root
    }

    /// A snapshot of the running supervision tree; its `Display` draws it
    /// (the drawing the node logs at start-up), one line per supervisor and
    /// child, each listener's connections counted on one line.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = corral::node::Node::start(corral::config::Config::embedded_default()).await?;
    /// print!("{}", node.tree().await?);
    /// // corral (one_for_one)
    /// // ├── metrics_sup (one_for_one)
    /// // │   └── metrics
    /// // ...
    /// node.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn tree(&self) -> Result<SupervisionTree, SupervisorError> {
        self.root.tree().await
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The chat, when enabled.
    #[cfg(feature = "chat")]
    pub fn chat(&self) -> Option<&crate::chat::Chat> {
        self.chat.as_ref()
    }

    /// The observer (`/observer/` on the HTTP listeners), when
    /// `[observer] enabled`.
    #[cfg(feature = "http")]
    pub fn observer(&self) -> Option<&crate::observer::Observer> {
        self.observer.as_ref()
    }

    /// A listener by name.
    pub fn listener(&self, name: &str) -> Option<&ListenerHandle> {
        self.listeners.iter().find(|l| l.name() == name)
    }

    /// The address a listener is bound to.
    pub fn local_addr(&self, listener: &str) -> Option<SocketAddr> {
        self.listener(listener).and_then(ListenerHandle::local_addr)
    }

    /// The node's cluster, when `[cluster] enabled`: its members, ranks
    /// and primary ([`Cluster::members`](crate::cluster::Cluster::members)).
    #[cfg(feature = "cluster")]
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.cluster.as_ref()
    }

    /// Shuts the node down gracefully, within its shutdown timeout: every
    /// listener stops accepting at once, then they all drain in parallel
    /// (each connection finishes what it has in hand, for at most the
    /// listener's drain timeout), then the tree stops in reverse start
    /// order, then the chat store is closed (cleanly: the next start needs
    /// no repair). What is still running near the end of the shutdown
    /// timeout is killed: a tenth of the timeout (at most a second) is kept
    /// for that and for closing the store.
    pub async fn shutdown(self) {
        let started = tokio::time::Instant::now();
        let deadline = started + self.shutdown_timeout;
        let reserve = (self.shutdown_timeout / 10).min(Duration::from_secs(1));
        let graceful = deadline - reserve;
        tracing::info!(
            timeout_ms = self.shutdown_timeout.as_millis() as u64,
            "shutting down"
        );
        self.websockets.cancel();
        let drains = futures::future::join_all(self.listeners.iter().map(ListenerHandle::drain));
        if tokio::time::timeout_at(graceful, drains).await.is_err() {
            tracing::warn!("shutdown: listeners still draining at the deadline");
        }
        let root = self.root.clone();
        if tokio::time::timeout_at(graceful, root.stop())
            .await
            .is_err()
        {
            tracing::warn!("shutdown timeout: killing the tree");
            self.root.cell().kill();
            if tokio::time::timeout_at(deadline, self.root.wait())
                .await
                .is_err()
            {
                tracing::error!("shutdown timeout: the tree did not exit after the kill");
            }
        }
        #[cfg(feature = "chat")]
        if let Some(chat) = &self.chat {
            match tokio::time::timeout_at(deadline, chat.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "closing the chat store failed"),
                Err(_) => tracing::warn!(
                    "shutdown timeout: the chat store was not closed (the next start repairs it)"
                ),
            }
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "node stopped"
        );
    }

    /// Waits until the root supervisor has exited (it gave up, or was stopped).
    pub async fn wait(&self) {
        self.root.wait().await
    }
}

/// Runs a node until SIGINT or SIGTERM, then shuts it down gracefully.
/// Returns an error if the node could not start, or if its root supervisor
/// gave up.
pub async fn run(config: Config) -> Result<(), NodeError> {
    // Listen for signals before anything is served, so that a signal that
    // arrives early still means a graceful shutdown.
    let signals = Signals::new()?;
    let node = Node::start(config).await?;
    tokio::select! {
        _ = signals.recv() => {
            node.shutdown().await;
            Ok(())
        }
        _ = node.wait() => Err(NodeError::Start(SupervisorError::ReachedMaxRestartIntensity(
            "root".into(),
        ))),
    }
}

/// SIGINT and SIGTERM, registered when created.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, NodeError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt()).map_err(NodeError::Signal)?,
                term: signal(SignalKind::terminate()).map_err(NodeError::Signal)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
