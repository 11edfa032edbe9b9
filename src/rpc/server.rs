//! Serving one connection: pipelined requests, replies as they are ready,
//! pushes interleaved, backpressure, idle and write-stall timeouts, drain.
//!
//! The loop ([`serve_framed`]) runs in the connection's task and works on a
//! stream of [`Frame`]s and a sink of reply bodies, so a message transport
//! (one message = one body) reuses it as is; [`serve`] adapts a byte stream
//! with the length-prefixed [`FrameCodec`].
//!
//! In the loop, by priority: completed requests are encoded and queued; new
//! frames are read and dispatched while fewer than `max_in_flight` requests
//! are running (at the bound the loop stops reading: backpressure); pushes are
//! queued; the queue is flushed once nothing else is ready, so replies that
//! are ready together go out in one write.
//!
//! Bounds: at most `max_in_flight` requests of a connection run at once,
//! and a write that cannot proceed holds the loop (so it reads nothing
//! more either), so a connection holds at most `max_in_flight` requests,
//! the replies of one write buffer and the pushes of its queue, whatever
//! its peer sends. A write with no progress for `write_stall_timeout_ms`
//! ends the connection ([`RpcConnError::WriteStalled`]). When the peer is
//! gone (a reset or abort, or a write that fails) the requests in progress
//! are dropped at once: those waiting for a compute worker never start, a
//! running `compute` stops at its next check.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::codec::{Frame, FrameCodec, FrameError};
use super::dispatch::{Completed, Dispatched, RpcShared};
use super::envelope::Encoding;
use super::push::{self, PushReceiver, PushSender, Pushes, DEFAULT_PUSH_QUEUE};
use super::registry::{CallContext, Registry};
use super::settings::RpcSettings;
use super::stall::{StallGuard, Stalled};
use super::writer::{FrameWriter, Outgoing};
use crate::metrics::Metrics;
use crate::util::LeanFramedRead;

/// The SCTP stream pushes go out on; replies use the stream of their
/// request, so a client that sends on another stream never finds its
/// replies waiting behind pushes.
pub const PUSH_STREAM: u16 = 0;

/// Capacity of the buffer replies are encoded into, allocated when a reply
/// is encoded and released when the connection has nothing left to write.
const SCRATCH_BYTES: usize = 8 * 1024;

/// Capacity of a byte-stream connection's read buffer, which exists only
/// while there are bytes to read (see [`LeanFramedRead`]).
const READ_BUFFER: usize = 8 * 1024;

/// Most queued pushes written in one go before the loop looks at requests.
const PUSH_BATCH: usize = 256;

/// Bytes buffered for the socket before a write is forced: pushes and
/// replies ready together go out in few, large writes.
const WRITE_BUFFER: usize = 64 * 1024;

/// After closing our side, how long to read and discard what the peer still
/// sends before dropping the connection. Dropping a socket with unread input
/// makes TCP send a reset, which may destroy replies the peer has not read
/// yet (FRAME_TOO_LARGE, the last replies of a drain).
const LINGER: Duration = Duration::from_secs(1);

/// What the transport hands the protocol along with a connection.
#[derive(Debug)]
pub struct ConnCtx {
    peer: Option<SocketAddr>,
    cancel: CancellationToken,
    pushes_tx: PushSender,
    pushes_rx: PushReceiver,
}

impl ConnCtx {
    /// The context of a connection from `peer`, drained when `cancel` is
    /// cancelled (stop reading, finish requests in flight, flush, close),
    /// with a push queue of 8192 pushes (the `[rpc] push_queue` default).
    pub fn new(peer: Option<SocketAddr>, cancel: CancellationToken) -> Self {
        let (pushes_tx, pushes_rx) = push::channel(DEFAULT_PUSH_QUEUE);
        ConnCtx {
            peer,
            cancel,
            pushes_tx,
            pushes_rx,
        }
    }

    /// The context of a connection accepted by a listener: pushes come
    /// through the connection's inbox, at most `push_queue` at a time.
    pub(crate) fn from_connection(
        conn: crate::listener::Connection<Pushes>,
        push_queue: usize,
    ) -> (Option<crate::listener::Socket>, Self) {
        let peer = conn.peer();
        let tx = conn.handle().tx;
        let (socket, rx, cancel) = conn.into_parts();
        let (pushes_tx, pushes_rx) = push::from_parts(tx, rx, push_queue);
        (
            socket,
            ConnCtx {
                peer: Some(peer),
                cancel,
                pushes_tx,
                pushes_rx,
            },
        )
    }

