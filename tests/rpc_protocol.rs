//! The RPC protocol over real loopback TCP connections, with a real client.
//!
//! Tests synchronise on events (replies, EOF, task ends, notifications from
//! test services), never on sleeps, and assert no timings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use corral::async_trait;
use corral::metrics::Metrics;
use corral::rpc::{
    CallContext, ConnCtx, ErrorCode, Push, Registry, Request, RpcConnError, RpcProtocol,
    RpcSettings, Service, ServiceError,
};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

type Client = Framed<TcpStream, LengthDelimitedCodec>;
type Server = JoinHandle<Result<(), RpcConnError>>;

/// Waits on a semaphore: requests stay in flight until the test adds permits.
struct Gate {
    permits: Arc<Semaphore>,
    entered: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
    notify: Arc<Notify>,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate {
            permits: Arc::new(Semaphore::new(0)),
            entered: Arc::new(AtomicUsize::new(0)),
            running: Arc::new(AtomicUsize::new(0)),
            max_running: Arc::new(AtomicUsize::new(0)),
            notify: Arc::new(Notify::new()),
        })
    }

    async fn wait_entered(&self, n: usize) {
        loop {
            let notified = self.notify.notified();
            if self.entered.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }
}

#[async_trait]
impl Service for Gate {
    async fn call(&self, req: Request, _: &CallContext) -> Result<Value, ServiceError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
        let permit = self.permits.acquire().await;
        if let Ok(p) = permit {
            p.forget();
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(req.data)
    }
}

/// Fails with the code named in `data.code`.
struct Fail;

#[async_trait]
impl Service for Fail {
    async fn call(&self, req: Request, _: &CallContext) -> Result<Value, ServiceError> {
        let code = req
            .data
            .get("code")
            .and_then(Value::as_str)
            .and_then(ErrorCode::parse)
            .unwrap_or(ErrorCode::Internal);
        Err(ServiceError::new(code, "as asked"))
    }
}

struct Panic;

#[async_trait]
impl Service for Panic {
    async fn call(&self, _: Request, _: &CallContext) -> Result<Value, ServiceError> {
        panic!("service panics on purpose");
    }
}

/// Pushes `data` on topic "t" to the caller, then replies.
struct PushBack;

#[async_trait]
impl Service for PushBack {
    async fn call(&self, req: Request, ctx: &CallContext) -> Result<Value, ServiceError> {
        ctx.pushes()
            .send(Push::new("t", req.data))
            .await
            .map_err(|_| ServiceError::internal("connection gone"))?;
        Ok(json!({"pushed": true}))
    }
}

struct Fixture {
    protocol: RpcProtocol,
    metrics: Arc<Metrics>,
    gate: Arc<Gate>,
}

fn fixture(settings: RpcSettings) -> Fixture {
    let gate = Gate::new();
    let registry = Registry::new()
        .with("gate", gate.clone())
        .with("fail", Arc::new(Fail))
        .with("panic", Arc::new(Panic))
        .with("pushback", Arc::new(PushBack));
    let metrics = Metrics::new();
    Fixture {
        protocol: RpcProtocol::new(settings, metrics.clone(), registry),
        metrics,
        gate,
    }
}

/// A connected client and the task serving it.
async fn connect(p: &RpcProtocol) -> (Client, Server, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect");
    let (stream, peer) = accepted.expect("accept");
    let token = CancellationToken::new();
    let ctx = ConnCtx::new(Some(peer), token.clone());
    let p = p.clone();
    let server = tokio::spawn(async move { p.serve_connection(stream, ctx).await });
    (
        Framed::new(client, LengthDelimitedCodec::new()),
        server,
        token,
    )
}

fn json_body(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("json"))
}

fn mp_body(v: &Value) -> Bytes {
    Bytes::from(rmp_serde::to_vec_named(v).expect("msgpack"))
}

/// The next frame, decoded, with whether it was MessagePack; None at EOF.
async fn recv_any(c: &mut Client) -> Option<(Value, bool)> {
    let frame = match c.next().await? {
        Ok(f) => f,
        Err(e) => {
            eprintln!("client read error: {e}");
            return None;
        }
    };
    let mp = matches!(frame.first(), Some(0x80..=0x8f | 0xde | 0xdf));
    let v = if mp {
        rmp_serde::from_slice(&frame).expect("msgpack reply")
    } else {
        serde_json::from_slice(&frame).expect("json reply")
    };
    Some((v, mp))
}

