//! RPC over real kernel SCTP: a node with an SCTP listener on 127.0.0.1,
//! driven by the real client and by raw associations.
//!
//! Needs a kernel with SCTP. Without it each test prints why and passes
//! (skipped), unless CORRAL_REQUIRE_SCTP=1, under which it fails. On a
//! machine without SCTP, scripts/test runs this binary inside the
//! scripts/sctp-vm VM (cargo runner) with CORRAL_REQUIRE_SCTP=1.
//!
//! Tests synchronise on events (replies, services entered, connection
//! counts polled in bounded loops); no assertion is about time.

mod support {
    pub(crate) mod wait;
}

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
use support::wait::wait_until;

use bytes::Bytes;
use corral::async_trait;
use corral::client::{Client, ClientError, Codec, FrameConn};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::rpc::PUSH_STREAM;
use corral::rpc::{CallContext, Push, Request, Service, ServiceError};
use corral::transport::sctp::{self, Association, Incoming, MessageSink};
use corral::transport::SctpOptions;
use corral::transport::Transport;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Upper bound for a whole test: a guard against hangs, not a measurement.
const GUARD: Duration = Duration::from_secs(300);

async fn guarded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(GUARD, body)
        .await
        .expect("the test did not finish (hung)");
}

/// True when the kernel has SCTP. Otherwise: a failure under
/// CORRAL_REQUIRE_SCTP=1, else a printed skip.
fn sctp_or_skip(test: &str) -> bool {
    match sctp::probe() {
        Ok(()) => true,
        Err(e) => {
            if std::env::var("CORRAL_REQUIRE_SCTP").as_deref() == Ok("1") {
                panic!("{test}: CORRAL_REQUIRE_SCTP=1 but {e}");
            }
            eprintln!("{test}: SKIPPED: {e} (run it in scripts/sctp-vm)");
            false
        }
    }
}

