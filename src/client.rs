//! Async RPC client, used by the CLI, the bench, bots and tests.
//!
//! Two levels:
//!
//! * [`FrameConn`]: one connection that sends and receives whole frame
//!   bodies. Over a byte stream (TCP, TLS, or any `AsyncRead + AsyncWrite`) a frame
//!   is a 4-byte big-endian length and the body; a message-oriented transport
//!   (SCTP) plugs in through [`FrameConn::from_parts`] with a sink and a
//!   stream of whole messages. Sequential and low level: tests use it to send
//!   garbage or ThreadCenter-shaped requests and read what comes back.
//! * [`Client`]: the pipelined client on top of a [`FrameConn`]. Cheap to
//!   clone; any number of tasks may [`Client::call`] at once on the one
//!   connection. A writer task batches outgoing frames, a reader task matches
//!   replies to calls by `id` and forwards unrequested pushes to
//!   [`Client::pushes`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), corral::client::ClientError> {
//! use corral::client::{Client, Codec};
//! let client = Client::connect("127.0.0.1:7070", Codec::Json).await?;
//! let reply = client.call("echo", serde_json::json!({"payload": "hi"})).await?;
//! assert_eq!(reply["payload"], "hi");
//! # Ok(()) }
//! ```
//!
//! Over several nodes, [`ChatSession`] is the chat client that moves to the
//! next node when the one it is on goes away: it logs in again,
//! resubscribes, and retries the cut call (writes keep their `client_id`,
//! so none is stored twice). Its address lists are checked by
//! [`parse_addrs`].
//!
//! Over TLS (feature `tls`), trusting the CA that signed the server's
//! certificate; the name checked is the host of the address unless
//! `TlsClientOptions::server_name` says otherwise:
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # async fn demo() -> Result<(), corral::client::ClientError> {
//! use corral::client::{Client, Codec};
//! use corral::transport::tls::TlsClientOptions;
//! let opts = TlsClientOptions::ca_file("ca.pem");
//! let client = Client::connect_tls("rpc.example.com:7443", Codec::MsgPack, &opts).await?;
//! client.call("ping", serde_json::json!({})).await?;
//! # Ok(()) }
//! ```

mod addrs;
mod session;
mod session_error;
#[cfg(feature = "zmq")]
mod zmq;

pub use addrs::parse_addrs;
pub use session::{ChatSession, ConnectFn, SessionOptions};
pub use session_error::SessionError;
#[cfg(feature = "zmq")]
pub use zmq::ZmqSubscriber;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest frame the client accepts from a server by default (16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;

/// How many unread pushes are kept before new ones are dropped.
const PUSH_BUFFER: usize = 1024;

/// How many outgoing frames may wait for the writer task.
const WRITE_BUFFER: usize = 1024;

/// Body encoding of requests and replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// One JSON object per frame.
    #[default]
    Json,
    /// One MessagePack map per frame (named fields).
    MsgPack,
}

impl Codec {
    /// Encodes `value` as a frame body.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes, ClientError> {
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| ClientError::Encode(Arc::new(e))),
            Codec::MsgPack => {
                rmp_serde::to_vec_named(value).map_err(|e| ClientError::Encode(Arc::new(e)))
            }
        }
        .map(Bytes::from)
    }

    /// Decodes a frame body.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, ClientError> {
        match self {
            Codec::Json => {
                serde_json::from_slice(body).map_err(|e| ClientError::Decode(Arc::new(e)))
            }
            Codec::MsgPack => {
                rmp_serde::from_slice(body).map_err(|e| ClientError::Decode(Arc::new(e)))
            }
        }
    }

    /// The codec's name: `json` or `msgpack`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::MsgPack => "msgpack",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Codec::Json),
            "msgpack" | "messagepack" | "mp" => Ok(Codec::MsgPack),
            other => Err(format!("unknown codec {other:?} (json or msgpack)")),
        }
    }
}