async fn recv(c: &mut Client) -> Value {
    recv_any(c).await.expect("a reply").0
}

async fn call(c: &mut Client, v: Value) -> Value {
    c.send(json_body(&v)).await.expect("send");
    recv(c).await
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn native_requests_in_both_encodings() {
    let f = fixture(RpcSettings::default());
    let (mut c, _server, _) = connect(&f.protocol).await;

    let r = call(&mut c, json!({"id": 1, "service": "ping", "data": {}})).await;
    assert_eq!(
        r,
        json!({"id": 1, "service": "ping", "data": {"pong": true}})
    );
    let r = call(
        &mut c,
        json!({"id": "e", "service": "echo", "data": {"x": [1, "y"]}}),
    )
    .await;
    assert_eq!(
        r,
        json!({"id": "e", "service": "echo", "data": {"x": [1, "y"]}})
    );
    // Leading whitespace, absent id, absent data.
    c.send(Bytes::from_static(b" \n{\"service\":\"ping\"}"))
        .await
        .expect("send");
    assert_eq!(recv(&mut c).await["id"], Value::Null);

    c.send(mp_body(
        &json!({"id": 9, "service": "echo", "data": {"k": "v"}}),
    ))
    .await
    .expect("send");
    let (r, mp) = recv_any(&mut c).await.expect("reply");
    assert!(mp, "a MessagePack request gets a MessagePack reply");
    assert_eq!(r, json!({"id": 9, "service": "echo", "data": {"k": "v"}}));

    let r = call(
        &mut c,
        json!({"id": 2, "service": "compute", "data": {"n": 1000}}),
    )
    .await;
    assert_eq!(r["data"]["result"], json!(reference_compute(1000)));

    let r = call(&mut c, json!({"id": 3, "service": "services"})).await;
    let names = r["data"]["services"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for n in [
        "compute", "echo", "fail", "gate", "ping", "services", "stats",
    ] {
        assert!(names.contains(&json!(n)), "{n} in {names:?}");
    }
    let r = call(&mut c, json!({"id": 4, "service": "stats"})).await;
    assert_eq!(r["data"]["connections"], json!(1));
    assert!(r["data"]["requests"].as_u64().unwrap_or(0) >= 6);

    let text = f.metrics.render();
    assert!(
        text.contains(r#"corral_rpc_requests_total{outcome="ok",service="ping"} 2"#),
        "{text}"
    );
}

fn reference_compute(n: u64) -> u64 {
    (0..n).fold(0, |acc, i| (acc + (i * i) % 1_000_000_007) % 1_000_000_007)
}

#[tokio::test]
async fn thread_center_compat_in_both_encodings() {
    let f = fixture(RpcSettings {
        compute_max_n: 10_000,
        ..RpcSettings::default()
    });
    let (mut c, _server, _) = connect(&f.protocol).await;
    let cases = [
        (
            json!({"id": "1", "cmd": "echo", "payload": "hi"}),
            json!({"id": "1", "result": "hi"}),
        ),
        (
            json!({"id": "2", "cmd": "compute", "n": 5000}),
            json!({"id": "2", "result": reference_compute(5000)}),
        ),
        (
            json!({"id": "3", "cmd": "ping"}),
            json!({"id": "3", "result": "pong"}),
        ),
    ];
    for (req, want) in &cases {
        assert_eq!(&call(&mut c, req.clone()).await, want);
        c.send(mp_body(req)).await.expect("send");
        let (got, mp) = recv_any(&mut c).await.expect("reply");
        assert!(mp);
        assert_eq!(&got, want);
    }
    for (req, want_code) in [
        (json!({"id": "4", "cmd": "echo"}), "BAD_REQUEST"),
        (json!({"id": "5", "cmd": "compute"}), "BAD_REQUEST"),
        (json!({"id": "6", "cmd": "compute", "n": -5}), "BAD_REQUEST"),
        (
            json!({"id": "7", "cmd": "compute", "n": 2.5}),
            "BAD_REQUEST",
        ),
        (
            json!({"id": "8", "cmd": "compute", "n": 10_001}),
            "BAD_REQUEST",
        ),
        (json!({"id": "9", "cmd": "nope"}), "UNKNOWN_SERVICE"),
    ] {
        let r = call(&mut c, req.clone()).await;
        assert_eq!(r["id"], req["id"]);
        assert_eq!(code(&r), want_code, "{req}");
        assert!(
            r.get("result").is_none() && r.get("service").is_none(),
            "{r}"
        );
    }
}

#[tokio::test]
async fn pipelined_replies_come_out_of_order() {
    let f = fixture(RpcSettings::default());
    let (mut c, _server, _) = connect(&f.protocol).await;
    c.feed(json_body(
        &json!({"id": "slow", "service": "gate", "data": {"a": 1}}),
    ))
    .await
    .expect("send");
    c.feed(json_body(
        &json!({"id": "c", "service": "compute", "data": {"n": 10}}),
    ))
    .await
    .expect("send");
    c.feed(json_body(
        &json!({"id": "fast", "service": "echo", "data": {}}),
    ))
    .await
    .expect("send");
    SinkExt::<Bytes>::flush(&mut c).await.expect("flush");
    let mut first_two = vec![
        recv(&mut c).await["id"].clone(),
        recv(&mut c).await["id"].clone(),
    ];
    first_two.sort_by_key(|v| v.to_string());
    assert_eq!(first_two, [json!("c"), json!("fast")]);
    f.gate.permits.add_permits(1);
    let r = recv(&mut c).await;
    assert_eq!(
        r,
        json!({"id": "slow", "service": "gate", "data": {"a": 1}})
    );
}

#[tokio::test]
async fn in_flight_is_bounded_by_backpressure() {
    let f = fixture(RpcSettings {
        max_in_flight: 2,
        ..RpcSettings::default()
    });
    let (mut c, _server, _) = connect(&f.protocol).await;
    for i in 0..5 {
        c.feed(json_body(&json!({"id": i, "service": "gate"})))
            .await
            .expect("send");
    }
    SinkExt::<Bytes>::flush(&mut c).await.expect("flush");
    f.gate.wait_entered(2).await;
    f.gate.permits.add_permits(5);
    let mut ids: Vec<i64> = Vec::new();
    for _ in 0..5 {
        let r = recv(&mut c).await;
        assert!(r.get("error").is_none(), "{r}");
        ids.push(r["id"].as_i64().unwrap_or(-1));
    }
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert_eq!(f.gate.max_running.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn every_error_code_is_reachable() {
    let f = fixture(RpcSettings::default());
    let (mut c, _server, _) = connect(&f.protocol).await;
    // BAD_REQUEST: undecodable, missing service, ill-typed data; the
    // connection stays open.
    c.send(Bytes::from_static(b"not a body"))
        .await
        .expect("send");
    let r = recv(&mut c).await;
    assert_eq!(
        r,
        json!({"id": null, "error": {"code": "BAD_REQUEST", "message": r["error"]["message"]},
               "data": {"status": "erro", "description": r["error"]["message"]}})
    );
    let r = call(&mut c, json!({"id": 1, "data": {}})).await;
    assert_eq!((code(&r), &r["id"]), ("BAD_REQUEST", &json!(1)));
    let r = call(&mut c, json!({"id": 2, "service": "echo", "data": 5})).await;
    assert_eq!((code(&r), &r["service"]), ("BAD_REQUEST", &json!("echo")));
    // Undecodable MessagePack is answered in MessagePack.
    c.send(Bytes::from_static(&[0x81, 0xc1]))
        .await
        .expect("send");
    let (r, mp) = recv_any(&mut c).await.expect("reply");
    assert!(mp);
    assert_eq!(code(&r), "BAD_REQUEST");
    // UNKNOWN_SERVICE.
    let r = call(&mut c, json!({"id": 3, "service": "nope"})).await;
    assert_eq!(
        (code(&r), &r["service"], &r["id"]),
        ("UNKNOWN_SERVICE", &json!("nope"), &json!(3))
    );
    // Service errors.
    for want in [
        "NOT_FOUND",
        "CONFLICT",
        "OVERLOADED",
        "INTERNAL",
        "BAD_REQUEST",
    ] {
        let r = call(
            &mut c,
            json!({"id": want, "service": "fail", "data": {"code": want}}),
        )
        .await;
        assert_eq!(r["id"], json!(want));
        assert_eq!(r["service"], json!("fail"));
        assert_eq!(code(&r), want);
        assert_eq!(r["error"]["message"], json!("as asked"));
    }
    // Still usable.
    let r = call(&mut c, json!({"id": 4, "service": "ping"})).await;
    assert_eq!(r["data"]["pong"], json!(true));
    let text = f.metrics.render();
    assert!(
        text.contains(
            r#"corral_rpc_requests_total{outcome="UNKNOWN_SERVICE",service="unknown"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"corral_rpc_requests_total{outcome="CONFLICT",service="fail"} 1"#));
}

#[tokio::test]
async fn frame_too_large_is_answered_then_closed() {
    let f = fixture(RpcSettings {
        max_frame_bytes: 64,
        ..RpcSettings::default()
    });
    let (c, server, _) = connect(&f.protocol).await;
    let mut tcp = c.into_inner();
    let mut buf = BytesMut::new();
    buf.put_u32(1000);
    buf.put_slice(&[b'x'; 100]);
    tcp.write_all(&buf).await.expect("write");
    let mut c = Framed::new(tcp, LengthDelimitedCodec::new());
    let r = recv(&mut c).await;
    assert_eq!(code(&r), "FRAME_TOO_LARGE");
    assert_eq!(r["id"], Value::Null);
    assert!(recv_any(&mut c).await.is_none(), "the connection closes");
    drop(c);
    assert!(matches!(server.await, Ok(Ok(()))));
}

#[tokio::test]
async fn frame_exactly_at_the_limit_is_accepted() {
    let f = fixture(RpcSettings {
        max_frame_bytes: 64,
        ..RpcSettings::default()
    });
    let (mut c, _server, _) = connect(&f.protocol).await;
    let mut body = br#"{"id":1,"service":"ping","data":{"pad":""}}"#.to_vec();
    let pad = 64 - body.len();
    body.splice(
        body.len() - 3..body.len() - 3,
        std::iter::repeat_n(b'p', pad),
    );
    assert_eq!(body.len(), 64);
    c.send(Bytes::from(body)).await.expect("send");
    assert_eq!(recv(&mut c).await["data"]["pong"], json!(true));
}

#[tokio::test]
async fn frame_cut_short_then_peer_gone_ends_cleanly() {
    let f = fixture(RpcSettings::default());
    let (c, server, _) = connect(&f.protocol).await;
    let mut tcp = c.into_inner();
    let mut buf = BytesMut::new();
    buf.put_u32(100);
    buf.put_slice(b"{\"id\":1,");
    tcp.write_all(&buf).await.expect("write");
    drop(tcp);
    assert!(matches!(server.await, Ok(Ok(()))));
    assert_eq!(f.protocol.connections(), 0);
}

#[tokio::test]
async fn random_garbage_keeps_the_connection_usable() {
    let f = fixture(RpcSettings::default());
    let (mut c, _server, _) = connect(&f.protocol).await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let firsts = [b'{', 0x80, 0x85, 0xde, 0xdf, b'[', 0x00, 0xff];
    for i in 0..200 {
        let len = (next() % 200) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(b) = body.first_mut() {
            *b = firsts[i % firsts.len()];
        }
        c.send(Bytes::from(body)).await.expect("send");
        let r = recv(&mut c).await;
        assert_eq!(code(&r), "BAD_REQUEST", "{r}");
    }
    let r = call(&mut c, json!({"id": "after", "service": "ping"})).await;
    assert_eq!(r["data"]["pong"], json!(true));
}

#[tokio::test]
async fn a_panicking_service_kills_only_its_connection() {
    let f = fixture(RpcSettings::default());
    let (mut a, server_a, _) = connect(&f.protocol).await;
    let (mut b, _server_b, _) = connect(&f.protocol).await;
    a.send(json_body(&json!({"id": 1, "service": "panic"})))
        .await
        .expect("send");
    let joined = server_a.await;
    assert!(matches!(&joined, Err(e) if e.is_panic()), "{joined:?}");
    assert!(recv_any(&mut a).await.is_none());
    let r = call(&mut b, json!({"id": 2, "service": "ping"})).await;
    assert_eq!(r["data"]["pong"], json!(true));
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let f = fixture(RpcSettings {
        idle_timeout_ms: 50,
        ..RpcSettings::default()
    });
    let (mut c, server, _) = connect(&f.protocol).await;
    let r = call(&mut c, json!({"id": 1, "service": "ping"})).await;
    assert_eq!(r["data"]["pong"], json!(true));
    assert!(recv_any(&mut c).await.is_none(), "closed once idle");
    drop(c);
    assert!(matches!(server.await, Ok(Ok(()))));
}

#[tokio::test]
async fn drain_finishes_in_flight_then_closes() {
    let f = fixture(RpcSettings::default());
    let (mut c, server, token) = connect(&f.protocol).await;
    c.send(json_body(
        &json!({"id": "w", "service": "gate", "data": {"z": 1}}),
    ))
    .await
    .expect("send");
    f.gate.wait_entered(1).await;
    token.cancel();
    f.gate.permits.add_permits(1);
    let r = recv(&mut c).await;
    assert_eq!(r, json!({"id": "w", "service": "gate", "data": {"z": 1}}));
    assert!(recv_any(&mut c).await.is_none(), "closed after the drain");
    drop(c);
    assert!(matches!(server.await, Ok(Ok(()))));
}

#[tokio::test]
async fn pushes_are_interleaved_in_the_connection_encoding() {
    let f = fixture(RpcSettings::default());
    let (mut c, _server, _) = connect(&f.protocol).await;
    for msgpack in [false, true] {
        let req = json!({"id": 1, "service": "pushback", "data": {"m": msgpack}});
        let body = if msgpack {
            mp_body(&req)
        } else {
            json_body(&req)
        };
        c.send(body).await.expect("send");
        let mut got = Vec::new();
        for _ in 0..2 {
            let (v, mp) = recv_any(&mut c).await.expect("frame");
            assert_eq!(mp, msgpack);
            got.push(v);
        }
        got.sort_by_key(|v| v.get("topic").is_none());
        assert_eq!(got[0], json!({"topic": "t", "data": {"m": msgpack}}));
        assert_eq!(
            got[1],
            json!({"id": 1, "service": "pushback", "data": {"pushed": true}})
        );
    }
}

#[tokio::test]
async fn handle_message_serves_message_transports() {
    let f = fixture(RpcSettings::default());
    let (tx, _rx) = corral::rpc::push_channel(1);
    let cx = Arc::new(CallContext::new(1, None, tx));
    let reply = f
        .protocol
        .handle_message(
            json_body(&json!({"id": 5, "cmd": "echo", "payload": "p"})),
            &cx,
        )
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&reply).unwrap_or_default();
    assert_eq!(v, json!({"id": 5, "result": "p"}));
}

#[tokio::test]
async fn a_reply_over_the_limit_becomes_internal() {
    let f = fixture(RpcSettings {
        max_frame_bytes: 64,
        ..RpcSettings::default()
    });
    let (mut c, _server, _) = connect(&f.protocol).await;
    // A small request, a reply of more than 64 bytes.
    let r = call(&mut c, json!({"id": 1, "service": "stats"})).await;
    assert_eq!((code(&r), &r["id"]), ("INTERNAL", &json!(1)));
    let r = call(&mut c, json!({"id": 2, "service": "ping"})).await;
    assert_eq!(r["data"]["pong"], json!(true));
}

#[tokio::test]
async fn msgpack_with_trailing_bytes_is_refused_and_the_connection_stays_usable() {
    let f = fixture(RpcSettings::default());
    let (mut c, _server, _) = connect(&f.protocol).await;
    let mut body = BytesMut::from(&mp_body(&json!({"id": 1, "service": "ping"}))[..]);
    body.put_slice(b"\xc0 trailing");
    c.send(body.freeze()).await.expect("send");
    let (r, mp) = recv_any(&mut c).await.expect("a reply");
    assert!(mp, "answered in MessagePack: {r}");
    assert_eq!(code(&r), "BAD_REQUEST", "{r}");
    c.send(mp_body(&json!({"id": 2, "service": "ping"})))
        .await
        .expect("send");
    let (r, _) = recv_any(&mut c).await.expect("a reply");
    assert_eq!(
        r,
        json!({"id": 2, "service": "ping", "data": {"pong": true}})
    );
}

/// A request frame of the native shape, `payload` bytes of padding in `data`.
fn padded(id: usize, service: &str, payload: usize) -> Bytes {
    let body =
        json_body(&json!({"id": id, "service": service, "data": {"p": "x".repeat(payload)}}));
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_u32(body.len() as u32);
    frame.put_slice(&body);
    frame.freeze()
}

/// Writes `frames` on `w` in a task of its own, counting the bytes written.
fn pipeline(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    frames: Vec<Bytes>,
) -> (Arc<AtomicUsize>, JoinHandle<std::io::Result<()>>) {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let task = tokio::spawn(async move {
        for f in frames {
            w.write_all(&f).await?;
            counter.fetch_add(f.len(), Ordering::SeqCst);
        }
        w.flush().await
    });
    (written, task)
}

/// Waits until `written` has not moved for a while (the writer is blocked).
async fn wait_stalled(written: &AtomicUsize) -> usize {
    let mut last = usize::MAX;
    let mut still = 0;
    loop {
        let now = written.load(Ordering::SeqCst);
        if now == last {
            still += 1;
            if still == 10 {
                return now;
            }
        } else {
            still = 0;
            last = now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// 64 MiB of requests, far more than the kernel buffers of both ends.
const PIPELINED_BYTES: usize = 64 << 20;
const PADDING: usize = 16 << 10;

#[tokio::test]
async fn a_client_that_pipelines_without_reading_is_held_back_at_max_in_flight() {
    let f = fixture(RpcSettings {
        max_in_flight: 4,
        ..RpcSettings::default()
    });
    let (c, server, _) = connect(&f.protocol).await;
    let (r, w) = c.into_inner().into_split();
    let n = PIPELINED_BYTES / PADDING;
    let frames: Vec<Bytes> = (0..n).map(|i| padded(i, "gate", PADDING)).collect();
    let (written, writer) = pipeline(w, frames);
    f.gate.wait_entered(4).await;
    let stalled = wait_stalled(&written).await;
    assert!(
        stalled < PIPELINED_BYTES && !writer.is_finished(),
        "the server stopped reading: {stalled} of {PIPELINED_BYTES} bytes written"
    );
    assert_eq!(f.gate.entered.load(Ordering::SeqCst), 4);
    assert_eq!(f.gate.max_running.load(Ordering::SeqCst), 4);
    // Let everything through: every request is answered.
    f.gate.permits.add_permits(n);
    let mut replies = tokio_util::codec::FramedRead::new(
        r,
        LengthDelimitedCodec::builder()
            .max_frame_length(1 << 20)
            .new_codec(),
    );
    for _ in 0..n {
        let frame = replies.next().await.expect("a reply").expect("read");
        let v: Value = serde_json::from_slice(&frame).expect("json");
        assert!(v.get("error").is_none(), "{}", v["error"]);
    }
    assert!(matches!(writer.await, Ok(Ok(()))));
    assert_eq!(f.gate.max_running.load(Ordering::SeqCst), 4);
    drop(replies);
    let _ = server.await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_echoes_is_held_back() {
    let f = fixture(RpcSettings::default());
    let (c, _server, _) = connect(&f.protocol).await;
    let (_r, w) = c.into_inner().into_split();
    let n = PIPELINED_BYTES / PADDING;
    let frames: Vec<Bytes> = (0..n).map(|i| padded(i, "echo", PADDING)).collect();
    let (written, writer) = pipeline(w, frames);
    let stalled = wait_stalled(&written).await;
    assert!(
        stalled < PIPELINED_BYTES && !writer.is_finished(),
        "the server stopped reading: {stalled} of {PIPELINED_BYTES} bytes written"
    );
    writer.abort();
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_cut_after_the_write_stall_timeout() {
    let f = fixture(RpcSettings {
        idle_timeout_ms: 0,
        write_stall_timeout_ms: 300,
        ..RpcSettings::default()
    });
    let (c, server, _) = connect(&f.protocol).await;
    let (_r, w) = c.into_inner().into_split();
    let n = PIPELINED_BYTES / PADDING;
    let frames: Vec<Bytes> = (0..n).map(|i| padded(i, "echo", PADDING)).collect();
    let (_written, writer) = pipeline(w, frames);
    // Eventually (a generous bound, not a measurement).
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), server).await;
    assert!(
        matches!(ended, Ok(Ok(Err(RpcConnError::WriteStalled(_))))),
        "{ended:?}"
    );
    assert_eq!(f.protocol.connections(), 0);
    writer.abort();
}

#[tokio::test]
async fn a_silent_connection_is_kept_when_idle_timeout_is_zero_but_a_stuck_one_is_cut() {
    let f = fixture(RpcSettings {
        idle_timeout_ms: 0,
        write_stall_timeout_ms: 300,
        ..RpcSettings::default()
    });
    let (mut c, server, _) = connect(&f.protocol).await;
    // Silent for longer than the write-stall timeout: still served.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert!(!server.is_finished());
    let r = call(&mut c, json!({"id": 1, "service": "ping"})).await;
    assert_eq!(r["data"]["pong"], json!(true));
    drop(c);
    assert!(matches!(server.await, Ok(Ok(()))));
}
