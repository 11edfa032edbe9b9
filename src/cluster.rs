//! The chat across nodes: a replicated log on NATS JetStream, membership,
//! failover, catch-up and Berkeley clock synchronisation.
//!
//! ```text
//! cluster_sup      rest_for_one, only with [cluster] enabled
//! ├── nats           the connection to the NATS cluster
//! ├── log_consumer   applies the replicated chat log in order, then fans out
//! ├── membership     registration + heartbeats in a JetStream KV bucket
//! └── clock_sync     Berkeley rounds, run by the primary
//! ```
//!
//! The engine is NATS JetStream: Raft-replicated streams and KV buckets.
//! The client is async-nats 0.33 without its default `server_2_10` feature:
//! the version that speaks to Debian's nats-server 2.9 (later clients fail
//! to create KV buckets against 2.9).
//!
//! Membership, clock synchronisation and the `servers` services are pieces
//! that take an `async_nats::Client` (it reconnects by itself), the
//! settings and this node's [`NodeFacts`], sharing one [`Members`] view
//! and the chat's [`WallClock`](crate::clock::WallClock):
//!
//! ```text
//! let members = Members::new(&facts.name).with_metrics(metrics.clone());
//! let wall = chat.wall_clock().clone();
//! cluster_sup
//!     .child(membership_spec(client.clone(), &settings, facts, wall.clone(), members.clone()))
//!     .child(clock_sync_spec(client, &settings, wall, members.clone(), metrics));
//! register_servers(&mut registry, &members, &settings);
//! ```
//!
//! Single-node mode (the default) keeps the embedded store as the log and
//! needs no NATS; cluster mode is the `[cluster]` block (see
//! [`ClusterSettings`]).

mod berkeley;
mod clock_sync;
mod error;
mod facts;
mod members;
mod membership;
mod registration;
mod servers;
mod settings;
mod subjects;

pub use clock_sync::{clock_sync_spec, MAX_RTT_MS};
pub use error::ClusterError;
pub use facts::NodeFacts;
pub use members::{Member, Members, Role};
pub use membership::membership_spec;
pub use servers::register_servers;
pub use settings::ClusterSettings;
