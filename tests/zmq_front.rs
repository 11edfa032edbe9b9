//! The ZeroMQ front against libzmq itself (Debian's python3-zmq, installed
//! by scripts/setup), the implementation the seeds' clients use: REQ and
//! DEALER peers with the seeds' requests, SUB peers receiving publications
//! and private messages, a slow SUB peer, and hostile ZMTP input.

mod support {
    pub(crate) mod chat;
}

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use corral::client::Codec;
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::transport::Transport;
use serde_json::{json, Value};
use support::chat::{ok, start, start_with, ChatNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Debian's Python, which has python3-zmq (a pyenv or venv `python3` on
/// PATH may not).
const PYTHON: &str = "/usr/bin/python3";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zmq/seed_client.py")
}

fn with_zmq(c: &mut Config) {
    c.listeners.push(ListenerConfig::new(
        "zmq",
        Transport::Tcp,
        ProtocolKind::ZmqRouter,
        0,
    ));
    c.listeners.push(ListenerConfig::new(
        "zmq_pub",
        Transport::Tcp,
        ProtocolKind::ZmqXpub,
        0,
    ));
}

fn endpoint(n: &ChatNode, listener: &str) -> String {
    format!("tcp://{}", n.node.local_addr(listener).expect("bound"))
}

fn parse_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs the libzmq client in `role` to its end; its output lines.
async fn run(role: &str, args: Value) -> Vec<Value> {
    let out = tokio::process::Command::new(PYTHON)
        .arg(script())
        .arg(role)
        .arg(args.to_string())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{PYTHON} (run scripts/setup for python3-zmq): {e}"));
    assert!(
        out.status.success(),
        "seed_client.py {role} failed (python3-zmq and python3-msgpack come with scripts/setup):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

/// A SUB peer started in the background, ready (subscribed) when this
/// returns.
struct Sub {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Sub {
    async fn start(args: Value) -> Sub {
        Sub::start_as("sub", args).await
    }

    /// A libzmq process in `role`, ready when this returns.
    async fn start_as(role: &str, mut args: Value) -> Sub {
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        args["ready_file"] = json!(ready);
        let child = tokio::process::Command::new(PYTHON)
            .arg(script())
            .arg(role)
            .arg(args.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{PYTHON}: {e}"));
        for _ in 0..200 {
            if ready.exists() {
                return Sub { child, _dir: dir };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the libzmq {role} did not get ready");
    }

    async fn received(self) -> Vec<Value> {
        let out = self
            .child
            .wait_with_output()
            .await
            .expect("the SUB peer ran");
        assert!(
            out.status.success(),
            "seed_client.py sub failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_lines(&out.stdout)
    }
}

fn msgpack(body: Value) -> Value {
    json!({"enc": "msgpack", "body": body})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_and_dealer_peers_are_answered_with_the_seeds_requests() {
    let n = start_with(with_zmq).await;
    let addr = endpoint(&n, "zmq");
    // A DEALER emulating REQ (empty delimiter), bob logs in, then ten
    // pipelined pings: each reply behind the envelope it came with.
    let mut requests = vec![msgpack(json!({
        "service": "login", "data": {"user": "bob", "timestamp": 1731400000.5, "clock": 1}
    }))];
    for i in 0..10 {
        requests.push(msgpack(json!({"id": i, "service": "ping", "data": {}})));
    }
    let replies = run(
        "dealer",
        json!({"addr": addr, "delimiter": true, "requests": requests}),
    )
    .await;
    assert_eq!(replies.len(), 11);
    for r in &replies {
        assert_eq!(r["envelope"], json!([""]), "{r}");
        assert_eq!(r["enc"], "msgpack");
        assert!(r["reply"].get("error").is_none(), "{r}");
    }
    // Pipelined on a DEALER: replies come as they are ready (the login
    // writes to the store, the pings do not), matched by `id`.
    let login = replies
        .iter()
        .find(|r| r["reply"]["service"] == "login")
        .expect("the login's reply");
    assert_eq!(login["reply"]["data"]["user"], "bob");
    let mut ids: Vec<u64> = replies
        .iter()
        .filter(|r| r["reply"]["service"] == "ping")
        .map(|r| r["reply"]["id"].as_u64().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());

    // A DEALER sending bare bodies gets bare replies.
    let replies = run(
        "dealer",
        json!({"addr": addr, "delimiter": false,
               "requests": [msgpack(json!({"service": "ping", "data": {}}))]}),
    )
    .await;
    assert_eq!(replies[0]["envelope"], json!([]));
    assert!(replies[0]["reply"].get("data").is_some(), "{}", replies[0]);

    // A REQ peer with the seeds' requests, in order, MessagePack; one
    // request in JSON is answered in JSON.
    let seed = |service: &str, data: Value| msgpack(json!({"service": service, "data": data}));
    let requests = json!([
        seed("login", json!({"user": "alice", "timestamp": "2025-11-12T10:00:00", "clock": 3})),
        seed("users", json!({"timestamp": "2025-11-12T10:00:01", "clock": 5})),
        seed("channel", json!({"channel": "geral", "timestamp": 1731400002, "clock": 7})),
        seed("channels", json!({"timestamp": 1731400003, "clock": 9})),
        seed("publish", json!({"user": "alice", "channel": "geral", "message": "Olá!",
                                "timestamp": 1731400004, "clock": 11})),
        seed("message", json!({"src": "alice", "dst": "bob", "message": "Oi!",
                                "timestamp": 1731400005, "clock": 13})),
        {"enc": "json", "body": {"service": "channels", "data": {"clock": 15}}},
        seed("publish", json!({"user": "alice", "channel": "nowhere", "message": "x"})),
    ]);
    let replies = run("req", json!({"addr": addr, "requests": requests})).await;
    assert_eq!(replies.len(), 8);
    let services = [
        "login", "users", "channel", "channels", "publish", "message", "channels",
    ];
    let mut last_clock = 0;
    for (r, service) in replies.iter().zip(services) {
        let reply = &r["reply"];
        assert_eq!(reply["service"], service, "{r}");
        assert!(reply.get("error").is_none(), "{r}");
        let clock = reply["data"]["clock"].as_u64().expect("clock");
        assert!(clock > last_clock, "the Lamport clock moves on: {r}");
        last_clock = clock;
        assert!(reply["data"]["timestamp"].is_number(), "{r}");
    }
    assert_eq!(replies[0]["enc"], "msgpack");
    assert_eq!(replies[6]["enc"], "json");
    // The seeds' shapes: statuses as they show them, users as names.
    let status = |i: usize| replies[i]["reply"]["data"]["status"].clone();
    assert_eq!(status(0), "sucesso");
    assert_eq!(status(2), "sucesso");
    assert_eq!(status(4), "OK");
    assert_eq!(status(5), "OK");
    assert_eq!(
        replies[1]["reply"]["data"]["users"],
        json!(["alice", "bob"])
    );
    assert_eq!(replies[3]["reply"]["data"]["channels"], json!(["geral"]));
    assert!(replies[4]["reply"]["data"]["seq"].is_u64());
    assert_eq!(replies[5]["reply"]["data"]["dst"], "bob");
    // An error, over ZeroMQ as over TCP: the code, and the connection lives
    // on (this was its last request).
    assert_eq!(
        replies[7]["reply"]["error"]["code"], "NOT_FOUND",
        "{}",
        replies[7]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_peers_get_publications_and_private_messages_by_topic_prefix() {
    let n = start_with(with_zmq).await;
    let pub_addr = endpoint(&n, "zmq_pub");
    // The seeds' subscriber: its channel and its user name. Another by a
    // prefix, another by everything, another by a channel that stays quiet.
    let carol =
        Sub::start(json!({"addr": pub_addr, "topics": ["geral", "carol"], "count": 4})).await;
    let prefix = Sub::start(json!({"addr": pub_addr, "topics": ["ge"], "count": 3})).await;
    let all = Sub::start(json!({"addr": pub_addr, "topics": [""], "count": 4})).await;
    let quiet =
        Sub::start(json!({"addr": pub_addr, "topics": ["other"], "count": 1, "timeout_ms": 2000}))
            .await;

    // Written over corral's own TCP framing: one hub for every transport.
    let (alice, _) = n.client(Codec::MsgPack).await;
    let (carol_rpc, _) = n.client(Codec::Json).await;
    ok(&carol_rpc, "login", json!({"user": "carol"})).await;
    ok(&alice, "login", json!({"user": "alice"})).await;
    ok(&alice, "channel", json!({"channel": "geral"})).await;
    ok(&alice, "channel", json!({"channel": "other"})).await;
    for i in 0..3 {
        ok(
            &alice,
            "publish",
            json!({"channel": "geral", "message": format!("m{i}")}),
        )
        .await;
    }
    ok(
        &alice,
        "message",
        json!({"dst": "carol", "message": "psst"}),
    )
    .await;

    let got = carol.received().await;
    assert_eq!(got.len(), 4, "{got:?}");
    for (i, m) in got[..3].iter().enumerate() {
        assert_eq!(m["topic"], "geral");
        assert_eq!(m["parts"], 2, "a topic frame then the body");
        let body = &m["body"];
        assert_eq!(body["user"], "alice");
        assert_eq!(body["message"], format!("m{i}"));
        assert!(
            body["timestamp"].is_u64() && body["clock"].is_u64(),
            "{body}"
        );
    }
    let private = &got[3];
    assert_eq!(private["topic"], "carol");
    assert_eq!(private["body"]["src"], "alice");
    assert_eq!(private["body"]["message"], "psst");
    assert!(private["body"]["clock"].is_u64());

    let by_prefix = prefix.received().await;
    assert_eq!(by_prefix.len(), 3, "{by_prefix:?}");
    assert!(by_prefix.iter().all(|m| m["topic"] == "geral"));
    let everything = all.received().await;
    assert_eq!(everything.len(), 4, "{everything:?}");
    assert_eq!(everything[3]["topic"], "carol");
    assert!(quiet.received().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_stay_off_the_pub_endpoint_when_turned_off() {
    let n = start_with(|c| {
        with_zmq(c);
        c.zmq.private_messages = false;
    })
    .await;
    let pub_addr = endpoint(&n, "zmq_pub");
    let sub =
        Sub::start(json!({"addr": pub_addr, "topics": [""], "count": 2, "timeout_ms": 2000})).await;
    let (alice, _) = n.client(Codec::Json).await;
    let (bob, mut bob_pushes) = n.client(Codec::Json).await;
    ok(&bob, "login", json!({"user": "bob"})).await;
    ok(&alice, "login", json!({"user": "alice"})).await;
    ok(&alice, "channel", json!({"channel": "room"})).await;
    ok(
        &alice,
        "message",
        json!({"dst": "bob", "message": "secret"}),
    )
    .await;
    ok(
        &alice,
        "publish",
        json!({"channel": "room", "message": "public"}),
    )
    .await;
    let got = sub.received().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["body"]["message"], "public");
    // bob's own session still has it.
    let push = bob_pushes.recv().await.expect("bob's private message");
    assert_eq!(push.data["message"], "secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sub_peer_loses_pushes_counted_and_slows_no_one() {
    const N: usize = 300;
    let n = start_with(|c| {
        with_zmq(c);
        c.rpc.push_queue = 8;
        c.chat.max_message_bytes = 65536;
        c.chat.rate_per_second = 0.0;
    })
    .await;
    let pub_addr = endpoint(&n, "zmq_pub");
    // Reads nothing for a minute: libzmq holds one message, the kernel
    // a few MB, the node 8 pushes; the rest is dropped for it alone.
    let slow = Sub::start(json!({"addr": pub_addr, "topics": ["room"], "count": N,
                                 "rcvhwm": 1, "rcvbuf": 4096, "sleep_before_read": 60}))
    .await;
    let fast = Sub::start(json!({"addr": pub_addr, "topics": ["room"], "count": N})).await;
    let (alice, _) = n.client(Codec::MsgPack).await;
    ok(&alice, "login", json!({"user": "alice"})).await;
    ok(&alice, "channel", json!({"channel": "room"})).await;
    let big = "x".repeat(60_000);
    for i in 0..N {
        ok(
            &alice,
            "publish",
            json!({"channel": "room", "message": format!("{i} {big}")}),
        )
        .await;
    }
    let got = fast.received().await;
    assert_eq!(got.len(), N, "the fast peer got every publication");
    for (i, m) in got.iter().enumerate() {
        let text = m["body"]["message"].as_str().expect("message");
        assert!(text.starts_with(&format!("{i} ")), "in order");
    }
    let dropped = n.node.metrics().chat_pushes_dropped.get();
    assert!(dropped > 0, "the slow peer's overflow is counted");
    assert!(dropped < N as u64, "the fast peer lost none: {dropped}");
    drop(slow);
}

/// A raw TCP peer speaking as much ZMTP as a test needs.
fn greeting(mechanism: &[u8]) -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 1;
    g[12..12 + mechanism.len()].copy_from_slice(mechanism);
    g
}

fn ready(socket_type: &str) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    body.extend_from_slice(socket_type.as_bytes());
    let mut f = vec![0x04, body.len() as u8];
    f.extend(body);
    f
}

/// Sends `bytes` to `addr` and reads until the node closes the connection
/// (within 10 s); what it sent back.
async fn closed_after(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    // The node may close before it has read everything.
    let _ = s.write_all(bytes).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) => panic!("read: {e}"),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the node closed the connection after {bytes:?}"
    );
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_zmtp_input_closes_that_connection_and_nothing_else() {
    // Off by default; a ZeroMQ client pointed at the RPC port is told its
    // "frame" (the greeting's first bytes) is too large, and cut.
    assert!(Config::embedded_default()
        .listeners
        .iter()
        .all(|l| !matches!(l.protocol, ProtocolKind::ZmqRouter | ProtocolKind::ZmqXpub)));
    let plain = start().await;
    let rpc = plain.node.local_addr("rpc").expect("bound");
    let got = closed_after(rpc, &greeting(b"NULL")).await;
    assert!(
        got.windows(15).any(|w| w == b"FRAME_TOO_LARGE"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let n = start_with(|c| {
        with_zmq(c);
        c.zmq.handshake_timeout_ms = 500;
        c.rpc.max_frame_bytes = 4096;
    })
    .await;
    let router = n.node.local_addr("zmq").expect("bound");
    let xpub = n.node.local_addr("zmq_pub").expect("bound");
    let handshake = |t: &str| [greeting(b"NULL"), ready(t)].concat();

    // Not ZMTP at all.
    closed_after(router, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // Another security mechanism.
    closed_after(router, &greeting(b"CURVE")).await;
    // A socket type that cannot talk to the endpoint: told so with ERROR.
    let got = closed_after(router, &handshake("PUB")).await;
    assert!(
        got.windows(5).any(|w| w == b"ERROR"),
        "an ERROR command: {got:?}"
    );
    closed_after(xpub, &handshake("REQ")).await;
    // A handshake never finished (half a greeting, then silence).
    closed_after(router, &greeting(b"NULL")[..20]).await;
    // A frame announcing 2^40 bytes, far over max_frame_bytes.
    let mut huge = handshake("DEALER");
    huge.push(0x02);
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    closed_after(router, &huge).await;
    // Reserved flag bits.
    let mut bad = handshake("SUB");
    bad.extend_from_slice(&[0xF0, 1, 1]);
    closed_after(xpub, &bad).await;
    // Too many parts.
    let mut parts = handshake("DEALER");
    for _ in 0..100 {
        parts.extend_from_slice(&[0x01, 1, b'a']);
    }
    parts.extend_from_slice(&[0x00, 1, b'a']);
    closed_after(router, &parts).await;

    // The node serves on: libzmq peers on both endpoints, and RPC.
    let replies = run(
        "req",
        json!({"addr": format!("tcp://{router}"),
               "requests": [msgpack(json!({"service": "ping", "data": {}}))]}),
    )
    .await;
    assert!(replies[0]["reply"].get("data").is_some(), "{}", replies[0]);
    let sub =
        Sub::start(json!({"addr": format!("tcp://{xpub}"), "topics": ["room"], "count": 1})).await;
    let (c, _) = n.client(Codec::Json).await;
    ok(&c, "login", json!({"user": "ann"})).await;
    ok(&c, "channel", json!({"channel": "room"})).await;
    ok(
        &c,
        "publish",
        json!({"channel": "room", "message": "still here"}),
    )
    .await;
    let got = sub.received().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["body"]["message"], "still here");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// corral's own client (the one `corral bot` and `corral client` use) over
/// ZeroMQ: to the node's endpoints directly, and through libzmq's
/// ROUTER/DEALER broker and XPUB/XSUB proxy, the seeds' topology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corral_clients_run_over_zeromq_directly_and_through_the_seeds_broker() {
    use corral::client::{Client, FrameConn};
    let n = start_with(with_zmq).await;
    let router = n.node.local_addr("zmq").expect("bound");
    let xpub = n.node.local_addr("zmq_pub").expect("bound");
    let (broker_port, proxy_port) = (free_port(), free_port());
    let _broker = Sub::start_as(
        "broker",
        json!({"front": broker_port, "back": format!("tcp://{router}")}),
    )
    .await;
    let _proxy = Sub::start_as(
        "proxy",
        json!({"front": proxy_port, "back": format!("tcp://{xpub}")}),
    )
    .await;
    let direct = (router.to_string(), xpub.to_string());
    let seeds = (
        format!("127.0.0.1:{broker_port}"),
        format!("127.0.0.1:{proxy_port}"),
    );
    for (i, (req, sub)) in [direct, seeds].into_iter().enumerate() {
        for codec in [Codec::Json, Codec::MsgPack] {
            let (conn, subscriber) = FrameConn::connect_zmq_with_sub(&req, &sub, codec)
                .await
                .expect("connects");
            let client = Client::new(conn, codec);
            let mut pushes = client.pushes().expect("pushes");
            let me = format!("u{i}{}", codec.name());
            let room = format!("r{i}{}", codec.name());
            client
                .call("login", json!({"user": me}))
                .await
                .expect("login");
            client
                .call("channel", json!({"channel": room}))
                .await
                .expect("channel");
            subscriber.subscribe(&room).await.expect("subscribe");
            subscriber.subscribe(&me).await.expect("subscribe");
            // Subscriptions travel on their own connection (and through
            // the proxy): publish until the first one arrives.
            let first = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let r = client.call("publish", json!({"channel": room, "message": "hello"}));
                    r.await.expect("publish");
                    if let Ok(Some(p)) =
                        tokio::time::timeout(Duration::from_millis(200), pushes.recv()).await
                    {
                        return p;
                    }
                }
            })
            .await
            .expect("a publication arrives");
            assert_eq!(first.topic, room);
            assert_eq!(first.data["user"], me);
            assert_eq!(first.data["message"], "hello");
            // Pipelined calls over the DEALER, answered by id.
            let calls: Vec<_> = (0..20)
                .map(|k| client.call("echo", json!({"payload": format!("p{k}")})))
                .collect();
            for (k, r) in futures::future::join_all(calls)
                .await
                .into_iter()
                .enumerate()
            {
                assert_eq!(r.expect("echo")["payload"], format!("p{k}"));
            }
            // A private message to oneself comes on the user's topic.
            client
                .call("message", json!({"dst": me, "message": "note"}))
                .await
                .expect("message");
            let private = loop {
                let p = tokio::time::timeout(Duration::from_secs(10), pushes.recv())
                    .await
                    .expect("in time")
                    .expect("a push");
                if p.topic == me {
                    break p;
                }
            };
            assert_eq!(private.data["src"], me);
            assert_eq!(private.data["message"], "note");
        }
    }
}

/// Over ZeroMQ the application never sees connections (libzmq reconnects
/// on its own; a broker carries many clients on one), so the seeds'
/// servers took the sender a request names: so does corral there, for
/// users without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zeromq_request_names_its_sender_as_with_the_seeds_servers() {
    let n = start_with(|c| {
        with_zmq(c);
        c.chat.users.insert("vip".into(), "secret".into());
    })
    .await;
    let addr = endpoint(&n, "zmq");
    let seed = |service: &str, data: Value| msgpack(json!({"service": service, "data": data}));
    // alice logs in on one REQ socket (and channel "geral" is made) ...
    run(
        "req",
        json!({"addr": addr, "requests": [
            seed("login", json!({"user": "alice"})),
            seed("login", json!({"user": "bob"})),
            seed("channel", json!({"channel": "geral"})),
        ]}),
    )
    .await;
    // ... and publishes from another, as a client whose socket reconnected.
    let replies = run(
        "req",
        json!({"addr": addr, "requests": [
            seed("publish", json!({"user": "alice", "channel": "geral", "message": "a"})),
            seed("message", json!({"src": "alice", "dst": "bob", "message": "b"})),
            seed("publish", json!({"user": "ghost", "channel": "geral", "message": "c"})),
            seed("publish", json!({"user": "vip", "channel": "geral", "message": "d"})),
            seed("publish", json!({"channel": "geral", "message": "e"})),
            seed("login", json!({"user": "vip", "token": "secret"})),
            seed("publish", json!({"user": "vip", "channel": "geral", "message": "f"})),
        ]}),
    )
    .await;
    let status = |i: usize| replies[i]["reply"]["data"]["status"].clone();
    let code = |i: usize| replies[i]["reply"]["error"]["code"].clone();
    assert_eq!(status(0), "OK", "{}", replies[0]);
    assert_eq!(status(1), "OK", "{}", replies[1]);
    assert_eq!(code(2), "BAD_REQUEST", "never logged in: {}", replies[2]);
    assert_eq!(code(3), "BAD_REQUEST", "a token user: {}", replies[3]);
    assert_eq!(code(4), "BAD_REQUEST", "no sender at all: {}", replies[4]);
    assert_eq!(status(6), "OK", "logged in with the token: {}", replies[6]);
    // Over corral's own framing the connection's login still decides.
    let (c, _) = n.client(Codec::Json).await;
    ok(&c, "login", json!({"user": "bob"})).await;
    let refused = c
        .call(
            "publish",
            json!({"user": "alice", "channel": "geral", "message": "x"}),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

/// `corral bot` and `corral client` over the ZeroMQ endpoints (--zmq,
/// --zmq-sub), as the seeds' bots and clients run against a broker and a
/// proxy: the bots subscribe to their channel on the SUB socket and
/// publish the seeds' texts; a libzmq SUB peer sees them; the client gets
/// a private message on its SUB socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corral_bot_and_client_run_over_the_zeromq_endpoints() {
    let n = start_with(with_zmq).await;
    let req = n.node.local_addr("zmq").expect("bound").to_string();
    let sub = n.node.local_addr("zmq_pub").expect("bound").to_string();
    let watcher = Sub::start(
        json!({"addr": endpoint(&n, "zmq_pub"), "topics": ["general"],
                                    "count": 5}),
    )
    .await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral"))
        .args([
            "bot",
            "--count",
            "2",
            "--duration",
            "3",
            "--pause",
            "0.2",
            "--messages",
            "3",
        ])
        .args(["--zmq", &req, "--zmq-sub", &sub])
        .output()
        .await
        .expect("corral bot runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 errors"), "{stdout}");
    let seen = watcher.received().await;
    assert_eq!(seen.len(), 5, "{seen:?}");
    for m in &seen {
        assert!(
            m["body"]["user"]
                .as_str()
                .is_some_and(|u| u.starts_with("bot_")),
            "{m}"
        );
    }
    // The bots subscribed their SUB sockets to the channel they talk in:
    // more pushes went out than the watcher's one per publication.
    let sent: u64 = stdout
        .split("total: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the summary's total");
    let delivered = n.node.metrics().chat_pushes_delivered.get();
    assert!(
        delivered > sent,
        "{delivered} pushes for {sent} publications"
    );

    // The interactive client: logs in (its SUB socket subscribes to its
    // name), and a private message to it arrives there.
    let mut client = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral"))
        .args([
            "client",
            "--zmq",
            &req,
            "--zmq-sub",
            &sub,
            "--user",
            "carol",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("corral client runs");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (ann, _) = n.client(Codec::Json).await;
    ok(&ann, "login", json!({"user": "ann"})).await;
    ok(
        &ann,
        "message",
        json!({"dst": "carol", "message": "over zmq"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut stdin = client.stdin.take().expect("stdin");
    stdin.write_all(b"users\nquit\n").await.expect("write");
    drop(stdin);
    let out = client.wait_with_output().await.expect("the client ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("logged in as carol"), "{stdout}");
    assert!(
        stdout.contains("<< ") && stdout.contains("over zmq"),
        "{stdout}"
    );
    assert!(stdout.contains("ann"), "users listed: {stdout}");
}
