//! The WebSocket face of the RPC service: `GET /ws` upgraded to a WebSocket
//! (RFC 6455, through hyper's upgrade and tokio-tungstenite).
//!
//! Each text message (JSON) or binary message (MessagePack) is one RPC body,
//! handled by the node's [`RpcProtocol`] exactly as a frame on the RPC
//! listener; the reply goes back as a message of the same kind. Pushes
//! (chat publications) go out as JSON text messages. Requests run
//! concurrently, so replies may come out of order: `id` matches them.
//! A message longer than the RPC service's `max_frame_bytes` closes the
//! socket (code 1009). When `closing` is cancelled (the node shuts down) the
//! socket stops reading, sends the replies of requests in flight, and closes
//! with code 1001 (going away).
//!
//! A WebSocket upgraded on one of the node's HTTP listeners stays that
//! connection's: its connection actor lives, and holds its place under the
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
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
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

/// The upgraded protocols (WebSockets) of one HTTP connection, served after
/// hyper hands the connection over: the connection's actor waits for them,
/// so an upgraded connection still counts as one. Put in the extensions of
/// a request that asks for an upgrade.
#[derive(Clone, Default)]
pub(crate) struct Upgrades(Arc<std::sync::Mutex<Vec<Upgraded>>>);

struct Upgraded {
    task: tokio::task::JoinHandle<()>,
    /// Closes it (drain).
    close: CancellationToken,
}

impl Upgrades {
    fn add(&self, task: tokio::task::JoinHandle<()>, close: CancellationToken) {
        if let Ok(mut v) = self.0.lock() {
            v.push(Upgraded { task, close });
        }
    }

    /// Waits until every upgraded protocol has ended; when `draining` is
    /// cancelled first, closes them and waits for that. Dropped before the
    /// end (the connection actor killed), it aborts them.
    pub(crate) async fn finish(&self, draining: &CancellationToken) {
        let upgraded = match self.0.lock() {
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

#[async_trait::async_trait]
impl Handler for WsHandler {
    async fn call(&self, mut req: Request<Body>) -> Response<Body> {
        let rpc = self.rpc.clone();
        let closing = self.closing.clone();
        {
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
            let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
                return reply(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
            };
            let accept = derive_accept_key(key.as_bytes());
            let Ok(accept) = HeaderValue::from_str(&accept) else {
                return reply(StatusCode::INTERNAL_SERVER_ERROR, "bad accept key\n");
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            // Closed by the node's shutdown, or by this connection's drain.
            let closing = closing.child_token();
            let close = closing.clone();
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
                        serve(ws, rpc, closing).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
                }
            });
            match req.extensions().get::<Upgrades>() {
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
}

/// A push as the text of a WebSocket message (JSON, encoded once per push
/// and shared with the other subscribers).
fn push_text(rpc: &RpcProtocol, push: &Push) -> Option<String> {
    let body = rpc.encode_push(push, crate::rpc::Encoding::Json)?;
    String::from_utf8(body.to_vec()).ok()
}

/// Serves one upgraded WebSocket until the peer closes it.
async fn serve<S>(ws: WebSocketStream<S>, rpc: Arc<RpcProtocol>, closing: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (push_tx, mut push_rx) = crate::rpc::push::channel(rpc.settings().push_queue);
    let conn = rpc.open_message_connection(None, push_tx);
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(OUT_QUEUE);
    let going_away = closing.clone();
    let rpc_for_pushes = rpc.clone();
    let writer = tokio::spawn(async move {
        let mut pushes_open = true;
        loop {
            let msg = tokio::select! {
                m = out_rx.recv() => match m { Some(m) => m, None => break },
                p = push_rx.recv(), if pushes_open => match p {
                    Some(batch) => {
                        // One message per push, flushed once for the batch.
                        let mut sent = true;
                        for p in &batch {
                            if let Some(text) = push_text(&rpc_for_pushes, p) {
                                if sink.feed(Message::text(text)).await.is_err() {
                                    sent = false;
                                    break;
                                }
                            }
                        }
                        if !sent || sink.flush().await.is_err() {
                            break;
                        }
                        continue;
                    }
                    None => {
                        pushes_open = false;
                        continue;
                    }
                },
            };
            if sink.send(msg).await.is_err() {
                break;
            }
        }
        if going_away.is_cancelled() {
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "the server is shutting down".into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    });
    loop {
        let msg = tokio::select! {
            m = stream.next() => match m {
                Some(m) => m,
                None => break,
            },
            _ = closing.cancelled() => break,
        };
        let (body, binary) = match msg {
            Ok(Message::Text(t)) => (bytes::Bytes::from(t), false),
            Ok(Message::Binary(b)) => (b, true),
            Ok(Message::Ping(p)) => {
                let _ = out_tx.send(Message::Pong(p)).await;
                continue;
            }
            Ok(Message::Close(_)) => break,
            Err(e) => {
                tracing::debug!(error = %e, "websocket closed");
                break;
            }
            Ok(_) => continue,
        };
        let rpc = rpc.clone();
        let cx = conn.context().clone();
        let out = out_tx.clone();
        tokio::spawn(async move {
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
        });
    }
    drop(out_tx);
    drop(conn);
    let _ = writer.await;
}