    /// The parts: peer, drain token, push sender and receiver.
    #[cfg(feature = "zmq")]
    pub(crate) fn into_parts(
        self,
    ) -> (
        Option<SocketAddr>,
        CancellationToken,
        PushSender,
        PushReceiver,
    ) {
        (self.peer, self.cancel, self.pushes_tx, self.pushes_rx)
    }

    /// The peer's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The token that drains the connection.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// A sender of pushes to this connection (services get one in their
    /// [`CallContext`] too).
    pub fn push_sender(&self) -> PushSender {
        self.pushes_tx.clone()
    }
}

/// Why serving a connection failed. A peer that goes away (EOF, reset, a
/// frame cut short) is a normal end, not an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcConnError {
    /// The transport failed.
    #[error("RPC connection failed: {0}")]
    Transport(#[from] FrameError),
    /// Nothing could be written to the peer for this long (it does not
    /// read its replies): the connection was cut.
    #[error("RPC peer read nothing for {0:?}; connection cut")]
    WriteStalled(Duration),
}

/// The RPC protocol, ready to serve connections. Cheap to clone.
#[derive(Clone)]
pub struct RpcProtocol {
    shared: Arc<RpcShared>,
    /// Largest SCTP message accepted (besides `max_frame_bytes`).
    #[cfg_attr(not(feature = "sctp"), allow(dead_code))]
    sctp_max_message: usize,
}

impl std::fmt::Debug for RpcProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcProtocol")
            .field("settings", &self.shared.settings)
            .field("services", &self.shared.registry)
            .finish_non_exhaustive()
    }
}

impl RpcProtocol {
    /// The protocol with the built-in services and `services` (which override
    /// built-ins of the same name), recording into `metrics`.
    pub fn new(settings: RpcSettings, metrics: Arc<Metrics>, services: Registry) -> Self {
        RpcProtocol {
            shared: Arc::new(RpcShared::new(settings, metrics, &services)),
            sctp_max_message: usize::MAX,
        }
    }

    /// Limits incoming SCTP messages to `bytes` (the smaller of this and
    /// `max_frame_bytes` applies).
    pub fn sctp_max_message_bytes(mut self, bytes: usize) -> Self {
        self.sctp_max_message = bytes;
        self
    }

    /// Serves one SCTP association until the peer shuts it down or aborts
    /// it, it idles out, or `ctx`'s token drains it. One message is one
    /// body; a reply goes out on the stream its request came in on, pushes
    /// on stream [`PUSH_STREAM`](PUSH_STREAM).
    #[cfg(feature = "sctp")]
    pub async fn serve_sctp(
        &self,
        stream: tokio_sctp::SctpStream,
        ctx: ConnCtx,
    ) -> Result<(), RpcConnError> {
        use crate::transport::sctp::{Association, Incoming};
        let max = self
            .shared
            .settings
            .max_frame_bytes
            .min(self.sctp_max_message);
        // Replies use the request's stream when the association has it.
        let out = stream.status().map(|s| s.outstrms).unwrap_or(1).max(1);
        let reply_stream = move |sid: u16| {
            if sid < out {
                sid
            } else if out > 1 {
                1 + (sid - 1) % (out - 1)
            } else {
                PUSH_STREAM
            }
        };
        let assoc = Association::new(stream).map_err(FrameError::Io)?;
        let reader = assoc.messages(max).map(move |r| match r {
            Ok(Incoming::Message(body, sid)) => Ok((Frame::Body(body), reply_stream(sid))),
            Ok(Incoming::TooLarge(len)) => Ok((Frame::TooLarge(len), PUSH_STREAM)),
            Err(e) => Err(FrameError::Io(e)),
        });
        // One message per reply, one per push of a batch, queued until the
        // loop flushes (when nothing else is ready), then sent in batches.
        let stall = self.shared.settings.write_stall_timeout();
        let writer = super::stall::StallSink::new(assoc.sink(), stall)
            .sink_map_err(FrameError::Io)
            .with_flat_map(move |(out, sid): (Outgoing, u16)| {
                let bodies: Vec<Bytes> = out.bodies(max).into_iter().cloned().collect();
                futures::stream::iter(bodies.into_iter().map(move |b| Ok((b, sid))))
            });
        serve_framed(
            Box::pin(reader),
            writer,
            self.shared.clone(),
            ctx,
            PUSH_STREAM,
            false,
        )
        .await
    }

    /// The settings in force (out-of-range values corrected).
    pub fn settings(&self) -> &RpcSettings {
        &self.shared.settings
    }

    /// Every service served, built-ins included.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Connections being served.
    pub fn connections(&self) -> u64 {
        self.shared.stats.connections()
    }

