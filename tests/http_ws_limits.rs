//! The WebSocket endpoint `/ws` under a hostile or vanished client: at most
//! `[rpc] max_in_flight` requests in progress per socket, then it stops
//! reading (back-pressure); the work of a socket that is gone is dropped
//! and does not hold the compute pool; a silent socket is pinged and closed;
//! an invalid handshake key is refused (400); an oversize message closes
//! with 1009; a node shutting down closes a subscribed socket with 1001.
//!
//! Timeouts here are upper bounds on "eventually", not measurements.

mod support {
    pub(crate) mod guard;
    pub(crate) mod raw;
    pub(crate) mod raw_get;
}

use std::time::Duration;

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use support::guard::guarded;
use support::raw_get::raw_get;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A node with one HTTP listener on a free port; chat off unless `tune`
/// turns it on (then its store is in the returned directory).
async fn start_with(
    tune: impl FnOnce(&mut Config),
) -> (Node, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Config::embedded_default();
    c.chat.enabled = false;
    c.node.data_dir = dir.path().join("data");
    let mut l = ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0);
    l.drain_timeout_ms = 2_000;
    c.listeners = vec![l];
    c.http.docroot = dir.path().to_path_buf();
    tune(&mut c);
    let node = Node::builder(c).start().await.expect("node starts");
    let addr = node.local_addr("http").expect("http address");
    (node, addr, dir)
}

async fn connect(addr: std::net::SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("websocket handshake");
    ws
}

async fn next_text(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await.expect("a message").expect("not an error") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON reply"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

async fn call(ws: &mut Ws, id: u64, service: &str, data: Value) -> Value {
    ws.send(Message::text(
        json!({"id": id, "service": service, "data": data}).to_string(),
    ))
    .await
    .expect("send");
    let r = next_text(ws).await;
    assert_eq!(r["id"], id, "{r}");
    r
}

/// The listener's open connections, as `/health` reports them (the request
/// asking is one of them).
async fn connections(addr: std::net::SocketAddr) -> u64 {
    let resp = raw_get(addr, "/health").await;
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(body).expect("health JSON");
    v["listeners"]["http"]["connections"]
        .as_u64()
        .expect("a count")
}

/// A client that sends echo requests and never reads is stopped by
/// back-pressure: after a bounded number of bytes its sends block, instead
/// of the node reading (and buffering) everything it is sent.
#[tokio::test]
async fn a_client_that_never_reads_is_held_back() {
    guarded(async {
        let (node, addr, _dir) = start_with(|c| c.rpc.max_in_flight = 4).await;
        let mut ws = connect(addr).await;
        let payload = "x".repeat(16 * 1024);
        let msg = json!({"id": 1, "service": "echo", "data": {"payload": payload}}).to_string();
        // 64 MiB offered; the node may take in its bounded queues and the
        // sockets' buffers, far less than that.
        let mut sent = 0usize;
        let mut held = false;
        for _ in 0..4096 {
            match tokio::time::timeout(Duration::from_secs(5), ws.send(Message::text(msg.clone())))
                .await
            {
                Ok(Ok(())) => sent += msg.len(),
                // Cut off (a write stall): held back as well.
                Ok(Err(_)) => {
                    held = true;
                    break;
                }
                Err(_) => {
                    held = true;
                    break;
                }
            }
        }
        assert!(
            held,
            "the node read all {sent} bytes of a client that never reads"
        );
        // The node still serves others.
        let mut other = connect(addr).await;
        assert_eq!(call(&mut other, 7, "ping", json!({})).await["id"], 7);
        drop(ws);
        node.shutdown().await;
    })
    .await;
}

/// Compute requests of a socket that went away do not keep the compute
/// pool busy: a compute on another socket is answered soon after.
#[tokio::test]
async fn the_work_of_a_closed_socket_is_dropped() {
    guarded(async {
        let (node, addr, _dir) = start_with(|c| {
            c.rpc.compute_workers = 1;
            c.rpc.max_in_flight = 4;
        })
        .await;
        let mut ws = connect(addr).await;
        // One compute of this size takes a while in a debug build; a
        // thousand of them, minutes.
        let n = 20_000_000u64;
        for i in 0..1000u64 {
            let m = json!({"id": i, "service": "compute", "data": {"n": n}}).to_string();
            ws.feed(Message::text(m)).await.expect("queued");
        }
        ws.flush().await.expect("sent");
        // Gone without a closing handshake.
        drop(ws);
        let mut other = connect(addr).await;
        let answered = tokio::time::timeout(
            Duration::from_secs(30),
            call(&mut other, 1, "compute", json!({"n": 1})),
        )
        .await;
        let r = answered.expect("a compute on another socket waited behind a closed socket's work");
        assert_eq!(r["data"]["result"], 0, "{r}");
        node.shutdown().await;
    })
    .await;
}

/// A socket whose peer answers no ping is closed; one that answers stays.
#[tokio::test]
async fn a_silent_websocket_is_pinged_and_closed() {
    guarded(async {
        let (node, addr, _dir) = start_with(|c| {
            c.http.keep_alive_interval_ms = 200;
            c.http.keep_alive_timeout_ms = 200;
        })
        .await;
        // Never polled: it answers no ping.
        let silent = connect(addr).await;
        let mut live = connect(addr).await;
        let reader = tokio::spawn(async move {
            // Reading answers the pings; returns when the socket ends.
            while let Some(Ok(m)) = live.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
            live
        });
        // The silent one goes; the live one stays (2 = it and the asker).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let n = connections(addr).await;
            if n == 2 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a WebSocket that answers no ping is still open ({n} connections)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Several ping intervals later the live one still works.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert!(
            !reader.is_finished(),
            "a WebSocket answering pings was closed"
        );
        reader.abort();
        drop(silent);
        node.shutdown().await;
    })
    .await;
}

fn handshake(key: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
}

/// The head of the answer to a handshake with `key`.
async fn first_head(addr: std::net::SocketAddr, key: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(handshake(key).as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn an_invalid_websocket_key_is_refused() {
    guarded(async {
        let (node, addr, _dir) = start_with(|_| {}).await;
        for key in [
            "abc",
            "not base64 at all!!!!!!!",
            // Base64, but of 15 bytes.
            "AAAAAAAAAAAAAAAAAAAA",
            // Base64 of 17 bytes.
            "AAAAAAAAAAAAAAAAAAAAAAA=",
            "",
        ] {
            let reply = first_head(addr, key).await;
            assert!(reply.starts_with("HTTP/1.1 400"), "key {key:?}: {reply}");
        }
        // A valid key (RFC 6455's sample) is upgraded.
        let head = first_head(addr, "dGhlIHNhbXBsZSBub25jZQ==").await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        node.shutdown().await;
    })
    .await;
}

/// A message over `[rpc] max_frame_bytes` closes the socket with 1009.
#[tokio::test]
async fn an_oversize_message_closes_with_1009() {
    guarded(async {
        let (node, addr, _dir) = start_with(|c| c.rpc.max_frame_bytes = 1024).await;
        let mut ws = connect(addr).await;
        let big = json!({"id": 1, "service": "echo", "data": {"payload": "x".repeat(4096)}});
        let _ = ws.send(Message::text(big.to_string())).await;
        let code = loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(Message::Text(t))) => panic!("answered a too large message: {t}"),
                Some(Ok(_)) => continue,
                other => panic!("closed without a close frame: {other:?}"),
            }
        };
        assert_eq!(code, Some(1009));
        node.shutdown().await;
    })
    .await;
}

