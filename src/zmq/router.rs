//! The request endpoint (the seeds' broker port, a ROUTER socket): REQ and
//! DEALER peers send requests, each answered with the envelope it came
//! with.
//!
//! A message's last part is the request body (a JSON object or a
//! MessagePack map, as on every other transport); the parts before it are
//! its envelope (a REQ peer's empty delimiter, a DEALER's routing frames),
//! sent back unchanged in front of the reply. Requests run through the same
//! dispatcher as RPC's, with its limits (`[rpc] max_in_flight`,
//! `idle_timeout_ms`, `write_stall_timeout_ms`, `max_frame_bytes` for a
//! whole message). A REQ peer sends one request at a time, so its replies
//! come in order; a DEALER peer may pipeline and then matches replies by
//! `id`, as on TCP. Pushes have no place on a request socket (a REQ peer
//! would take one for its reply): chat publications go out on the
//! publication endpoint ([`ZmqXpub`](super::ZmqXpub)) only.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};

use super::codec::{Incoming, Outgoing, ZmtpError};
use super::handshake;
use super::ZmqSettings;
use crate::listener::{Connection, Protocol, ProtocolError};
use crate::rpc::{self, ConnCtx, Frame, FrameError, Pushes, RpcProtocol};

/// The envelope of a request: the parts before its body.
#[derive(Debug, Clone, Default)]
struct Envelope(Option<Arc<[Bytes]>>);

/// The ZeroMQ request endpoint, serving the RPC and chat services of an
/// [`RpcProtocol`] to REQ and DEALER peers. Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use corral::listener::ListenerSpec;
/// use corral::metrics::Metrics;
/// use corral::rpc::{Registry, RpcProtocol, RpcSettings};
/// use corral::zmq::{ZmqRouter, ZmqSettings};
///
/// let metrics = Metrics::new();
/// let rpc = Arc::new(RpcProtocol::new(RpcSettings::default(), metrics, Registry::new()));
/// let router = ZmqRouter::new(rpc, ZmqSettings::default());
/// let (spec, handle) = ListenerSpec::tcp("zmq", "127.0.0.1:5555", router).build();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ZmqRouter {
    rpc: Arc<RpcProtocol>,
    settings: ZmqSettings,
}

impl ZmqRouter {
    /// The endpoint serving `rpc`'s services.
    pub fn new(rpc: Arc<RpcProtocol>, settings: ZmqSettings) -> Self {
        ZmqRouter { rpc, settings }
    }
}

/// A ZMTP error as the RPC loop's error: a peer gone stays a peer gone
/// (and a stalled write stays one), anything else is invalid data.
pub(super) fn frame_error(e: ZmtpError) -> FrameError {
    match e {
        ZmtpError::Io(io) => FrameError::Io(io),
        ZmtpError::Truncated => FrameError::Truncated(0),
        other => FrameError::Io(io::Error::new(io::ErrorKind::InvalidData, other)),
    }
}

impl ZmqRouter {
    /// Serves one connection given as a byte stream (the accepted TCP
    /// connection, or any `AsyncRead + AsyncWrite`): the ZMTP handshake
    /// (within `[zmq] handshake_timeout_ms`), then requests until the peer
    /// closes, the connection idles out, or `ctx`'s token drains it.
    /// Hostile input ends it with an error (logged at info level).
    pub async fn serve_connection<IO>(&self, io: IO, ctx: ConnCtx) -> Result<(), ZmqConnError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        let how = handshake::Accept {
            role: handshake::ROUTER,
            max_message: self.rpc.settings().max_frame_bytes,
            stall: self.rpc.settings().write_stall_timeout(),
            timeout: self.settings.handshake_timeout(),
        };
        let peer = ctx.peer();
        let cancel = ctx.cancel_token().clone();
        let Some((read, write)) = handshake::accept(io, how, &cancel, peer).await? else {
            return Ok(());
        };
        let reader = read.filter_map(move |item| {
            futures::future::ready(match item {
                Ok(Incoming::Message(mut parts)) => parts.pop().map(|body| {
                    let env = Envelope((!parts.is_empty()).then(|| parts.into()));
                    Ok((Frame::Body(body), env))
                }),
                Ok(Incoming::Command(c)) if &c.name[..] == b"ERROR" => Some(Err(FrameError::Io(
                    io::Error::new(io::ErrorKind::ConnectionAborted, "the peer sent ERROR"),
                ))),
                // PING (heartbeats) and the like: nothing to answer here.
                Ok(_) => None,
                Err(e) => {
                    tracing::info!(?peer, error = %e, "ZeroMQ request endpoint: bad input; closing");
                    Some(Err(frame_error(e)))
                }
            })
        });
        let writer = write.sink_map_err(frame_error).with_flat_map(
            |(out, env): (rpc::Outgoing, Envelope)| {
                let message = match out {
                    rpc::Outgoing::Body(body) => {
                        let mut parts = env.0.map(|e| e.to_vec()).unwrap_or_default();
                        parts.push(body);
                        Some(Ok(Outgoing::Message(parts)))
                    }
                    rpc::Outgoing::Pushes(..) => None,
                };
                futures::stream::iter(message)
            },
        );
        self.rpc
            .serve_tagged(Box::pin(reader), Box::pin(writer), ctx, Envelope::default())
            .await?;
        Ok(())
    }
}

/// Why serving a ZeroMQ connection ended early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZmqConnError {
    /// The handshake failed, or the peer sent what ZMTP does not allow.
    #[error(transparent)]
    Zmtp(#[from] ZmtpError),
    /// The request loop failed (a transport error, a peer that reads
    /// nothing).
    #[error(transparent)]
    Rpc(#[from] rpc::RpcConnError),
}

#[async_trait::async_trait]
impl Protocol for ZmqRouter {
    type Msg = Pushes;

    async fn serve(&self, conn: Connection<Pushes>) -> Result<(), ProtocolError> {
        let (socket, ctx) = ConnCtx::from_connection(conn, self.rpc.settings().push_queue);
        let Some(socket) = socket else {
            return Ok(());
        };
        let stream = socket
            .into_byte_stream()
            .map_err(|s| format!("ZeroMQ cannot be served over {}", s.transport()))?;
        Ok(self.serve_connection(stream, ctx).await?)
    }
}
