//! The publication endpoint (the seeds' proxy port, an XPUB socket): SUB
//! peers subscribe by topic prefix and receive each chat publication and
//! private message as two frames, the topic (a channel's or a user's name)
//! then the event's MessagePack body, as the seeds' servers published them.
//!
//! Subscriptions are ZeroMQ's: a prefix of the topic (the empty one is
//! everything), counted, sent as messages (`0x01` + prefix to subscribe,
//! `0x00` + prefix to cancel) or as ZMTP 3.1's SUBSCRIBE / CANCEL commands.
//! The hub matches them ([`Hub::subscribe_prefix`]); a private message goes
//! to peers subscribed to its user's name when `[zmq] private_messages` is
//! on (the seeds' way: anyone who reaches the port can read them).
//!
//! Slow subscribers: as for RPC pushes, each connection has a bounded
//! queue (`[rpc] push_queue`); what does not fit is dropped for that peer
//! and counted (`corral_chat_pushes_dropped_total`), never slowing the
//! publisher or the other peers; a peer that reads nothing for
//! `[rpc] write_stall_timeout_ms` is cut.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::FramedWrite;

use super::codec::{encode_message, Command, Incoming, Outgoing, ZmtpCodec, ZmtpError};
use super::handshake;
use super::ZmqSettings;
use crate::chat::Hub;
use crate::listener::{Connection, Protocol, ProtocolError};
use crate::rpc::{ConnCtx, Pushes, RpcProtocol};

/// Batches of pushes taken from the queue at once.
const PUSH_BATCH: usize = 256;
/// Bytes of pushes encoded before they are written out.
const WRITE_CHUNK: usize = 64 * 1024;

/// The ZeroMQ publication endpoint, fed by the chat's hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ZmqXpub {
    rpc: Arc<RpcProtocol>,
    hub: Hub,
    settings: ZmqSettings,
}

impl ZmqXpub {
    /// The endpoint publishing what `hub` fans out; connections are
    /// numbered and counted by `rpc`, whose limits apply
    /// (`max_frame_bytes`, `push_queue`, `write_stall_timeout_ms`).
    pub fn new(rpc: Arc<RpcProtocol>, hub: Hub, settings: ZmqSettings) -> Self {
        ZmqXpub { rpc, hub, settings }
    }
}

/// Why a publication connection ended early.
#[derive(Debug, thiserror::Error)]
enum XpubError {
    #[error(transparent)]
    Zmtp(#[from] ZmtpError),
    #[error("more than {} distinct subscriptions", crate::chat::MAX_PREFIXES)]
    TooManySubscriptions,
}

#[async_trait::async_trait]
impl Protocol for ZmqXpub {
    type Msg = Pushes;

    async fn serve(&self, conn: Connection<Pushes>) -> Result<(), ProtocolError> {
        let settings = self.rpc.settings();
        let max = settings.max_frame_bytes;
        let (socket, ctx) = ConnCtx::from_connection(conn, settings.push_queue);
        let Some(socket) = socket else {
            return Ok(());
        };
        let stream = socket
            .into_byte_stream()
            .map_err(|s| format!("ZeroMQ cannot be served over {}", s.transport()))?;
        let (peer, cancel, pushes_tx, mut pushes_rx) = ctx.into_parts();
        let how = handshake::Accept {
            role: handshake::XPUB,
            max_message: max,
            stall: settings.write_stall_timeout(),
            timeout: self.settings.handshake_timeout(),
        };
        let Some((mut reader, mut writer)) = handshake::accept(stream, how, &cancel, peer).await?
        else {
            return Ok(());
        };
        let opened = self.rpc.open_message_connection(peer, pushes_tx);
        let cx = opened.context().clone();
        let conn_id = cx.conn_id();
        let private = self.settings.private_messages;
        let mut batches = Vec::with_capacity(PUSH_BATCH);
        let outcome: Result<(), XpubError> = async {
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Ok(()),
                    item = reader.next() => match item {
                        None => return Ok(()),
                        Some(Err(ZmtpError::Io(e))) if peer_gone(&e) => return Ok(()),
                        Some(Err(ZmtpError::Truncated)) => return Ok(()),
                        Some(Err(e)) => return Err(e.into()),
                        Some(Ok(Incoming::Message(parts))) => {
                            // A subscription message has one part; anything
                            // else (an XSUB peer's data) is ignored.
                            if let [one] = &parts[..] {
                                match one.first() {
                                    Some(1) => self.subscribe(conn_id, &cx, &one[1..], private)?,
                                    Some(0) => {
                                        self.hub.unsubscribe_prefix(conn_id, &one[1..]);
                                    }
                                    _ => {}
                                }
                            }
                        }
                        Some(Ok(Incoming::Command(c))) => match &c.name[..] {
                            b"SUBSCRIBE" => self.subscribe(conn_id, &cx, &c.data, private)?,
                            b"CANCEL" => {
                                self.hub.unsubscribe_prefix(conn_id, &c.data);
                            }
                            b"PING" => {
                                // PING = TTL (2 octets) + context; PONG
                                // echoes the context.
                                let context = c.data.get(2..).map(Bytes::copy_from_slice);
                                let pong = Command::new("PONG", context.unwrap_or_default());
                                writer.send(Outgoing::Command(pong)).await?;
                            }
                            b"ERROR" => return Ok(()),
                            _ => {}
                        },
                        Some(Ok(Incoming::Greeting(_))) => {}
                    },
                    n = pushes_rx.recv_many(&mut batches, PUSH_BATCH) => {
                        if n == 0 {
                            return Ok(());
                        }
                        write_pushes(&mut writer, &mut batches, max).await?;
                    }
                }
            }
        }
        .await;
        self.hub.remove_connection(conn_id);
        drop(opened);
        match outcome {
            Ok(()) => {
                // Flush what is written (a drain), bounded by the stall
                // timeout; the peer may be gone already.
                let _ = writer.close().await;
                Ok(())
            }
            Err(e) => {
                tracing::info!(?peer, error = %e, "ZeroMQ publication endpoint: closing");
                Err(e.into())
            }
        }
    }
}

impl ZmqXpub {
    fn subscribe(
        &self,
        conn_id: u64,
        cx: &crate::rpc::CallContext,
        prefix: &[u8],
        private: bool,
    ) -> Result<(), XpubError> {
        if self
            .hub
            .subscribe_prefix(conn_id, cx.pushes(), prefix, private)
        {
            Ok(())
        } else {
            Err(XpubError::TooManySubscriptions)
        }
    }
}

/// Writes each push of `batches` as a topic frame and the event's
/// MessagePack body, in chunks, then flushes.
async fn write_pushes<W>(
    writer: &mut FramedWrite<W, ZmtpCodec>,
    batches: &mut Vec<Pushes>,
    max: usize,
) -> Result<(), ZmtpError>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    for batch in batches.drain(..) {
        for p in batch.iter() {
            let Some(body) = p.data_msgpack(max) else {
                continue;
            };
            let buf: &mut BytesMut = writer.write_buffer_mut();
            encode_message(&[p.topic().as_bytes(), &body[..]], buf);
            if buf.len() >= WRITE_CHUNK {
                writer.flush().await?;
            }
        }
    }
    writer.flush().await
}

fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}