/// What can go wrong with a call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error reply.
    #[error("{code}: {message}")]
    Rpc {
        /// The error code (`BAD_REQUEST`, `UNKNOWN_SERVICE`, ...).
        code: String,
        /// The server's message.
        message: String,
    },
    /// Connecting, reading or writing failed.
    #[error("i/o error: {0}")]
    Io(Arc<io::Error>),
    /// A request could not be encoded; the source is the encoding's error.
    #[error("cannot encode request: {0}")]
    Encode(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// A reply could not be decoded (the source is the encoding's error),
    /// or has neither `data` nor `error`.
    #[error("cannot decode reply: {0}")]
    Decode(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The connection is closed (by the server, or after an error).
    #[error("connection closed")]
    Closed,
    /// TLS could not be set up: unusable trust settings (a CA file that
    /// cannot be read, none at all), or a failed handshake (the server's
    /// certificate refused, a server that does not speak TLS).
    #[error("{0}")]
    Tls(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(Arc::new(e))
    }
}

/// An unrequested message from the server (a publication).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingPush {
    /// The channel or user it was published to.
    pub topic: String,
    /// Its payload.
    #[serde(default)]
    pub data: Value,
}

/// The error object of an error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error code.
    pub code: String,
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
}

/// A request in the corral-native shape.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Request<'a, D: Serialize + ?Sized> {
    /// Matches the reply to the request.
    pub id: u64,
    /// The service to call.
    pub service: &'a str,
    /// The service's arguments.
    pub data: &'a D,
}

/// Whole frame bodies going out: the sending half of a message transport.
pub type FrameSink = Pin<Box<dyn Sink<Bytes, Error = io::Error> + Send>>;

/// Whole frame bodies coming in: the receiving half of a message transport.
pub type FrameStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// One connection carrying whole frames, sequential and low level.
pub struct FrameConn {
    sink: FrameSink,
    stream: FrameStream,
}

impl fmt::Debug for FrameConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameConn").finish_non_exhaustive()
    }
}

