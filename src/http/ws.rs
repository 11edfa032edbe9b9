//! The WebSocket face of the RPC service: `GET /ws` upgraded to a WebSocket
//! (RFC 6455, through hyper's upgrade and tokio-tungstenite).
//!
//! Each text message (JSON) or binary message (MessagePack) is one RPC body,
//! handled by the node's [`RpcProtocol`] exactly as a frame on the RPC
//! listener; the reply goes back as a message of the same kind. Pushes
//! (chat publications) go out in the encoding of the socket's latest
//! request, as on the RPC listener: JSON text messages until a MessagePack
//! request comes, MessagePack binary messages after it, until a JSON
//! request comes. Requests run
//! concurrently, so replies may come out of order: `id` matches them.
//!
//! Limits:
//! * at most `[rpc] max_in_flight` requests of one socket are in progress
//!   (a reply waiting for the socket counts); at the bound the socket is
//!   not read until one ends (back-pressure, as on the RPC listener);
//! * when the socket ends (closed, reset, cut), its requests in progress
//!   are cancelled: a request waiting for a compute worker never takes one;
//! * a handshake whose `Sec-WebSocket-Key` is not the base64 of 16 bytes is
//!   refused (400);
//! * a message longer than the RPC service's `max_frame_bytes` closes the
//!   socket with code 1009 (message too big);
//! * on an HTTP listener, a socket from which nothing has come for
//!   `[http] keep_alive_interval_ms` is pinged, and closed (code 1000)
//!   when nothing, not even the pong, comes within `keep_alive_timeout_ms`;
//!   a peer that takes nothing of what is written for
//!   `write_stall_timeout_ms` is cut.
//!
//! When `closing` is cancelled (the node shuts down, or the listener
//! drains) the socket stops reading, sends a close frame with code 1001
//! (going away), and ends.
//!
//! A WebSocket upgraded on one of the node's HTTP listeners stays that
//! connection's: its connection task lives, and holds its place under the
//! listener's `max_connections`, until the WebSocket closes; the listener's
//! drain closes it (code 1001) as it closes the node's.
//!
//! ```no_run
//! # async fn demo(rpc: std::sync::Arc<corral::rpc::RpcProtocol>) {
//! use corral::http::{websocket_handler, Routes};
//! let closing = tokio_util::sync::CancellationToken::new();
//! let routes = Routes::new().route("/ws", websocket_handler(rpc, closing.clone()));
//! # }
//! ```

use crate::util::AbortOnDrop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::routes::{full, Body, Handler};
use crate::rpc::{Push, RpcProtocol};

/// How many outgoing messages (replies and pushes) may wait for the socket.
const OUT_QUEUE: usize = 256;

/// The keep-alive of a WebSocket: ping after `interval` without a frame
/// from the peer (never if `None`), close when nothing has come `timeout`
/// after the ping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeepAlive {
    pub(crate) interval: Option<Duration>,
    pub(crate) timeout: Duration,
}

impl Default for KeepAlive {
    /// The `[http]` defaults.
    fn default() -> Self {
        let s = super::HttpSettings::default();
        KeepAlive {
            interval: s.keep_alive_interval(),
            timeout: s.keep_alive_timeout(),
        }
    }
}

/// The upgraded protocols (WebSockets) of one HTTP connection, served after
/// hyper hands the connection over: the connection's task waits for them,
/// so an upgraded connection still counts as one. Put in the extensions of
/// a request that asks for an upgrade, with the connection's keep-alive.
#[derive(Clone, Default)]
pub(crate) struct Upgrades {
    tasks: Arc<std::sync::Mutex<Vec<Upgraded>>>,
    keep_alive: KeepAlive,
}

struct Upgraded {
    task: tokio::task::JoinHandle<()>,
    /// Closes it (drain).
    close: CancellationToken,
}

impl Upgrades {
    pub(crate) fn new(keep_alive: KeepAlive) -> Self {
        Upgrades {
            tasks: Arc::default(),
            keep_alive,
        }
    }

    fn add(&self, task: tokio::task::JoinHandle<()>, close: CancellationToken) {
        if let Ok(mut v) = self.tasks.lock() {
            v.push(Upgraded { task, close });
        }
    }

    /// Waits until every upgraded protocol has ended; when `draining` is
    /// cancelled first, closes them and waits for that. Dropped before the
    /// end (the connection's task aborted), it aborts them.
    pub(crate) async fn finish(&self, draining: &CancellationToken) {
        let upgraded = match self.tasks.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => return,
        };
        if upgraded.is_empty() {
            return;
        }
        let closers: Vec<CancellationToken> = upgraded.iter().map(|u| u.close.clone()).collect();
        let tasks: Vec<AbortOnDrop> = upgraded
            .into_iter()
            .map(|u| AbortOnDrop::new(u.task))
            .collect();
        let all = futures::future::join_all(tasks);
        tokio::pin!(all);
        tokio::select! {
            _ = all.as_mut() => {}
            _ = draining.cancelled() => {
                closers.iter().for_each(CancellationToken::cancel);
                all.await;
            }
        }
    }
}