    /// Serves one byte-stream connection (TCP, Unix socket, TLS…) until the
    /// peer closes it, it idles out, or `ctx`'s token drains it.
    ///
    /// A service that panics makes this future panic: run it in the
    /// connection's own task or actor, so that only that connection dies.
    pub async fn serve_connection<IO>(&self, io: IO, ctx: ConnCtx) -> Result<(), RpcConnError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send,
    {
        serve(io, self.shared.clone(), ctx).await
    }

    /// Serves a connection given as a stream of request frames, each with a
    /// tag that goes out with its reply, and a sink of replies and pushes
    /// (pushes go out with `push_tag`): the loop of every RPC connection,
    /// for a transport that frames messages its own way (ZeroMQ), whose
    /// calls are [sessionless](CallContext::sessionless).
    #[cfg(feature = "zmq")]
    pub(crate) async fn serve_tagged<R, W, T>(
        &self,
        reader: R,
        writer: W,
        ctx: ConnCtx,
        push_tag: T,
    ) -> Result<(), RpcConnError>
    where
        R: Stream<Item = Result<(Frame, T), FrameError>> + Unpin,
        W: Sink<(Outgoing, T), Error = FrameError> + Unpin,
        T: Clone + Send + 'static,
    {
        serve_framed(reader, writer, self.shared.clone(), ctx, push_tag, true).await
    }

    /// Handles one request body to completion and returns the reply body
    /// (`None` only if not even an error reply could be encoded). For message
    /// transports that run each message in a task of their own.
    pub async fn handle_message(&self, body: Bytes, cx: &Arc<CallContext>) -> Option<Bytes> {
        self.shared.handle_body(&body, cx).await
    }

    /// A push's body in `enc`, borrowed from the push (encoded once for every
    /// connection it goes to); `None` if it cannot be encoded or is larger
    /// than a frame.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn encode_push<'p>(&self, push: &'p super::Push, enc: Encoding) -> Option<&'p [u8]> {
        push.encoded_within(enc, self.shared.settings.max_frame_bytes)
            .map(|b| &b[..])
    }

    /// Opens a connection of a message transport (WebSocket, ...): a
    /// [`CallContext`] with a connection number of its own and whose pushes go
    /// to `pushes`, counted as an open connection until the returned value is
    /// dropped. Pass its [`MessageConnection::context`] to
    /// [`RpcProtocol::handle_message`].
    pub fn open_message_connection(
        &self,
        peer: Option<SocketAddr>,
        pushes: PushSender,
    ) -> MessageConnection {
        let (conn_id, guard) = self.shared.stats.connection_opened();
        MessageConnection {
            cx: Arc::new(CallContext::new(conn_id, peer, pushes)),
            _counted: guard,
        }
    }
}

/// One open connection of a message transport (see
/// [`RpcProtocol::open_message_connection`]); counted until dropped.
#[derive(Debug)]
pub struct MessageConnection {
    cx: Arc<CallContext>,
    _counted: super::stats::ConnGuard,
}

impl MessageConnection {
    /// The connection's call context.
    pub fn context(&self) -> &Arc<CallContext> {
        &self.cx
    }
}

/// Serves one byte-stream connection with length-prefixed frames.
pub(crate) async fn serve<IO>(
    io: IO,
    shared: Arc<RpcShared>,
    conn: ConnCtx,
) -> Result<(), RpcConnError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let max = shared.settings.max_frame_bytes;
    let (r, w) = tokio::io::split(io);
    let w = StallGuard::new(w, shared.settings.write_stall_timeout());
    let reader =
        LeanFramedRead::new(r, FrameCodec::new(max), READ_BUFFER).map(|f| f.map(|f| (f, ())));
    // Outgoing sizes are policed by the dispatcher: data over the limit is
    // replaced by an INTERNAL error, and error replies always go out (even
    // when the limit is set smaller than an error message).
    let writer = FrameWriter::new(w, WRITE_BUFFER, max)
        .with(|(out, ()): (Outgoing, ())| futures::future::ready(Ok::<_, FrameError>(out)));
    serve_framed(reader, writer, shared, conn, (), false).await
}

/// Whether an I/O error just means the peer went away.
fn peer_gone(e: &FrameError) -> bool {
    match e {
        FrameError::Truncated(_) => true,
        FrameError::OutgoingTooLarge(_) => false,
        FrameError::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::NotConnected
                | io::ErrorKind::UnexpectedEof
        ),
    }
}