fn config(edit: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::embedded_default();
    c.chat.enabled = false;
    let mut l = ListenerConfig::new("rpc", Transport::Sctp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = 1_000;
    c.listeners = vec![l];
    c.node.shutdown_timeout_ms = 20_000;
    edit(&mut c);
    c
}

/// Pushes `n` publications on its connection, then replies `{"pushed": n}`.
struct Pusher;

#[async_trait]
impl Service for Pusher {
    async fn call(&self, req: Request, cx: &CallContext) -> Result<Value, ServiceError> {
        let n = req.data["n"].as_u64().unwrap_or(0);
        for i in 0..n {
            cx.pushes()
                .send(Push::new("burst", json!({ "i": i })))
                .await
                .map_err(|_| ServiceError::internal("connection gone"))?;
        }
        Ok(json!({ "pushed": n }))
    }
}

/// Signals `entered`, then waits for `release` before replying.
struct Hold {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

#[async_trait]
impl Service for Hold {
    async fn call(&self, _: Request, _: &CallContext) -> Result<Value, ServiceError> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok(json!({ "held": true }))
    }
}

async fn start(config: Config) -> Node {
    Node::start(config).await.expect("the node starts")
}

fn addr(node: &Node) -> SocketAddr {
    node.local_addr("rpc").expect("bound")
}

fn closed(node: &Node) -> u64 {
    node.metrics()
        .connections_closed
        .with_label_values(&["rpc"])
        .get()
}

/// A raw association: a sink of (body, stream), a stream of messages, the
/// association and its status.
async fn raw(
    addr: SocketAddr,
) -> (
    MessageSink,
    impl futures::Stream<Item = std::io::Result<Incoming>>,
    Association,
    tokio_sctp::Status,
) {
    let s = sctp::connect(addr, &SctpOptions::default())
        .await
        .expect("SCTP connect");
    let status = s.status().expect("SCTP_STATUS");
    let a = Association::new(s).expect("registered");
    let msgs = Box::pin(a.messages(1 << 20));
    (a.sink(), msgs, a, status)
}

async fn next_msg(
    msgs: &mut (impl futures::Stream<Item = std::io::Result<Incoming>> + Unpin),
) -> (Value, u16) {
    match msgs.next().await {
        Some(Ok(Incoming::Message(body, sid))) => {
            (serde_json::from_slice(&body).expect("a JSON message"), sid)
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn request_reply_json_and_msgpack() {
    if !sctp_or_skip("request_reply_json_and_msgpack") {
        return;
    }
    guarded(async {
        let node = start(config(|_| {})).await;
        for codec in [Codec::Json, Codec::MsgPack] {
            let client = Client::connect_sctp(addr(&node), codec, &SctpOptions::default())
                .await
                .expect("connect");
            let r = client
                .call("echo", json!({"payload": "hello sctp"}))
                .await
                .expect("echo");
            assert_eq!(r["payload"], "hello sctp", "{codec}");
            let r = client
                .call("compute", json!({"n": 10}))
                .await
                .expect("compute");
            assert_eq!(r["result"], 285, "{codec}: {r}");
        }
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn pipelined_calls_on_one_association() {
    if !sctp_or_skip("pipelined_calls_on_one_association") {
        return;
    }
    guarded(async {
        let node = start(config(|_| {})).await;
        let client = Client::connect_sctp(addr(&node), Codec::MsgPack, &SctpOptions::default())
            .await
            .expect("connect");
        let calls = (0..1000).map(|i| {
            let c = client.clone();
            async move {
                (
                    i,
                    c.call("echo", json!({ "payload": format!("p{i}") })).await,
                )
            }
        });
        for (i, r) in futures::future::join_all(calls).await {
            assert_eq!(r.expect("reply")["payload"], format!("p{i}"));
        }
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn replies_go_out_on_the_request_stream() {
    if !sctp_or_skip("replies_go_out_on_the_request_stream") {
        return;
    }
    guarded(async {
        let node = start(config(|_| {})).await;
        let (mut tx, mut rx, _a, status) = raw(addr(&node)).await;
        assert!(status.outstrms >= 8, "{} outbound streams", status.outstrms);
        // Pipelined: all requests first, on streams 0..8, then the replies.
        for id in 0..32u16 {
            let body = json!({"id": id, "service": "echo", "data": {"payload": id}});
            tx.feed((Bytes::from(body.to_string()), id % 8))
                .await
                .expect("send");
        }
        tx.flush().await.expect("flush");
        let mut seen = 0;
        while seen < 32 {
            let (reply, sid) = next_msg(&mut rx).await;
            let id = reply["id"].as_u64().expect("id") as u16;
            assert_eq!(sid, id % 8, "reply {reply} came on stream {sid}");
            assert_eq!(reply["data"]["payload"], id);
            seen += 1;
        }
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn pushes_go_out_on_their_own_stream() {
    if !sctp_or_skip("pushes_go_out_on_their_own_stream") {
        return;
    }
    guarded(async {
        let node = Node::builder(config(|_| {}))
            .service("pusher", Arc::new(Pusher))
            .start()
            .await
            .expect("start");
        let (mut tx, mut rx, _a, _) = raw(addr(&node)).await;
        let body = json!({"id": 1, "service": "pusher", "data": {"n": 200}});
        tx.send((Bytes::from(body.to_string()), 3))
            .await
            .expect("send");
        let body = json!({"id": 2, "service": "echo", "data": {"payload": "x"}});
        tx.send((Bytes::from(body.to_string()), 5))
            .await
            .expect("send");
        let (mut pushes, mut replies) = (0, 0);
        while pushes < 200 || replies < 2 {
            let (msg, sid) = next_msg(&mut rx).await;
            if msg.get("topic").is_some() {
                assert_eq!(sid, PUSH_STREAM, "push {msg} on stream {sid}");
                assert_eq!(msg["data"]["i"], pushes);
                pushes += 1;
            } else {
                let want = if msg["id"] == 1 { 3 } else { 5 };
                assert_eq!(sid, want, "reply {msg} on stream {sid}");
                assert_ne!(sid, PUSH_STREAM);
                replies += 1;
            }
        }
        // The client keeps replies and pushes apart too.
        let client = Client::connect_sctp(addr(&node), Codec::Json, &SctpOptions::default())
            .await
            .expect("connect");
        let mut p = client.pushes().expect("pushes");
        let r = client.call("pusher", json!({"n": 3})).await.expect("call");
        assert_eq!(r["pushed"], 3);
        for i in 0..3 {
            let push = p.recv().await.expect("push");
            assert_eq!(push.topic, "burst");
            assert_eq!(push.data["i"], i);
        }
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn two_hundred_concurrent_associations() {
    if !sctp_or_skip("two_hundred_concurrent_associations") {
        return;
    }
    guarded(async {
        let node = start(config(|_| {})).await;
        let a = addr(&node);
        let before = closed(&node);
        let clients = futures::future::join_all((0..200).map(|_| async move {
            Client::connect_sctp(a, Codec::Json, &SctpOptions::default())
                .await
                .expect("connect")
        }))
        .await;
        let listener = node.listener("rpc").expect("listener").clone();
        wait_until("200 associations are open", || {
            listener.connections() == 200
        })
        .await;
        let calls = clients
            .iter()
            .enumerate()
            .map(|(i, c)| async move { (i, c.call("echo", json!({ "payload": i })).await) });
        for (i, r) in futures::future::join_all(calls).await {
            assert_eq!(r.expect("reply")["payload"], i);
        }
        drop(clients);
        wait_until("every association is closed", || {
            listener.connections() == 0
        })
        .await;
        wait_until("the closes are counted", || closed(&node) == before + 200).await;
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn association_aborted_mid_request() {
    if !sctp_or_skip("association_aborted_mid_request") {
        return;
    }
    guarded(async {
        let entered = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let node = Node::builder(config(|_| {}))
            .service(
                "hold",
                Arc::new(Hold {
                    entered: entered.clone(),
                    release: release.clone(),
                }),
            )
            .start()
            .await
            .expect("start");
        let listener = node.listener("rpc").expect("listener").clone();
        let before = closed(&node);
        let (mut tx, rx, s, _) = raw(addr(&node)).await;
        let body = json!({"id": 1, "service": "hold", "data": {}});
        tx.send((Bytes::from(body.to_string()), 1))
            .await
            .expect("send");
        entered.notified().await;
        // SO_LINGER 0 then close: the kernel sends an ABORT.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and a valid linger struct.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "SO_LINGER");
        drop(rx);
        drop(tx);
        drop(s);
        // The request finishes after its peer is gone; the reply has nowhere to go.
        release.notify_one();
        wait_until("the aborted association's actor ends", || {
            listener.connections() == 0
        })
        .await;
        wait_until("its close is counted", || closed(&node) == before + 1).await;
        // The node keeps serving.
        let client = Client::connect_sctp(addr(&node), Codec::Json, &SctpOptions::default())
            .await
            .expect("connect");
        client.call("ping", json!({})).await.expect("ping");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn bad_bodies_keep_the_association() {
    if !sctp_or_skip("bad_bodies_keep_the_association") {
        return;
    }
    guarded(async {
        let node = start(config(|_| {})).await;
        let mut conn = FrameConn::connect_sctp(addr(&node), &SctpOptions::default())
            .await
            .expect("connect");
        for bad in [
            &b"\xffgarbage"[..],
            b"{\"id\": 7}",
            b"[1,2,3]",
            b"{not json",
        ] {
            conn.send_frame(Bytes::copy_from_slice(bad))
                .await
                .expect("send");
            let reply: Value = Codec::Json
                .decode(&conn.recv_frame().await.expect("recv").expect("a reply"))
                .expect("json");
            assert_eq!(reply["error"]["code"], "BAD_REQUEST", "{reply}");
        }
        let reply = conn
            .request(
                Codec::Json,
                &json!({"id": "a", "service": "echo", "data": {"payload": 5}}),
            )
            .await
            .expect("reply");
        assert_eq!(reply["data"]["payload"], 5);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn message_too_large_closes_the_association() {
    if !sctp_or_skip("message_too_large_closes_the_association") {
        return;
    }
    guarded(async {
        let node = start(config(|c| c.sctp.max_message_bytes = 1024)).await;
        let mut conn = FrameConn::connect_sctp(addr(&node), &SctpOptions::default())
            .await
            .expect("connect");
        let big = json!({"id": 1, "service": "echo", "data": {"payload": "x".repeat(4096)}});
        conn.send_frame(Bytes::from(big.to_string()))
            .await
            .expect("send");
        let reply: Value = Codec::Json
            .decode(&conn.recv_frame().await.expect("recv").expect("a reply"))
            .expect("json");
        assert_eq!(reply["error"]["code"], "FRAME_TOO_LARGE", "{reply}");
        assert!(matches!(
            conn.recv_frame().await,
            Ok(None) | Err(ClientError::Io(_))
        ));
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn multi_homed_listener_answers_on_its_extra_address() {
    if !sctp_or_skip("multi_homed_listener_answers_on_its_extra_address") {
        return;
    }
    guarded(async {
        let node = start(config(|c| {
            c.sctp.extra_addresses = vec!["127.0.0.2".into()]
        }))
        .await;
        let extra = SocketAddr::new([127, 0, 0, 2].into(), addr(&node).port());
        let client = Client::connect_sctp(extra, Codec::Json, &SctpOptions::default())
            .await
            .expect("connect to the extra address");
        let r = client
            .call("echo", json!({"payload": "mh"}))
            .await
            .expect("echo");
        assert_eq!(r["payload"], "mh");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn suspend_and_resume_keep_associations() {
    if !sctp_or_skip("suspend_and_resume_keep_associations") {
        return;
    }
    guarded(async {
        let node = start(config(|_| {})).await;
        let a = addr(&node);
        let listener = node.listener("rpc").expect("listener").clone();
        let first = Client::connect_sctp(a, Codec::Json, &SctpOptions::default())
            .await
            .expect("connect");
        // Accepted (an association still in the accept queue dies with the
        // listening socket, as a TCP connection would).
        first.call("ping", json!({})).await.expect("ping");
        listener.suspend().await.expect("suspend");
        assert!(
            FrameConn::connect_sctp(a, &SctpOptions::default())
                .await
                .is_err(),
            "a suspended listener refuses new associations"
        );
        first
            .call("ping", json!({}))
            .await
            .expect("open association still served");
        listener.resume().await.expect("resume");
        let second = Client::connect_sctp(a, Codec::Json, &SctpOptions::default())
            .await
            .expect("connect after resume");
        second.call("ping", json!({})).await.expect("ping");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn large_messages_arrive_whole() {
    if !sctp_or_skip("large_messages_arrive_whole") {
        return;
    }
    guarded(async {
        let node = start(config(|_| {})).await;
        let client = Client::connect_sctp(addr(&node), Codec::MsgPack, &SctpOptions::default())
            .await
            .expect("connect");
        // Larger than one recvmsg buffer and than the path MTU: the kernel
        // fragments it and delivers it in parts, reassembled up to MSG_EOR.
        let calls = (0..4).map(|i| {
            let c = client.clone();
            async move {
                let payload = format!("{i}").repeat(300_000);
                let r = c.call("echo", json!({ "payload": payload })).await;
                (payload, r)
            }
        });
        for (payload, r) in futures::future::join_all(calls).await {
            assert_eq!(r.expect("reply")["payload"], payload);
        }
        node.shutdown().await;
    })
    .await;
}

/// Counts the calls running at once (and the most seen), each waiting for a
/// permit the test hands out.
struct Gate {
    permits: tokio::sync::Semaphore,
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Service for Gate {
    async fn call(&self, req: Request, _: &CallContext) -> Result<Value, ServiceError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        if let Ok(p) = self.permits.acquire().await {
            p.forget();
        }
        self.running.fetch_sub(1, SeqCst);
        Ok(req.data)
    }
}

#[tokio::test]
async fn in_flight_is_bounded_per_association() {
    if !sctp_or_skip("in_flight_is_bounded_per_association") {
        return;
    }
    guarded(async {
        use std::sync::atomic::Ordering::SeqCst;
        let gate = Arc::new(Gate {
            permits: tokio::sync::Semaphore::new(0),
            running: 0.into(),
            most: 0.into(),
        });
        let node = Node::builder(config(|c| c.rpc.max_in_flight = 4))
            .service("gate", gate.clone())
            .start()
            .await
            .expect("start");
        let (mut tx, mut rx, _a, _) = raw(addr(&node)).await;
        const N: u64 = 500;
        for id in 0..N {
            let body = json!({"id": id, "service": "gate", "data": {"i": id}});
            tx.feed((Bytes::from(body.to_string()), 1))
                .await
                .expect("send");
        }
        tx.flush().await.expect("all sent");
        wait_until("four calls run", || gate.running.load(SeqCst) == 4).await;
        // Give an unbounded server every chance to start more.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(gate.most.load(SeqCst), 4);
        gate.permits.add_permits(N as usize);
        for _ in 0..N {
            let (reply, _) = next_msg(&mut rx).await;
            assert!(reply.get("error").is_none(), "{reply}");
        }
        assert_eq!(gate.most.load(SeqCst), 4, "never more than max_in_flight");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_never_reads_is_cut_and_frees_its_slot() {
    if !sctp_or_skip("a_peer_that_never_reads_is_cut_and_frees_its_slot") {
        return;
    }
    guarded(async {
        let node = start(config(|c| {
            c.listeners[0].max_connections = 1;
            c.rpc.idle_timeout_ms = 0;
            c.rpc.write_stall_timeout_ms = 300;
        }))
        .await;
        let (mut tx, _unread, _a, _) = raw(addr(&node)).await;
        let body = json!({"id": 1, "service": "echo", "data": {"p": "x".repeat(64 << 10)}});
        let body = Bytes::from(body.to_string());
        let writer = tokio::spawn(async move {
            // 256 MiB: far more than both ends' buffers hold.
            for _ in 0..4096 {
                if tx.send((body.clone(), 1)).await.is_err() {
                    return;
                }
            }
        });
        let next = Client::connect_sctp(addr(&node), Codec::Json, &SctpOptions::default())
            .await
            .expect("connect");
        // Eventually (a generous bound, not a measurement).
        let r = tokio::time::timeout(Duration::from_secs(60), next.call("ping", json!({})))
            .await
            .expect("the stuck association is cut and the next one is served");
        assert_eq!(r.expect("ping")["pong"], json!(true));
        writer.abort();
        node.shutdown().await;
    })
    .await;
}

/// The echo request `id` on stream `sid` with a payload of `len` bytes.
fn echo_request(id: u64, sid: u16, len: usize) -> (Bytes, u16) {
    let payload = format!("{id}:").repeat(len / 4 + 1);
    let body = json!({"id": id, "service": "echo", "data": {"payload": payload, "sid": sid}});
    (Bytes::from(body.to_string()), sid)
}

#[tokio::test]
async fn pipelined_batches_on_several_streams_come_back_whole_and_in_stream_order() {
    if !sctp_or_skip("pipelined_batches_on_several_streams_come_back_whole_and_in_stream_order") {
        return;
    }
    guarded(async {
        let node = start(config(|_| {})).await;
        let (mut tx, mut rx, _a, status) = raw(addr(&node)).await;
        let streams = status.outstrms.min(8);
        assert!(streams >= 2, "{streams} streams");
        const N: u64 = 6000;
        // Mostly small, some larger than one receive slot (16 KiB) and
        // than one read of a message's parts (64 KiB).
        let len = |id: u64| match id {
            id if id % 997 == 0 => 150_000,
            id if id % 89 == 0 => 20_000,
            id => (id % 300) as usize,
        };
        // All fed, flushed in batches of several at a time: the requests go
        // out in as few sendmmsg calls as the buffers allow, while the
        // replies are read beside them.
        let writer = tokio::spawn(async move {
            for id in 0..N {
                let sid = (id % u64::from(streams)) as u16;
                tx.feed(echo_request(id, sid, len(id))).await?;
                if id % 500 == 499 {
                    tx.flush().await?;
                }
            }
            tx.flush().await?;
            Ok::<_, std::io::Error>(tx)
        });
        let mut last: Vec<Option<u64>> = vec![None; usize::from(streams)];
        for _ in 0..N {
            let (reply, sid) = next_msg(&mut rx).await;
            let id = reply["id"].as_u64().expect("an id");
            assert_eq!(
                u64::from(sid),
                id % u64::from(streams),
                "reply {id} on stream {sid}"
            );
            assert_eq!(reply["data"]["sid"], sid);
            let want = echo_request(id, sid, len(id)).0;
            let want: Value = serde_json::from_slice(&want).expect("json");
            assert_eq!(
                reply["data"]["payload"], want["data"]["payload"],
                "reply {id}"
            );
            // On each stream, the replies come back in the order sent.
            let prev = last[usize::from(sid)].replace(id);
            assert_eq!(
                prev.map_or(sid.into(), |p| p + u64::from(streams)),
                id,
                "stream {sid}"
            );
        }
        let tx = writer.await.expect("writer").expect("all sent");
        assert_eq!(tx.sent(), N);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_batch_with_garbage_and_an_oversized_message_is_answered_up_to_it() {
    if !sctp_or_skip("a_batch_with_garbage_and_an_oversized_message_is_answered_up_to_it") {
        return;
    }
    guarded(async {
        // The limit is above one receive slot, so the oversized message
        // arrives in parts inside one batch of reads. All on one stream:
        // SCTP orders messages within a stream only.
        let node = start(config(|c| c.sctp.max_message_bytes = 40_000)).await;
        let (mut tx, mut rx, _a, _) = raw(addr(&node)).await;
        let mut batch: Vec<(Bytes, u16)> = Vec::new();
        for id in 0..20 {
            batch.push(echo_request(id, 1, 30));
        }
        batch.push((Bytes::from_static(b"\xff\x00garbage"), 1));
        batch.push((Bytes::from(vec![b'{'; 39_000]), 1));
        batch.push(echo_request(20, 1, 30_000)); // under the limit: answered
        batch.push((Bytes::from(vec![b'x'; 100_000]), 1)); // over it
        for id in 21..30 {
            batch.push(echo_request(id, 1, 30));
        }
        for m in batch {
            tx.feed(m).await.expect("queued");
        }
        tx.flush().await.expect("sent");
        for id in 0..20u64 {
            let (reply, sid) = next_msg(&mut rx).await;
            assert_eq!((&reply["id"], sid), (&json!(id), 1), "{reply}");
        }
        for _ in 0..2 {
            let (reply, sid) = next_msg(&mut rx).await;
            assert_eq!(reply["error"]["code"], "BAD_REQUEST", "{reply}");
            assert_eq!(sid, 1);
        }
        let (reply, _) = next_msg(&mut rx).await;
        assert_eq!(reply["id"], 20, "{}", reply["error"]);
        let (reply, _) = next_msg(&mut rx).await;
        assert_eq!(reply["error"]["code"], "FRAME_TOO_LARGE", "{reply}");
        // Nothing after the oversized message is answered: the server
        // shuts the association down.
        match rx.next().await {
            None | Some(Err(_)) => {}
            Some(other) => panic!("expected the end, got {other:?}"),
        }
        node.shutdown().await;
    })
    .await;
}