impl FrameConn {
    /// Connects over TCP (with `TCP_NODELAY`) and frames with a 4-byte
    /// big-endian length prefix.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<FrameConn, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(FrameConn::from_io(stream, DEFAULT_MAX_FRAME_BYTES))
    }

    /// Connects over `transport`: TCP, or SCTP with the default options.
    /// TLS needs to know whom to trust, so it is refused here
    /// ([`ClientError::Tls`]): use [`FrameConn::connect_tls`].
    pub async fn connect_over(
        addr: impl ToSocketAddrs,
        transport: crate::transport::Transport,
    ) -> Result<FrameConn, ClientError> {
        match transport {
            crate::transport::Transport::Tcp => FrameConn::connect(addr).await,
            #[cfg(feature = "sctp")]
            crate::transport::Transport::Sctp => {
                FrameConn::connect_sctp(addr, &crate::transport::SctpOptions::default()).await
            }
            #[cfg(feature = "tls")]
            crate::transport::Transport::Tls => Err(ClientError::Tls(Arc::new(io::Error::new(
                io::ErrorKind::InvalidInput,
                "transport \"tls\" needs trust settings (a CA file, or insecure): \
                 connect with connect_tls and TlsClientOptions",
            )))),
            #[allow(unreachable_patterns)]
            other => Err(ClientError::Io(Arc::new(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("this build of corral has no {other} transport (cargo feature `{other}`)"),
            )))),
        }
    }

    /// Connects over TLS to `addr` (`host:port`; the certificate is checked
    /// against the host unless `opts` name the server), and frames with a
    /// 4-byte big-endian length prefix, as over TCP.
    #[cfg(feature = "tls")]
    pub async fn connect_tls(
        addr: &str,
        opts: &crate::transport::tls::TlsClientOptions,
    ) -> Result<FrameConn, ClientError> {
        use crate::transport::tls::ConnectError;
        match crate::transport::tls::connect(addr, opts).await {
            Ok(stream) => Ok(FrameConn::from_io(stream, DEFAULT_MAX_FRAME_BYTES)),
            Err(ConnectError::Tcp(e)) => Err(e.into()),
            Err(e) => Err(ClientError::Tls(Arc::new(e))),
        }
    }

    /// Connects an SCTP association (kernel SCTP, one-to-one style socket)
    /// set up with `opts`. One message carries one body (no length prefix);
    /// requests go out on stream 1 (stream 0 is where the server pushes), so
    /// replies come back on stream 1 and never wait behind pushes. Messages
    /// longer than `opts.max_message_bytes` are a read error.
    #[cfg(feature = "sctp")]
    pub async fn connect_sctp(
        addr: impl ToSocketAddrs,
        opts: &crate::transport::SctpOptions,
    ) -> Result<FrameConn, ClientError> {
        let addr = tokio::net::lookup_host(addr)
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
        let stream = crate::transport::sctp::connect(addr, opts).await?;
        let out = stream.status().map(|s| s.outstrms).unwrap_or(1);
        let request_stream: u16 = if out > 1 { 1 } else { 0 };
        Ok(FrameConn::from_sctp(
            stream,
            request_stream,
            opts.max_message_bytes,
        )?)
    }

    /// A connection over an established SCTP association: bodies go out as
    /// messages on `stream` (those fed before a flush in as few system
    /// calls as the kernel allows); incoming messages (on any stream) are
    /// bodies. Fails only if the socket cannot be registered with the
    /// runtime (call it within one).
    #[cfg(feature = "sctp")]
    pub fn from_sctp(
        stream: tokio_sctp::SctpStream,
        send_stream: u16,
        max_message_bytes: usize,
    ) -> io::Result<FrameConn> {
        use crate::transport::sctp::{Association, Incoming};
        let assoc = Association::new(stream)?;
        let incoming = assoc.messages(max_message_bytes).map(|r| match r {
            Ok(Incoming::Message(body, _)) => Ok(body),
            Ok(Incoming::TooLarge(n)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("SCTP message of at least {n} bytes exceeds the limit"),
            )),
            Err(e) => Err(e),
        });
        let sink = assoc.sink().with(move |body: Bytes| {
            futures::future::ready(Ok::<_, io::Error>((body, send_stream)))
        });
        Ok(FrameConn::from_parts(Box::pin(sink), Box::pin(incoming)))
    }

    /// Length-prefix framing over any byte stream; frames longer than
    /// `max_frame_bytes` from the peer are a read error.
    pub fn from_io<T>(io: T, max_frame_bytes: usize) -> FrameConn
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let codec = LengthDelimitedCodec::builder()
            .length_field_length(4)
            .big_endian()
            .max_frame_length(max_frame_bytes)
            .new_codec();
        let (sink, stream) = Framed::new(io, codec).split();
        FrameConn {
            sink: Box::pin(sink),
            stream: Box::pin(stream.map(|r| r.map(|b| b.freeze()))),
        }
    }

    /// A connection over a message-oriented transport that already delivers
    /// whole messages (SCTP): each item is one body.
    pub fn from_parts(sink: FrameSink, stream: FrameStream) -> FrameConn {
        FrameConn { sink, stream }
    }

    /// Splits into the sending and receiving halves.
    pub fn into_parts(self) -> (FrameSink, FrameStream) {
        (self.sink, self.stream)
    }

    /// Sends one frame body, and flushes.
    pub async fn send_frame(&mut self, body: Bytes) -> Result<(), ClientError> {
        self.sink.send(body).await.map_err(ClientError::from)
    }

    /// Queues one frame body without flushing (see [`FrameConn::flush`]).
    pub async fn feed_frame(&mut self, body: Bytes) -> Result<(), ClientError> {
        self.sink.feed(body).await.map_err(ClientError::from)
    }

    /// Flushes queued frames.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.sink.flush().await.map_err(ClientError::from)
    }

    /// Receives the next frame body; `None` when the peer has closed.
    pub async fn recv_frame(&mut self) -> Result<Option<Bytes>, ClientError> {
        match self.stream.next().await {
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(e.into()),
            None => Ok(None),
        }
    }

    /// Sends `request` encoded with `codec` and decodes the next frame as a
    /// JSON value (whatever its shape: reply, error, push).
    pub async fn request<T: Serialize + ?Sized>(
        &mut self,
        codec: Codec,
        request: &T,
    ) -> Result<Value, ClientError> {
        self.send_frame(codec.encode(request)?).await?;
        match self.recv_frame().await? {
            Some(body) => codec.decode(&body),
            None => Err(ClientError::Closed),
        }
    }
}

type ReplySender = oneshot::Sender<Result<Value, ClientError>>;

struct Inner {
    codec: Codec,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, ReplySender>>,
    closed: AtomicBool,
    out: mpsc::Sender<Bytes>,
    pushes: Mutex<Option<mpsc::Receiver<IncomingPush>>>,
}

