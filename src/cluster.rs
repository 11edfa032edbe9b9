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
//!
//! # The replicated chat log
//!
//! The chat log is a JetStream stream (`[cluster] stream`, one subject
//! `[cluster] subject`, file storage, `replicas` copies, a 2-minute
//! duplicate window), created when missing. Every chat write (login,
//! channel, publish, message: a [`Write`](crate::chat::Write)) is
//! published there with `Nats-Msg-Id` = its idempotency key (sender and
//! client id, or a key the node makes), and answered only once JetStream
//! acknowledged it (a quorum has it) and this node applied it at its
//! stream sequence: the answer is what the log's order decided, the same
//! on every node (two nodes creating one channel at once: one OK, one
//! CONFLICT). An event's `seq` is its stream sequence. Each node's
//! `log_consumer` reads the stream in order from its applied sequence + 1
//! (recorded in its store in the same transaction as the entries), so a
//! restarted node resumes and an empty data_dir rebuilds from the stream;
//! it then pushes to its own subscribers (details in the files `log.rs`
//! and `consumer.rs` of this module).
//!
//! The node builds a [`Cluster`] when `[cluster] enabled`: it installs the
//! log on the chat, registers the `servers` services
//! ([`Cluster::register_into`]), adds [`Cluster::supervisor_spec`] to the
//! root after `chat_sup` (membership and clock sync after `log_consumer`,
//! taking the `nats` actor's client at each start), the cluster's part of
//! `/health`, and, once the listeners are bound, their addresses
//! ([`Cluster::set_addresses`]).
//!
//! NATS unreachable: writes answer UNAVAILABLE within `publish_timeout_ms`;
//! reads and history are served from local state; `/health` says
//! `"status": "degraded"` and why; all recovers by itself when NATS is
//! back. The stream lacking entries a node needs (retention): the node
//! says so (log, `/health`, UNAVAILABLE on chat reads and writes) rather
//! than serve a partial state as whole. A write answered UNAVAILABLE was
//! not decided: it may still reach the log (it was sent, its
//! acknowledgement was lost) and is then applied whole on every node; a
//! retry with the same client id is stored once either way.
//!
//! Metrics: `corral_cluster_nats_connected`,
//! `corral_cluster_log_applied_sequence`, `corral_cluster_log_lag_entries`,
//! `corral_cluster_publish_duration_seconds`,
//! `corral_cluster_replication_errors_total{kind}`.

mod berkeley;
mod clock_sync;
mod connection;
mod consumer;
mod error;
mod facts;
mod handle;
mod log;
mod members;
mod membership;
mod registration;
mod servers;
mod settings;
mod spec;
mod status;
mod stream;
mod subjects;
mod waiters;

pub use clock_sync::clock_sync_spec;
pub use error::ClusterError;
pub use facts::NodeFacts;
pub use handle::Cluster;
pub use members::{Member, Members, Role};
pub use membership::membership_spec;
pub use servers::register_servers;
pub use settings::ClusterSettings;