/// A WebSocket subscribed to a chat channel (the chat holds its push
/// sender) and with requests in progress is closed with 1001 when the node
/// shuts down, not cut by the drain's deadline.
#[tokio::test]
async fn shutdown_closes_a_busy_websocket_going_away() {
    guarded(async {
        let (node, addr, _dir) = start_with(|c| {
            c.chat.enabled = true;
            c.rpc.compute_workers = 1;
        })
        .await;
        let mut ws = connect(addr).await;
        let r = call(&mut ws, 1, "login", json!({"user": "ann"})).await;
        assert!(r.get("error").is_none(), "{r}");
        let r = call(&mut ws, 2, "channel", json!({"channel": "room"})).await;
        assert!(r.get("error").is_none(), "{r}");
        let r = call(&mut ws, 3, "subscribe", json!({"topic": "room"})).await;
        assert!(r.get("error").is_none(), "{r}");
        // Requests in progress (and waiting for the one compute worker)
        // for far longer than the listener's drain timeout.
        for i in 10..60u64 {
            let m = json!({"id": i, "service": "compute", "data": {"n": 20_000_000u64}});
            ws.feed(Message::text(m.to_string())).await.expect("queued");
        }
        ws.flush().await.expect("sent");
        let stopping = tokio::spawn(node.shutdown());
        let code = loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("closed without a close frame: {other:?}"),
            }
        };
        assert_eq!(code, Some(1001));
        stopping.await.expect("shut down");
    })
    .await;
}