impl Inner {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ReplySender>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the connection closed and fails every waiting call.
    fn close(&self, why: &ClientError) {
        self.closed.store(true, Ordering::SeqCst);
        let waiting: Vec<ReplySender> = self.lock_pending().drain().map(|(_, s)| s).collect();
        for s in waiting {
            let _ = s.send(Err(why.clone()));
        }
    }
}

/// Removes a call's entry if the call is dropped before its reply (timeouts).
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.lock_pending().remove(&self.id);
    }
}

/// A pipelined RPC client over one connection; clone it to share.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("codec", &self.inner.codec)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects over TCP (nodelay) with the default framing.
    pub async fn connect(addr: impl ToSocketAddrs, codec: Codec) -> Result<Client, ClientError> {
        Ok(Client::new(FrameConn::connect(addr).await?, codec))
    }

    /// Connects over SCTP (see [`FrameConn::connect_sctp`]).
    #[cfg(feature = "sctp")]
    pub async fn connect_sctp(
        addr: impl ToSocketAddrs,
        codec: Codec,
        opts: &crate::transport::SctpOptions,
    ) -> Result<Client, ClientError> {
        Ok(Client::new(
            FrameConn::connect_sctp(addr, opts).await?,
            codec,
        ))
    }

    /// Connects over TLS (see [`FrameConn::connect_tls`]).
    #[cfg(feature = "tls")]
    pub async fn connect_tls(
        addr: &str,
        codec: Codec,
        opts: &crate::transport::tls::TlsClientOptions,
    ) -> Result<Client, ClientError> {
        Ok(Client::new(
            FrameConn::connect_tls(addr, opts).await?,
            codec,
        ))
    }

    /// Connects over `transport` (TCP, or SCTP with the default options;
    /// TLS is refused: use [`Client::connect_tls`]).
    pub async fn connect_over(
        addr: impl ToSocketAddrs,
        codec: Codec,
        transport: crate::transport::Transport,
    ) -> Result<Client, ClientError> {
        Ok(Client::new(
            FrameConn::connect_over(addr, transport).await?,
            codec,
        ))
    }

    /// A client over an established connection (any transport). Spawns the
    /// reader and writer tasks on the current tokio runtime.
    pub fn new(conn: FrameConn, codec: Codec) -> Client {
        let (sink, stream) = conn.into_parts();
        let (out_tx, out_rx) = mpsc::channel(WRITE_BUFFER);
        let (push_tx, push_rx) = mpsc::channel(PUSH_BUFFER);
        let inner = Arc::new(Inner {
            codec,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            out: out_tx,
            pushes: Mutex::new(Some(push_rx)),
        });
        tokio::spawn(write_loop(Arc::downgrade(&inner), sink, out_rx));
        tokio::spawn(read_loop(Arc::downgrade(&inner), stream, push_tx));
        Client { inner }
    }

    /// The codec of requests (and replies).
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// True once the connection is closed; every call then fails.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Calls `service` with `data` and returns the reply's `data` (`null` if
    /// it has none). An error reply is [`ClientError::Rpc`].
    pub async fn call(&self, service: &str, data: Value) -> Result<Value, ClientError> {
        self.call_with(service, &data).await
    }

    /// Like [`Client::call`], with any serializable `data`.
    pub async fn call_with<D: Serialize + ?Sized>(
        &self,
        service: &str,
        data: &D,
    ) -> Result<Value, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let body = self.inner.codec.encode(&Request { id, service, data })?;
        let reply = self.send_with_id(id, body).await?;
        reply_data(reply)
    }

    /// Sends an already encoded body whose `id` is `id` and returns the whole
    /// reply (envelope included) as a JSON value, without interpreting it.
    /// Use [`Client::next_id`] to get an id that no other call uses.
    pub async fn send_with_id(&self, id: u64, body: Bytes) -> Result<Value, ClientError> {
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        self.inner.lock_pending().insert(id, tx);
        let _guard = PendingGuard {
            inner: &self.inner,
            id,
        };
        if self.inner.out.send(body).await.is_err() {
            return Err(ClientError::Closed);
        }
        // The reader may have closed between the check and the insert.
        if self.is_closed() {
            self.inner.lock_pending().remove(&id);
        }
        rx.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Reserves a request id.
    pub fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The receiver of unrequested pushes (publications). Returns it on the
    /// first call only; later calls get `None`. Pushes that arrive while
    /// 1024 are unread are dropped.
    pub fn pushes(&self) -> Option<mpsc::Receiver<IncomingPush>> {
        self.inner
            .pushes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// A random number (std's randomly keyed hasher, a counter and the time; no
/// extra crate), for client ids and backoff jitter.
pub(crate) fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one((
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now(),
    ))
}

/// Turns a reply envelope into its data or its error.
fn reply_data(mut reply: Value) -> Result<Value, ClientError> {
    let Some(obj) = reply.as_object_mut() else {
        let why: Box<dyn std::error::Error + Send + Sync> =
            format!("reply is not an object: {reply}").into();
        return Err(ClientError::Decode(Arc::from(why)));
    };
    if let Some(err) = obj.remove("error") {
        let e: ErrorBody =
            serde_json::from_value(err.clone()).map_err(|e| ClientError::Decode(Arc::new(e)))?;
        return Err(ClientError::Rpc {
            code: e.code,
            message: e.message,
        });
    }
    // ThreadCenter-shaped replies carry `result` instead of `data`.
    Ok(obj
        .remove("data")
        .or_else(|| obj.remove("result"))
        .unwrap_or(Value::Null))
}

/// The id of a reply, if it is one we could have sent (an integer, or a
/// string holding one).
fn reply_id(v: &Value) -> Option<u64> {
    match v.get("id")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

async fn write_loop(
    inner: std::sync::Weak<Inner>,
    mut sink: FrameSink,
    mut rx: mpsc::Receiver<Bytes>,
) {
    while let Some(body) = rx.recv().await {
        let mut result = sink.feed(body).await;
        // Batch whatever else is ready into one flush.
        while result.is_ok() {
            match rx.try_recv() {
                Ok(more) => result = sink.feed(more).await,
                Err(_) => break,
            }
        }
        if result.is_ok() {
            result = sink.flush().await;
        }
        if let Err(e) = result {
            tracing::debug!(error = %e, "rpc client: write failed");
            if let Some(inner) = inner.upgrade() {
                inner.close(&e.into());
            }
            return;
        }
    }
    let _ = sink.close().await;
}

async fn read_loop(
    inner: std::sync::Weak<Inner>,
    mut stream: FrameStream,
    pushes: mpsc::Sender<IncomingPush>,
) {
    let why = loop {
        let frame = match stream.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => break ClientError::from(e),
            None => break ClientError::Closed,
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let value: Value = match inner.codec.decode(&frame) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "rpc client: undecodable frame from server");
                continue;
            }
        };
        if let Some(id) = reply_id(&value) {
            let waiter = inner.lock_pending().remove(&id);
            match waiter {
                Some(tx) => {
                    let _ = tx.send(Ok(value));
                }
                None => tracing::debug!(id, "rpc client: reply to no pending call"),
            }
        } else if value.get("topic").is_some() {
            match serde_json::from_value::<IncomingPush>(value) {
                Ok(p) => {
                    if pushes.try_send(p).is_err() {
                        tracing::debug!("rpc client: push dropped (receiver full or gone)");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "rpc client: bad push"),
            }
        } else {
            tracing::warn!(frame = %value, "rpc client: frame without id or topic");
        }
    };
    if let Some(inner) = inner.upgrade() {
        inner.close(&why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::net::TcpListener;

    /// A tiny server: echoes `data`, answers `fail` with an error, `push`
    /// with a push then the reply, and replies to batches in reverse order.
    async fn server(codec: Codec) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut conn = FrameConn::from_io(sock, 1 << 20);
                    while let Ok(Some(frame)) = conn.recv_frame().await {
                        let Ok(req) = codec.decode::<Value>(&frame) else {
                            let _ = conn
                                .send_frame(codec.encode(&json!({"error": {"code": "BAD_REQUEST", "message": "undecodable"}})).expect("enc"))
                                .await;
                            continue;
                        };
                        let id = req["id"].clone();
                        let service = req["service"].as_str().unwrap_or_default().to_string();
                        let reply = match service.as_str() {
                            "fail" => {
                                json!({"id": id, "service": service, "error": {"code": "NOT_FOUND", "message": "nope"}})
                            }
                            "push" => {
                                let p = json!({"topic": "t", "data": {"x": 1}});
                                let _ = conn.send_frame(codec.encode(&p).expect("enc")).await;
                                json!({"id": id, "service": service, "data": {}})
                            }
                            _ => json!({"id": id, "service": service, "data": req["data"]}),
                        };
                        if conn
                            .send_frame(codec.encode(&reply).expect("enc"))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn pipelined_calls_json_and_msgpack() {
        for codec in [Codec::Json, Codec::MsgPack] {
            let addr = server(codec).await;
            let client = Client::connect(addr, codec).await.expect("connect");
            let calls = (0..200).map(|i| {
                let c = client.clone();
                async move { (i, c.call("echo", json!({"payload": i})).await) }
            });
            for (i, r) in futures::future::join_all(calls).await {
                assert_eq!(r.expect("reply"), json!({"payload": i}));
            }
        }
    }

    #[tokio::test]
    async fn error_reply_is_rpc_error() {
        let addr = server(Codec::Json).await;
        let client = Client::connect(addr, Codec::Json).await.expect("connect");
        match client.call("fail", json!({})).await {
            Err(ClientError::Rpc { code, message }) => {
                assert_eq!(code, "NOT_FOUND");
                assert_eq!(message, "nope");
            }
            other => panic!("unexpected {other:?}"),
        }
        // The connection is still usable.
        assert_eq!(client.call("echo", json!(1)).await.expect("ok"), json!(1));
    }

    #[tokio::test]
    async fn pushes_are_delivered() {
        let addr = server(Codec::MsgPack).await;
        let client = Client::connect(addr, Codec::MsgPack)
            .await
            .expect("connect");
        let mut pushes = client.pushes().expect("first take");
        assert!(client.pushes().is_none());
        client.call("push", json!({})).await.expect("ok");
        let p = pushes.recv().await.expect("push");
        assert_eq!(p.topic, "t");
        assert_eq!(p.data, json!({"x": 1}));
    }

    #[tokio::test]
    async fn closed_connection_fails_calls() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            // Read one frame, then hang up without answering.
            if let Ok((sock, _)) = listener.accept().await {
                let mut conn = FrameConn::from_io(sock, 1 << 20);
                let _ = conn.recv_frame().await;
            }
        });
        let client = Client::connect(addr, Codec::Json).await.expect("connect");
        match client.call("echo", json!({})).await {
            Err(ClientError::Closed) | Err(ClientError::Io(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(client.is_closed());
        assert!(matches!(
            client.call("echo", json!({})).await,
            Err(ClientError::Closed)
        ));
    }

    #[tokio::test]
    async fn raw_frames() {
        let addr = server(Codec::Json).await;
        let mut conn = FrameConn::connect(addr).await.expect("connect");
        conn.send_frame(Bytes::from_static(b"\xffgarbage"))
            .await
            .expect("send");
        let reply: Value = Codec::Json
            .decode(&conn.recv_frame().await.expect("recv").expect("frame"))
            .expect("json");
        assert_eq!(reply["error"]["code"], "BAD_REQUEST");
        let reply = conn
            .request(
                Codec::Json,
                &json!({"id": "a", "service": "echo", "data": 5}),
            )
            .await
            .expect("reply");
        assert_eq!(reply["id"], "a");
        assert_eq!(reply["data"], 5);
    }

    #[test]
    fn codec_names() {
        assert_eq!("json".parse::<Codec>(), Ok(Codec::Json));
        assert_eq!("MsgPack".parse::<Codec>(), Ok(Codec::MsgPack));
        assert!("xml".parse::<Codec>().is_err());
    }

    #[test]
    fn reply_shapes() {
        assert_eq!(
            reply_data(json!({"id": 1, "data": {"a": 1}})).expect("ok"),
            json!({"a": 1})
        );
        assert_eq!(
            reply_data(json!({"id": 1, "result": 7})).expect("ok"),
            json!(7)
        );
        assert!(matches!(
            reply_data(json!({"id": 1, "error": {"code": "X", "message": "m"}})),
            Err(ClientError::Rpc { .. })
        ));
        assert!(reply_data(json!(3)).is_err());
    }
}