/// A route handler that upgrades requests to WebSockets served by `rpc`;
/// cancelling `closing` closes them all (see the module docs).
pub fn websocket_handler(rpc: Arc<RpcProtocol>, closing: CancellationToken) -> impl Handler {
    WsHandler { rpc, closing }
}

struct WsHandler {
    rpc: Arc<RpcProtocol>,
    closing: CancellationToken,
}

fn reply(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r
}

fn header_has(req: &Request<Body>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// RFC 6455 §4.2.1: the key is the base64 of 16 bytes.
fn valid_key(key: &HeaderValue) -> bool {
    data_encoding::BASE64
        .decode(key.as_bytes())
        .is_ok_and(|k| k.len() == 16)
}

#[async_trait::async_trait]
impl Handler for WsHandler {
    async fn call(&self, mut req: Request<Body>) -> Response<Body> {
        if req.method() != Method::GET
            || !header_has(&req, UPGRADE, "websocket")
            || !header_has(&req, CONNECTION, "upgrade")
        {
            return reply(
                StatusCode::UPGRADE_REQUIRED,
                "this endpoint speaks WebSocket only\n",
            );
        }
        if req
            .headers()
            .get(SEC_WEBSOCKET_VERSION)
            .map(|v| v.as_bytes())
            != Some(b"13")
        {
            let mut r = reply(StatusCode::BAD_REQUEST, "unsupported WebSocket version\n");
            r.headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return r;
        }
        let mut keys = req.headers().get_all(SEC_WEBSOCKET_KEY).iter();
        let key = match (keys.next(), keys.next()) {
            (Some(key), None) if valid_key(key) => key,
            (None, _) => return reply(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n"),
            _ => return reply(StatusCode::BAD_REQUEST, "invalid Sec-WebSocket-Key\n"),
        };
        let accept = derive_accept_key(key.as_bytes());
        let Ok(accept) = HeaderValue::from_str(&accept) else {
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "bad accept key\n");
        };
        let upgrades = req.extensions().get::<Upgrades>().cloned();
        let keep_alive = upgrades.as_ref().map(|u| u.keep_alive).unwrap_or_default();
        let on_upgrade = hyper::upgrade::on(&mut req);
        // Closed by the node's shutdown, or by this connection's drain.
        let closing = self.closing.child_token();
        let close = closing.clone();
        let rpc = self.rpc.clone();
        let task = tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let max = rpc.settings().max_frame_bytes;
                    let config = WebSocketConfig::default()
                        .max_message_size(Some(max))
                        .max_frame_size(Some(max));
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await;
                    serve(ws, rpc, closing, keep_alive).await;
                }
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        });
        match upgrades {
            Some(upgrades) => upgrades.add(task, close),
            // Not on a corral HTTP listener: the task runs on its own.
            None => drop(task),
        }
        let mut r = Response::new(super::routes::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = r.headers_mut();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(SEC_WEBSOCKET_ACCEPT, accept);
        r
    }
}

/// A push as a WebSocket message: JSON text, or MessagePack binary when
/// `binary` (encoded once per push and encoding, shared with the other
/// subscribers).
fn push_message(rpc: &RpcProtocol, push: &Push, binary: bool) -> Option<Message> {
    if binary {
        let body = rpc.encode_push(push, crate::rpc::Encoding::MsgPack)?;
        return Some(Message::binary(bytes::Bytes::copy_from_slice(body)));
    }
    let body = rpc.encode_push(push, crate::rpc::Encoding::Json)?;
    String::from_utf8(body.to_vec()).ok().map(Message::text)
}