/// `Ok` for a peer gone, the error otherwise.
fn end_with(e: FrameError) -> Result<(), RpcConnError> {
    if let FrameError::Io(io) = &e {
        if let Some(after) = Stalled::find(io) {
            tracing::debug!(?after, "RPC peer reads nothing; closing");
            return Err(RpcConnError::WriteStalled(after));
        }
    }
    if peer_gone(&e) {
        tracing::debug!(error = %e, "RPC peer gone");
        Ok(())
    } else {
        Err(e.into())
    }
}

enum Event<T> {
    Done((Completed, T)),
    Frame(Option<Result<(Frame, T), FrameError>>),
    Pushes(usize),
    Flushed(Result<(), FrameError>),
    Cancelled,
    IdleTimer,
}

/// Encodes `c` and queues it on `writer` (no flush), tagged with `tag`.
async fn send<W, T>(
    writer: &mut W,
    shared: &RpcShared,
    scratch: &mut BytesMut,
    c: &Completed,
    tag: T,
) -> Result<(), FrameError>
where
    W: Sink<(Outgoing, T), Error = FrameError> + Unpin,
{
    if scratch.capacity() == 0 {
        scratch.reserve(SCRATCH_BYTES);
    }
    if shared.encode(c, scratch) {
        writer
            .feed((Outgoing::Body(scratch.split().freeze()), tag))
            .await?;
    }
    Ok(())
}

/// A request in progress, its reply to go out with `tag`.
fn tagged<T: Send + 'static>(
    f: BoxFuture<'static, Completed>,
    tag: T,
) -> futures::future::Map<BoxFuture<'static, Completed>, impl FnOnce(Completed) -> (Completed, T)> {
    use futures::FutureExt;
    f.map(move |c| (c, tag))
}

