//! The RPC protocol, independent of the transport.
//!
//! # Wire protocol
//!
//! On a byte stream a frame is a 4-byte big-endian length N, then N bytes of
//! body (N ≤ `max_frame_bytes`); a message transport sends one body per
//! message. A body is one JSON object or one MessagePack map, told apart by
//! the first byte, and answered in the same encoding:
//!
//! ```text
//! request  {"id": <string|int, optional>, "service": <name>, "data": {…}}
//! reply    {"id": <same>, "service": <name>, "data": {…}}
//! error    {"id": <same>, "service": <name>, "error": {"code": "BAD_REQUEST", "message": "…"}}
//! push     {"topic": <channel or user>, "data": {…}}
//! ```
//!
//! An error reply to a body that could not be read has `"id": null` and no
//! `service`; it is JSON unless the body was recognisably MessagePack.
//! ThreadCenter requests (`{"id": …, "cmd": "compute", "n": 500000}`) are
//! answered `{"id": …, "result": …}` or `{"id": …, "error": {…}}`.
//! Error codes are the [`ErrorCode`]s. A bad request never closes the
//! connection; a frame over the limit is answered FRAME_TOO_LARGE (in the
//! connection's last encoding) and then the connection closes.
//!
//! Requests are pipelined: up to `max_in_flight` run at once per connection
//! (then the server stops reading the connection until one completes) and
//! replies go out as they complete, matched by `id`. A peer that reads
//! nothing it is sent for `write_stall_timeout_ms` is cut. Pushes are JSON
//! unless the connection's last request was MessagePack.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo(stream: tokio::net::TcpStream, peer: std::net::SocketAddr) {
//! use corral::rpc::{ConnCtx, Registry, RpcProtocol, RpcSettings};
//! use tokio_util::sync::CancellationToken;
//!
//! let protocol = RpcProtocol::new(
//!     RpcSettings::default(),
//!     corral::metrics::Metrics::new(),
//!     Registry::new(), // extra services, see `Service`
//! );
//! let drain = CancellationToken::new();
//! let ctx = ConnCtx::new(Some(peer), drain.child_token());
//! let _ = protocol.serve_connection(stream, ctx).await;
//! # }
//! ```
//!
//! Modules: `codec` (framing), `envelope` (encodings and shapes), `push`
//! (pushes and their queue), `registry`
//! (the [`Service`] plug-in point), `services` (built-ins), `dispatch` (body
//! in, reply out), `server` (one connection), `writer` (frames out, vectored),
//! `stall` (the write-stall timeout), `settings`.

mod codec;
mod dispatch;
mod envelope;
pub(crate) mod push;
mod registry;
mod server;
mod services;
mod settings;
mod stall;
mod stats;
mod writer;

#[cfg(feature = "zmq")]
pub(crate) use codec::Frame;
pub use codec::FrameError;
pub use envelope::{Encoding, ErrorCode, RequestId, Shape};
pub use push::{channel as push_channel, Push, PushError, PushReceiver, PushSender, Pushes};
pub use registry::{CallContext, Registry, Request, Service, ServiceError};
pub use server::{ConnCtx, MessageConnection, RpcConnError, RpcProtocol, PUSH_STREAM};
pub use settings::RpcSettings;
#[cfg(feature = "zmq")]
pub(crate) use stall::StallGuard;
#[cfg(feature = "zmq")]
pub(crate) use writer::Outgoing;
