//! Listeners: Ranch's design in corral's tree.
//!
//! Each listener is a subtree, `listener_sup:<name>` (rest_for_one), holding
//! `acceptor_sup` (the supervisor of its connections, one temporary task
//! each, as Ranch's `ranch_conns_sup`) and the `listener` (owns the
//! listening socket, accepts, starts each socket's connection under
//! acceptor_sup).
//!
//! - `max_connections` is back-pressure: the listener takes a permit before
//!   each accept, so one connection more waits in the kernel backlog and is
//!   served as soon as another closes.
//! - Accept errors (EMFILE and the like) are logged, counted and retried
//!   after a short pause; they never crash the listener.
//! - A listener can be suspended (socket closed, connections kept) and
//!   resumed; at shutdown it stops accepting, lets connections finish for
//!   the drain timeout, then they are stopped.
//! - A [`Protocol`] serves each connection; the built-in RPC and HTTP
//!   protocols use nothing a protocol of yours could not. It gets a
//!   [`Socket`] of the listener's transport: TCP, SCTP, or TLS (the
//!   listener does the handshake, under a timeout, in the connection's own
//!   task); [`Socket::into_byte_stream`] serves TCP and TLS alike.

mod actor;
mod connection;
mod conns;
mod error;
mod handle;
mod inbox;
mod msg;
mod observer;
mod protocol;
mod shared;
mod spec;
mod stream;

pub use inbox::Inbox;
#[cfg(feature = "rpc")]
pub(crate) use inbox::{inbox, InboxSender};
pub use protocol::{Connection, ConnectionRef, Protocol, ProtocolError, SendError, Socket};

pub use error::ListenerError;
pub use handle::{ListenerHandle, ListenerStats};
pub use observer::ListenerObserver;
pub use spec::ListenerSpec;
pub use stream::ByteStream;