/// Serves one connection given as a stream of frames and a sink of bodies.
/// Each frame comes with a tag (the SCTP stream to answer on; `()` for a
/// byte stream) that goes out with its reply; pushes go out with `push_tag`.
pub(crate) async fn serve_framed<R, W, T>(
    mut reader: R,
    mut writer: W,
    shared: Arc<RpcShared>,
    conn: ConnCtx,
    push_tag: T,
    sessionless: bool,
) -> Result<(), RpcConnError>
where
    R: Stream<Item = Result<(Frame, T), FrameError>> + Unpin,
    W: Sink<(Outgoing, T), Error = FrameError> + Unpin,
    T: Clone + Send + 'static,
{
    let ConnCtx {
        peer,
        cancel,
        pushes_tx,
        mut pushes_rx,
    } = conn;
    let (conn_id, _counted) = shared.stats.connection_opened();
    let mut cx = CallContext::new(conn_id, peer, pushes_tx);
    if sessionless {
        cx = cx.sessionless();
    }
    let cx = Arc::new(cx);
    let max_in_flight = shared.settings.max_in_flight;
    let idle = shared.settings.idle_timeout();

    let mut in_flight = FuturesUnordered::new();
    // Both allocated when first needed, and released whenever everything
    // is written: an idle connection holds no buffer.
    let mut pushes = Vec::new();
    let mut scratch = BytesMut::new();
    let mut last_enc = Encoding::Json;
    let mut reading = true;
    let mut read_eof = false;
    let mut dirty = false;
    let mut last_activity = Instant::now();
    let idle_sleep = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(idle_sleep);
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);

    let outcome = loop {
        if reading && cancel.is_cancelled() {
            reading = false;
        }
        if !reading && in_flight.is_empty() {
            break Ok(());
        }
        let can_read = reading && in_flight.len() < max_in_flight;
        let event = tokio::select! {
            biased;
            Some(c) = in_flight.next(), if !in_flight.is_empty() => Event::Done(c),
            frame = reader.next(), if can_read => Event::Frame(frame),
            n = pushes_rx.recv_many(&mut pushes, PUSH_BATCH), if pushes.is_empty() => Event::Pushes(n),
            r = writer.flush(), if dirty => Event::Flushed(r),
            () = &mut cancelled, if reading => Event::Cancelled,
            () = &mut idle_sleep, if reading && idle.is_some() && in_flight.is_empty() => Event::IdleTimer,
        };
        match event {
            Event::Done((c, tag)) => {
                last_activity = Instant::now();
                if let Err(e) = send(&mut writer, &shared, &mut scratch, &c, tag).await {
                    break end_with(e);
                }
                dirty = true;
            }
            Event::Frame(Some(Ok((Frame::Body(body), tag)))) => {
                let now = Instant::now();
                last_activity = now;
                if let Some(enc) = Encoding::detect(&body) {
                    last_enc = enc;
                }
                match shared.dispatch(&body, &cx, now) {
                    Dispatched::Ready(c) => {
                        if let Err(e) = send(&mut writer, &shared, &mut scratch, &c, tag).await {
                            break end_with(e);
                        }
                        dirty = true;
                    }
                    Dispatched::Pending(f) => in_flight.push(tagged(f, tag)),
                }
            }
            Event::Frame(Some(Ok((Frame::TooLarge(len), tag)))) => {
                tracing::debug!(conn_id, len, "RPC frame too large; closing");
                reading = false;
                let c = shared.too_large(len, last_enc, Instant::now());
                if let Err(e) = send(&mut writer, &shared, &mut scratch, &c, tag).await {
                    break end_with(e);
                }
                dirty = true;
            }
            Event::Frame(None) => {
                reading = false;
                read_eof = true;
            }
            Event::Frame(Some(Err(e))) => {
                reading = false;
                read_eof = true;
                // A reset or an abort: nothing more can reach the peer, so
                // the requests in progress are dropped with the loop. (A
                // frame cut short by a clean end is like the end: those in
                // progress are still answered.)
                if matches!(e, FrameError::Io(_)) || !peer_gone(&e) {
                    break end_with(e);
                }
                tracing::debug!(conn_id, error = %e, "RPC peer closed mid-frame");
            }
            // The channel never closes while `cx` holds a sender.
            Event::Pushes(0) => {}
            Event::Pushes(_) => {
                // Taken in a batch, so the queue's permits go back at once;
                // each batch is written from the pushes' shared encodings.
                let mut failed = None;
                for batch in pushes.drain(..) {
                    let out = (Outgoing::Pushes(batch, last_enc), push_tag.clone());
                    if let Err(e) = writer.feed(out).await {
                        failed = Some(e);
                        break;
                    }
                    dirty = true;
                }
                if let Some(e) = failed {
                    break end_with(e);
                }
            }
            Event::Flushed(Ok(())) => {
                dirty = false;
                // Everything is written: release the buffers until they are
                // needed again (the encoded replies that share the
                // scratch's allocation are gone once written).
                if in_flight.is_empty() {
                    scratch = BytesMut::new();
                    if pushes_rx.is_empty() {
                        pushes = Vec::new();
                    }
                }
            }
            Event::Flushed(Err(e)) => break end_with(e),
            Event::Cancelled => {
                tracing::debug!(conn_id, "RPC connection draining");
                reading = false;
            }
            Event::IdleTimer => {
                if let Some(idle) = idle {
                    let deadline = last_activity + idle;
                    if Instant::now() >= deadline {
                        tracing::debug!(conn_id, "RPC connection idle; closing");
                        reading = false;
                    } else {
                        idle_sleep
                            .as_mut()
                            .reset(tokio::time::Instant::from_std(deadline));
                    }
                }
            }
        }
    };
    // Drop the requests still in progress (left only when the loop ended
    // early: the peer is gone, reads nothing, or the connection failed).
    drop(in_flight);
    // Flush what is queued and close our side, unless the peer is gone or
    // reads nothing.
    let closed = match outcome {
        Err(RpcConnError::WriteStalled(_)) => Ok(()),
        _ => writer.close().await,
    };
    if !read_eof && outcome.is_ok() && closed.is_ok() {
        let discard = async { while let Some(Ok(_)) = reader.next().await {} };
        let _ = tokio::time::timeout(LINGER, discard).await;
    }
    match (outcome, closed) {
        (Ok(()), Err(e)) => end_with(e),
        (outcome, _) => outcome,
    }
}

#[async_trait::async_trait]
impl crate::listener::Protocol for RpcProtocol {
    type Msg = Pushes;

    async fn serve(
        &self,
        conn: crate::listener::Connection<Pushes>,
    ) -> Result<(), crate::listener::ProtocolError> {
        let proto = self.clone();
        async move {
            let (socket, ctx) = ConnCtx::from_connection(conn, proto.shared.settings.push_queue);
            let Some(socket) = socket else {
                return Ok(());
            };
            // Byte streams (TCP, TLS) carry length-prefixed frames; SCTP
            // carries one body per message.
            match socket.into_byte_stream() {
                Ok(stream) => proto.serve_connection(stream, ctx).await?,
                #[cfg(feature = "sctp")]
                Err(crate::listener::Socket::Sctp(stream)) => {
                    proto.serve_sctp(stream, ctx).await?;
                }
                #[allow(unreachable_patterns)]
                Err(other) => {
                    return Err(format!("RPC cannot be served over {}", other.transport()).into())
                }
            }
            Ok(())
        }
        .await
    }
}
