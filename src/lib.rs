//! corral: Erlang/OTP-style supervision trees on ractor and tokio, and a
//! server built on them.
//!
//! - [`supervisor`]: OTP's supervisors (strategies, restart types, intensity,
//!   ordered start and stop, dynamic children, administration calls);
//! - [`listener`]: Ranch's listener subtree (one supervised actor per
//!   connection, back-pressure by `max_connections`, suspend / resume,
//!   draining) and the [`listener::Protocol`] plug-in point;
//! - [`rpc`]: the RPC protocol (length-prefixed JSON / MessagePack frames,
//!   pipelining, a service registry);
//! - [`http`]: the web service on hyper: static files from a cache,
//!   `/metrics`, `/health`, routes of your own, TLS;
//! - [`chat`]: the chat services (login, channels, publish, private
//!   messages, history), the pub/sub hub, the Lamport clock and the durable
//!   redb store with group commit;
//! - [`node`]: a whole node built from a [`config::Config`];
//! - [`observer`]: the node's live view in the browser (`/observer/`) and
//!   its JSON API;
//! - [`client`]: the async RPC client used by the CLI, the bench and tests;
//! - [`metrics`]: every metric the node exports.
//!
//! A supervisor restarting a crashed worker:
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use corral::supervisor::{ChildSpec, Supervisor, SupervisorSpec};
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//!
//! #[derive(Clone)]
//! struct Worker;
//! impl Actor for Worker {
//!     type Msg = ();
//!     type State = ();
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
//!         Ok(())
//!     }
//!     async fn handle(&self, _: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
//!         Err("crash".into()) // any message makes it fail
//!     }
//! }
//!
//! let sup = Supervisor::start(SupervisorSpec::new("app").child(ChildSpec::worker("w", Worker, ()))).await?;
//! let children = sup.which_children().await?;
//! let corral::supervisor::ChildState::Running(first) = &children[0].state else { unreachable!() };
//! ActorRef::<()>::from(first.clone()).cast(())?;
//! first.wait(None).await?;
//! // The supervisor has restarted it: a new actor runs under the same id.
//! let children = sup.which_children().await?;
//! let corral::supervisor::ChildState::Running(second) = &children[0].state else { unreachable!() };
//! assert_ne!(first.get_id(), second.get_id());
//! sup.stop().await;
//! # Ok(()) }
//! ```
//!
//! A node serving RPC on a free port, called with the client:
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use corral::config::{Config, ListenerConfig, ProtocolKind};
//! use corral::transport::Transport;
//! use corral::client::{Client, Codec};
//!
//! let mut config = Config::embedded_default();
//! config.listeners = vec![ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0)];
//! let node = corral::node::Node::start(config).await?;
//! let client = Client::connect(node.local_addr("rpc").expect("bound"), Codec::Json).await?;
//! let reply = client.call("echo", serde_json::json!({"payload": "hi"})).await?;
//! assert_eq!(reply["payload"], "hi");
//! node.shutdown().await;
//! # Ok(()) }
//! ```

/// The attribute that implements corral's extension points (a listener's
/// [`Protocol`](listener::Protocol), an RPC `Service`, an HTTP `Handler`)
/// with `async fn`.
pub use async_trait::async_trait;

#[cfg(feature = "chat")]
pub mod chat;
#[cfg(feature = "rpc")]
pub mod client;
pub mod clock;
#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(feature = "rpc")]
pub mod config;
#[cfg(feature = "http")]
pub mod http;
pub mod listener;
#[cfg(feature = "rpc")]
pub mod metrics;
#[cfg(feature = "rpc")]
pub mod node;
#[cfg(feature = "http")]
pub mod observer;
#[cfg(feature = "rpc")]
pub mod rpc;
pub mod supervisor;
pub mod transport;
pub(crate) mod util;
#[cfg(feature = "zmq")]
pub mod zmq;