fn close_frame(code: CloseCode, reason: &'static str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

/// Writes replies (and the final close frame) from `out`, and pushes from
/// `pushes`, to `sink`; ends after a close frame or when the socket fails
/// (then `failed` is cancelled).
async fn write<S>(
    mut sink: S,
    mut out: mpsc::Receiver<Message>,
    mut pushes: crate::rpc::PushReceiver,
    rpc: Arc<RpcProtocol>,
    failed: CancellationToken,
    binary: Arc<AtomicBool>,
) where
    S: futures::Sink<Message> + Unpin,
{
    let mut pushes_open = true;
    loop {
        let msg = tokio::select! {
            biased;
            m = out.recv() => match m { Some(m) => m, None => break },
            p = pushes.recv(), if pushes_open => match p {
                Some(batch) => {
                    // One message per push, flushed once for the batch.
                    let mut sent = true;
                    let binary = binary.load(Ordering::Relaxed);
                    for p in &batch {
                        if let Some(msg) = push_message(&rpc, p, binary) {
                            if sink.feed(msg).await.is_err() {
                                sent = false;
                                break;
                            }
                        }
                    }
                    if !sent || sink.flush().await.is_err() {
                        failed.cancel();
                        return;
                    }
                    continue;
                }
                None => {
                    pushes_open = false;
                    continue;
                }
            },
        };
        let last = matches!(msg, Message::Close(_));
        if sink.send(msg).await.is_err() {
            failed.cancel();
            return;
        }
        if last {
            break;
        }
    }
    let _ = sink.close().await;
}

/// One request, run in a task of its own; its reply goes to `out`.
fn spawn_request(
    rpc: &Arc<RpcProtocol>,
    cx: &Arc<crate::rpc::CallContext>,
    out: &mpsc::Sender<Message>,
    body: bytes::Bytes,
    binary: bool,
) -> AbortOnDrop {
    let (rpc, cx, out) = (rpc.clone(), cx.clone(), out.clone());
    AbortOnDrop::new(tokio::spawn(async move {
        let Some(reply) = rpc.handle_message(body, &cx).await else {
            return;
        };
        let msg = if binary {
            Message::binary(reply)
        } else {
            match String::from_utf8(reply.to_vec()) {
                Ok(text) => Message::text(text),
                // A JSON request that was answered in MessagePack (an
                // undecodable body): send the bytes as they are.
                Err(_) => Message::binary(reply),
            }
        };
        let _ = out.send(msg).await;
    }))
}

/// Serves one upgraded WebSocket until the peer closes it, it fails, it
/// idles out (no answer to a ping), or `closing` is cancelled.
async fn serve<S>(
    ws: WebSocketStream<S>,
    rpc: Arc<RpcProtocol>,
    closing: CancellationToken,
    keep_alive: KeepAlive,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    let (push_tx, push_rx) = crate::rpc::push::channel(rpc.settings().push_queue);
    let conn = rpc.open_message_connection(None, push_tx);
    let (out_tx, out_rx) = mpsc::channel::<Message>(OUT_QUEUE);
    let failed = CancellationToken::new();
    // Whether the latest request was binary (MessagePack): pushes follow.
    let binary_pushes = Arc::new(AtomicBool::new(false));
    let writer = AbortOnDrop::new(tokio::spawn(write(
        sink,
        out_rx,
        push_rx,
        rpc.clone(),
        failed.clone(),
        binary_pushes.clone(),
    )));
    let max_in_flight = rpc.settings().max_in_flight.max(1);
    let mut running = FuturesUnordered::<AbortOnDrop>::new();
    // The keep-alive: when the peer was last heard from, and when a ping
    // went unanswered since.
    let mut heard = Instant::now();
    let mut pinged: Option<Instant> = None;
    let far = Duration::from_secs(86_400 * 365);
    let alarm = tokio::time::sleep(keep_alive.interval.unwrap_or(far));
    tokio::pin!(alarm);
    let close = loop {
        tokio::select! {
            biased;
            _ = closing.cancelled() => {
                break close_frame(CloseCode::Away, "the server is shutting down");
            }
            _ = failed.cancelled() => break None,
            Some(()) = running.next() => {}
            m = stream.next(), if running.len() < max_in_flight => {
                heard = Instant::now();
                pinged = None;
                let (body, binary) = match m {
                    Some(Ok(Message::Text(t))) => (bytes::Bytes::from(t), false),
                    Some(Ok(Message::Binary(b))) => (b, true),
                    // tungstenite answers pings (and the closing handshake).
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Ok(_)) => continue,
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                        break close_frame(CloseCode::Size, "message too big");
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket closed");
                        break None;
                    }
                };
                if let Some(enc) = crate::rpc::Encoding::detect(&body) {
                    let msgpack = enc == crate::rpc::Encoding::MsgPack;
                    binary_pushes.store(msgpack, Ordering::Relaxed);
                }
                running.push(spawn_request(&rpc, conn.context(), &out_tx, body, binary));
            }
            () = alarm.as_mut(), if keep_alive.interval.is_some() => {
                let now = Instant::now();
                let interval = keep_alive.interval.unwrap_or(far);
                if running.len() >= max_in_flight {
                    // Not read because of the bound: not the peer's silence.
                    (heard, pinged) = (now, None);
                }
                match pinged {
                    Some(at) if now >= at + keep_alive.timeout => {
                        tracing::debug!("websocket peer answered no ping; closing");
                        break close_frame(CloseCode::Normal, "no answer to ping");
                    }
                    Some(at) => alarm.as_mut().reset(at + keep_alive.timeout),
                    None if now >= heard + interval => {
                        // A full queue: the write-stall timeout watches it.
                        let _ = out_tx.try_send(Message::Ping(bytes::Bytes::new()));
                        pinged = Some(now);
                        alarm.as_mut().reset(now + keep_alive.timeout);
                    }
                    None => alarm.as_mut().reset(heard + interval),
                }
            }
        }
    };
    // The requests of a socket that is gone are cancelled.
    drop(running);
    if let Some(frame) = close {
        // After the replies already queued; not waited on past the
        // keep-alive timeout (the write-stall timeout cuts a peer that
        // does not read).
        let closed = out_tx.send(Message::Close(Some(frame)));
        let _ = tokio::time::timeout(keep_alive.timeout, closed).await;
    }
    drop(out_tx);
    drop(conn);
    let _ = tokio::time::timeout(keep_alive.timeout, writer).await;
}
