//! The client side of ZeroMQ (feature `zmq`): requests over a DEALER
//! connection to a `zmq_router` endpoint (a node's, or the seeds' broker),
//! and publications from a SUB connection to a `zmq_xpub` endpoint (or the
//! seeds' proxy), both as one [`FrameConn`] so that a [`Client`] runs over
//! them unchanged.
//!
//! A request goes out as `[empty delimiter, body]`, the frames a REQ socket
//! sends, so that a ROUTER in front of REP servers (the seeds' broker)
//! routes it as well as corral's endpoint does.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::Mutex;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{ClientError, Codec, FrameConn};
use crate::zmq::codec::{Incoming, Outgoing, ZmtpCodec, ZmtpError};
use crate::zmq::handshake::{self, Role};

/// Largest message accepted from a server.
const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Time the server gets to finish the handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const DEALER: Role = Role {
    ours: "DEALER",
    peers: &["ROUTER", "REP", "DEALER"],
};
const SUB: Role = Role {
    ours: "SUB",
    peers: &["PUB", "XPUB"],
};

fn io_error(e: ZmtpError) -> io::Error {
    match e {
        ZmtpError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

async fn connect(
    addr: impl ToSocketAddrs,
    role: Role,
) -> Result<
    (
        FramedRead<tokio::net::tcp::OwnedReadHalf, ZmtpCodec>,
        FramedWrite<OwnedWriteHalf, ZmtpCodec>,
    ),
    ClientError,
> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let mut read = FramedRead::new(r, ZmtpCodec::new(MAX_MESSAGE_BYTES));
    let mut write = FramedWrite::new(w, ZmtpCodec::new(MAX_MESSAGE_BYTES));
    handshake::run(&mut read, &mut write, role, HANDSHAKE_TIMEOUT)
        .await
        .map_err(io_error)?;
    Ok((read, write))
}

/// The subscriptions of a SUB connection made by
/// [`FrameConn::connect_zmq_with_sub`]. Cheap to clone.
#[derive(Clone)]
pub struct ZmqSubscriber {
    write: Arc<Mutex<FramedWrite<OwnedWriteHalf, ZmtpCodec>>>,
}

impl std::fmt::Debug for ZmqSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqSubscriber").finish_non_exhaustive()
    }
}

impl ZmqSubscriber {
    /// Connects to a ZeroMQ publication endpoint (a node's `zmq_xpub`, or
    /// the seeds' proxy) as a SUB socket, for a reader that parses ZMTP
    /// itself (a load generator): the subscriber, the connection's reading
    /// half past the handshake, and the bytes already read from it. Keep the
    /// subscriber: dropping it closes the connection's writing half.
    pub async fn connect_raw(
        addr: impl ToSocketAddrs,
    ) -> Result<
        (
            ZmqSubscriber,
            tokio::net::tcp::OwnedReadHalf,
            bytes::BytesMut,
        ),
        ClientError,
    > {
        let (read, write) = connect(addr, SUB).await?;
        let subscriber = ZmqSubscriber {
            write: Arc::new(Mutex::new(write)),
        };
        let leftover = read.read_buffer().clone();
        Ok((subscriber, read.into_inner(), leftover))
    }

    /// Subscribes to the topics starting with `prefix` (a channel's or a
    /// user's name; `""` is everything), as `zmq_setsockopt(ZMQ_SUBSCRIBE)`.
    pub async fn subscribe(&self, prefix: &str) -> Result<(), ClientError> {
        self.send(1, prefix).await
    }

    /// Cancels one subscription to `prefix`.
    pub async fn unsubscribe(&self, prefix: &str) -> Result<(), ClientError> {
        self.send(0, prefix).await
    }

    async fn send(&self, op: u8, prefix: &str) -> Result<(), ClientError> {
        let mut body = Vec::with_capacity(1 + prefix.len());
        body.push(op);
        body.extend_from_slice(prefix.as_bytes());
        self.write
            .lock()
            .await
            .send(Outgoing::Message(vec![Bytes::from(body)]))
            .await
            .map_err(|e| ClientError::from(io_error(e)))
    }
}

impl FrameConn {
    /// Connects to a ZeroMQ request endpoint (a node's `zmq_router`, or the
    /// seeds' broker) as a DEALER: each body goes out behind an empty
    /// delimiter frame, as a REQ socket sends it, and replies come back
    /// without it. Pipelining works (replies are matched by `id`).
    pub async fn connect_zmq(addr: impl ToSocketAddrs) -> Result<FrameConn, ClientError> {
        let (read, write) = connect(addr, DEALER).await?;
        Ok(FrameConn::from_parts(
            dealer_sink(write),
            dealer_stream(read),
        ))
    }

    /// [`FrameConn::connect_zmq`] to `req_addr`, and a SUB connection to
    /// `sub_addr` whose publications come in among the replies as pushes
    /// (`{"topic": <frame 1>, "data": <frame 2>}` in `codec`, which a
    /// [`Client`](super::Client) of that codec hands to its pushes). Choose
    /// topics with the returned [`ZmqSubscriber`].
    pub async fn connect_zmq_with_sub(
        req_addr: impl ToSocketAddrs,
        sub_addr: impl ToSocketAddrs,
        codec: Codec,
    ) -> Result<(FrameConn, ZmqSubscriber), ClientError> {
        let (read, write) = connect(req_addr, DEALER).await?;
        let (sub_read, sub_write) = connect(sub_addr, SUB).await?;
        let pushes = sub_read.filter_map(move |item| {
            futures::future::ready(match item {
                Ok(Incoming::Message(parts)) => publication(&parts, codec).map(Ok),
                Ok(_) => None,
                Err(e) => Some(Err(io_error(e))),
            })
        });
        let incoming = futures::stream::select(dealer_stream(read), pushes);
        let subscriber = ZmqSubscriber {
            write: Arc::new(Mutex::new(sub_write)),
        };
        Ok((
            FrameConn::from_parts(dealer_sink(write), Box::pin(incoming)),
            subscriber,
        ))
    }
}

fn dealer_sink(write: FramedWrite<OwnedWriteHalf, ZmtpCodec>) -> super::FrameSink {
    Box::pin(write.sink_map_err(io_error).with(|body: Bytes| {
        futures::future::ready(Ok::<_, io::Error>(Outgoing::Message(vec![
            Bytes::new(),
            body,
        ])))
    }))
}

fn dealer_stream(
    read: FramedRead<tokio::net::tcp::OwnedReadHalf, ZmtpCodec>,
) -> super::FrameStream {
    Box::pin(read.filter_map(|item| {
        futures::future::ready(match item {
            // The reply is the last frame, behind the envelope.
            Ok(Incoming::Message(mut parts)) => parts.pop().map(Ok),
            Ok(_) => None,
            Err(e) => Some(Err(io_error(e))),
        })
    }))
}

/// A SUB message `[topic, MessagePack body]` as a push envelope in
/// `codec`; `None` (skipped) for any other shape.
fn publication(parts: &[Bytes], codec: Codec) -> Option<Bytes> {
    let [topic, body] = parts else {
        return None;
    };
    let data: Value = rmp_serde::from_slice(body).ok()?;
    let topic = String::from_utf8_lossy(topic);
    codec
        .encode(&serde_json::json!({"topic": topic, "data": data}))
        .ok()
}
