//! The WebSocket endpoint `/ws` on the HTTP listener: each message is one
//! RPC body, answered in the same encoding; bad bodies get error replies and
//! the socket stays open; plain HTTP requests to `/ws` are refused.

mod support {
    pub(crate) mod guard;
    pub(crate) mod raw;
    pub(crate) mod raw_get;
    pub(crate) mod read_response;
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
use support::read_response::read_response;

async fn start() -> (Node, std::net::SocketAddr, tempfile::TempDir) {
    start_with(|_| {}).await
}

/// As [`start`], with `tune` applied to the config last.
async fn start_with(
    tune: impl FnOnce(&mut Config),
) -> (Node, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Config::embedded_default();
    // No chat services: no store under ./data shared by tests.
    c.chat.enabled = false;
    let mut l = ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0);
    l.drain_timeout_ms = 1_000;
    c.listeners = vec![l];
    c.http.docroot = dir.path().to_path_buf();
    // Short, so that the test shows an upgraded socket outlives it.
    c.http.idle_timeout_ms = 300;
    tune(&mut c);
    let node = Node::builder(c).start().await.expect("node starts");
    let addr = node.local_addr("http").expect("http address");
    (node, addr, dir)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket on `/ws` and checks that it answers a ping.
async fn open_and_ping(addr: std::net::SocketAddr) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("websocket handshake");
    ws.send(Message::text(r#"{"id":1,"service":"ping","data":{}}"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut ws).await["id"], 1);
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

#[tokio::test]
async fn json_and_msgpack_calls_over_websocket() {
    guarded(async {
        let (node, addr, _dir) = start().await;
        let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("websocket handshake");
        assert_eq!(resp.status(), 101);

        ws.send(Message::text(r#"{"id":1,"service":"ping","data":{}}"#))
            .await
            .expect("send");
        let r = next_text(&mut ws).await;
        assert_eq!(r["id"], 1);
        assert_eq!(r["service"], "ping");
        assert!(r.get("data").is_some(), "{r}");

        ws.send(Message::text(
            json!({"id": "e", "service": "echo", "data": {"payload": "héllo"}}).to_string(),
        ))
        .await
        .expect("send");
        let r = next_text(&mut ws).await;
        assert_eq!(r["id"], "e");
        assert_eq!(r["data"]["payload"], "héllo");

        // Bad JSON: BAD_REQUEST, and the socket stays usable.
        ws.send(Message::text("{not json")).await.expect("send");
        let r = next_text(&mut ws).await;
        assert_eq!(r["error"]["code"], "BAD_REQUEST", "{r}");

        // An unknown service is an error reply too.
        ws.send(Message::text(r#"{"id":2,"service":"nope","data":{}}"#))
            .await
            .expect("send");
        let r = next_text(&mut ws).await;
        assert_eq!(r["error"]["code"], "UNKNOWN_SERVICE", "{r}");

        // Longer than the HTTP idle timeout: the upgraded socket is not idle-closed.
        tokio::time::sleep(Duration::from_millis(800)).await;

        // MessagePack in a binary message, answered in MessagePack.
        let req = rmp_serde::to_vec_named(&json!({"id": 3, "service": "echo", "data": {"n": 7}}))
            .expect("msgpack");
        ws.send(Message::binary(req)).await.expect("send");
        let reply = loop {
            match ws.next().await.expect("message").expect("ok") {
                Message::Binary(b) => break b,
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        };
        let r: Value = rmp_serde::from_slice(&reply).expect("msgpack reply");
        assert_eq!(r["id"], 3);
        assert_eq!(r["data"]["n"], 7);

        // Pipelined: every reply comes back, matched by id.
        for i in 0..20 {
            ws.send(Message::text(
                json!({"id": i, "service": "echo", "data": {"i": i}}).to_string(),
            ))
            .await
            .expect("send");
        }
        let mut seen = Vec::new();
        for _ in 0..20 {
            let r = next_text(&mut ws).await;
            assert_eq!(r["id"], r["data"]["i"], "{r}");
            seen.push(r["id"].as_i64().expect("int id"));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());

        ws.close(None).await.expect("close");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn plain_http_to_ws_is_refused() {
    guarded(async {
        let (node, addr, _dir) = start().await;
        let resp = reqwest::get(format!("http://{addr}/ws"))
            .await
            .expect("request");
        assert_eq!(resp.status(), 426);
        // Other paths are unaffected.
        let resp = reqwest::get(format!("http://{addr}/health"))
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn chat_page_is_served_at_chat() {
    guarded(async {
        let (node, addr, _dir) = start().await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let r = http
            .get(format!("http://{addr}/chat"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 308);
        assert_eq!(r.headers()["location"], "/chat/");
        for (path, mime, needle) in [
            ("/chat/", "text/html", "<script src=\"chat.js\">"),
            ("/chat/index.html", "text/html", "id=\"login-form\""),
            ("/chat/chat.js", "text/javascript", "\"/ws\""),
            ("/chat/chat.css", "text/css", "#messages"),
        ] {
            let r = http
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), 200, "{path}");
            let ct = r.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .to_string();
            assert!(ct.starts_with(mime), "{path}: {ct}");
            let body = r.text().await.expect("body");
            assert!(body.contains(needle), "{path} lacks {needle}");
        }
        let r = http
            .get(format!("http://{addr}/chat/nope.js"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 404);
        let r = http
            .post(format!("http://{addr}/chat/"))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 405);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_websockets_going_away() {
    guarded(async {
        let (node, addr, _dir) = start().await;
        let mut ws = open_and_ping(addr).await;
        node.shutdown().await;
        let close = loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        let frame = close.expect("a close code");
        assert_eq!(u16::from(frame.code), 1001);
    })
    .await;
}

#[tokio::test]
async fn a_message_over_the_frame_limit_closes_the_socket() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Config::embedded_default();
        // No chat services: no store under ./data shared by tests.
        c.chat.enabled = false;
        c.listeners = vec![ListenerConfig::new(
            "http",
            Transport::Tcp,
            ProtocolKind::Http,
            0,
        )];
        c.http.docroot = dir.path().to_path_buf();
        c.rpc.max_frame_bytes = 1024;
        let node = Node::builder(c).start().await.expect("node starts");
        let addr = node.local_addr("http").expect("http address");
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("websocket handshake");
        let big = format!(
            r#"{{"id":1,"service":"echo","data":{{"payload":"{}"}}}}"#,
            "x".repeat(4096)
        );
        let _ = ws.send(Message::text(big)).await;
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    if let Some(f) = frame {
                        assert_eq!(u16::from(f.code), 1009);
                    }
                    break;
                }
                Some(Ok(Message::Text(t))) => panic!("answered a too large message: {t}"),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => break,
            }
        }
        node.shutdown().await;
    })
    .await;
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

/// An upgraded connection is still the listener's: it counts toward
/// `max_connections` until the WebSocket closes, and a client past the
/// limit waits for it.
#[tokio::test]
async fn a_websocket_holds_its_place_under_max_connections() {
    guarded(async {
        let (node, addr, _dir) = start_with(|c| {
            c.listeners[0].max_connections = 2;
            // The kept-alive connection below must not be closed for idling.
            c.http.idle_timeout_ms = 0;
        })
        .await;
        let mut ws = open_and_ping(addr).await;
        // The WebSocket and the request asking.
        assert_eq!(connections(addr).await, 2);

        // At the limit (the WebSocket and a kept-alive connection), a third
        // client is not served until the WebSocket closes.
        let mut held = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut held, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (first, _) = read_response(&mut held).await.expect("served");
        assert!(first.starts_with("http/1.1 200"), "{first}");
        let mut third = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("write");
            read_response(&mut s).await
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut third)
                .await
                .is_err(),
            "a client past max_connections was served while the WebSocket was open"
        );
        ws.close(None).await.expect("close");
        let (status, _) = third
            .await
            .expect("joined")
            .expect("served once the WebSocket closed");
        assert!(status.starts_with("http/1.1 200"), "{status}");
        drop(held);
        node.shutdown().await;
    })
    .await;
}
