//! A real node (`Node::builder(..).start()`) on 127.0.0.1, port 0, driven over
//! TCP by the real client: encodings, pipelining, many connections,
//! back-pressure, crashes and restarts in the listener subtree, suspend and
//! resume, graceful drain, idle timeout, write-stall timeout, the work of
//! closed and reset connections.
//!
//! Tests synchronise on events (replies, closed sockets, supervisor state);
//! where a state must be waited for (a restarted child, a connection count)
//! they poll it in a bounded loop. No assertion is about time, except the
//! ones that something does NOT happen while it must not (a reply held back
//! by `max_connections`).

mod support {
    pub(crate) mod child_cell;
    pub(crate) mod gate;
    pub(crate) mod guard;
    pub(crate) mod wait;
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::child_cell::child_cell;
use support::gate::Gate;
use support::guard::guarded;
use support::wait::wait_until;

use corral::async_trait;
use corral::client::{Client, ClientError, Codec, FrameConn};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::rpc::{CallContext, Request, Service, ServiceError};
use corral::supervisor::{ChildState, Restart, Supervisor, SupervisorError};
use corral::transport::Transport;
use ractor::{ActorCell, ActorId};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// An RPC listener on 127.0.0.1, a free port, a short drain.
fn rpc_listener(name: &str) -> ListenerConfig {
    let mut l = ListenerConfig::new(name, Transport::Tcp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = 1_000;
    l
}

/// The embedded default with these listeners instead of the defaults.
fn config(listeners: Vec<ListenerConfig>) -> Config {
    let mut c = Config::embedded_default();
    c.listeners = listeners;
    // The chat has tests of its own (tests/chat_*.rs).
    c.chat.enabled = false;
    c.node.shutdown_timeout_ms = 20_000;
    c
}

async fn start(config: Config) -> Node {
    Node::start(config).await.expect("the node starts")
}

fn rpc_addr(node: &Node) -> SocketAddr {
    node.local_addr("rpc").expect("the rpc listener is bound")
}

/// Σ i*i mod 1_000_000_007 for i in 0..n, as the `compute` service defines it.
fn compute(n: u64) -> u64 {
    const MOD: u64 = 1_000_000_007;
    (0..n).fold(0, |acc, i| (acc + (i * i) % MOD) % MOD)
}

/// The `listener_sup:<name>` supervisor of a node.
async fn listener_sup(node: &Node, name: &str) -> Supervisor {
    let id = format!("listener_sup:{name}");
    let cell = child_cell(node.root(), &id)
        .await
        .unwrap_or_else(|| panic!("{id} is running under the root"));
    Supervisor::from_cell(cell).expect("listener_sup is a supervisor")
}

/// Waits until child `id` of `sup` runs as an actor other than `old`.
async fn wait_restarted(sup: &Supervisor, id: &str, old: ActorId) -> ActorCell {
    for _ in 0..2_000 {
        if let Some(cell) = child_cell(sup, id).await {
            if cell.get_id() != old {
                return cell;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} was not restarted");
}

/// Reads frames until the server closes the connection; panics on a reset
/// (the server must close cleanly) or on a frame (none is expected).
async fn expect_eof(conn: &mut FrameConn, what: &str) {
    match conn.recv_frame().await {
        Ok(None) => {}
        Ok(Some(f)) => panic!("{what}: expected EOF, got a frame: {f:?}"),
        Err(e) => panic!("{what}: expected EOF, got an error: {e}"),
    }
}

async fn ping(client: &Client) {
    let r = client.call("ping", json!({})).await.expect("ping answers");
    assert_eq!(r, json!({"pong": true}));
}

/// A service that panics.
struct Boom;

#[async_trait]
impl Service for Boom {
    async fn call(&self, _: Request, _: &CallContext) -> Result<Value, ServiceError> {
        panic!("boom (a test service panicking on purpose)");
    }
}

// 1. Both encodings and the ThreadCenter shape, through the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_msgpack_and_thread_center_through_the_node() {
    guarded(async {
        let node = start(config(vec![rpc_listener("rpc")])).await;
        let addr = rpc_addr(&node);
        for codec in [Codec::Json, Codec::MsgPack] {
            let client = Client::connect(addr, codec).await.expect("connects");
            ping(&client).await;
            let data = json!({"text": "héllo", "list": [1, 2, 3], "nested": {"ok": true}});
            let echoed = client.call("echo", data.clone()).await.expect("echo");
            assert_eq!(echoed, data, "echo over {codec}");
            let computed = client.call("compute", json!({"n": 1000})).await;
            assert_eq!(
                computed.expect("compute"),
                json!({"result": compute(1000)}),
                "compute over {codec}"
            );
            match client.call("no_such_service", json!({})).await {
                Err(ClientError::Rpc { code, .. }) => assert_eq!(code, "UNKNOWN_SERVICE"),
                other => panic!("unknown service over {codec}: {other:?}"),
            }
            // The connection survives the error.
            ping(&client).await;
        }

        // ThreadCenter shape, JSON and MessagePack, on raw frames.
        let mut conn = FrameConn::connect(addr).await.expect("connects");
        let r = conn
            .request(
                Codec::Json,
                &json!({"id": "t1", "cmd": "compute", "n": 1000}),
            )
            .await
            .expect("reply");
        assert_eq!(r, json!({"id": "t1", "result": compute(1000)}));
        let r = conn
            .request(
                Codec::Json,
                &json!({"id": "t2", "cmd": "echo", "payload": "hi"}),
            )
            .await
            .expect("reply");
        assert_eq!(r, json!({"id": "t2", "result": "hi"}));
        let r = conn
            .request(Codec::Json, &json!({"id": "t3", "cmd": "echo"}))
            .await
            .expect("reply");
        assert_eq!(r["id"], json!("t3"));
        assert_eq!(r["error"]["code"], json!("BAD_REQUEST"), "{r}");
        assert!(r.get("result").is_none(), "{r}");
        let r = conn
            .request(Codec::MsgPack, &json!({"id": 7, "cmd": "ping"}))
            .await
            .expect("reply");
        assert_eq!(r, json!({"id": 7, "result": "pong"}));
        let r = conn
            .request(Codec::MsgPack, &json!({"id": 8, "cmd": "compute", "n": 10}))
            .await
            .expect("reply");
        assert_eq!(r, json!({"id": 8, "result": compute(10)}));
        drop(conn);
        node.shutdown().await;
    })
    .await;
}

fn request(id: u64, service: &str, data: Value) -> bytes::Bytes {
    Codec::Json
        .encode(&json!({"id": id, "service": service, "data": data}))
        .expect("encodes")
}

async fn recv_json(conn: &mut FrameConn) -> Value {
    let body = conn
        .recv_frame()
        .await
        .expect("reads a frame")
        .expect("a frame, not EOF");
    Codec::Json.decode(&body).expect("a JSON reply")
}

// 2a. Pipelining: a long compute does not hold back a later echo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_echo_overtakes_a_long_compute() {
    guarded(async {
        let node = start(config(vec![rpc_listener("rpc")])).await;
        let mut conn = FrameConn::connect(rpc_addr(&node)).await.expect("connects");
        let n = 20_000_000u64;
        conn.feed_frame(request(1, "compute", json!({"n": n})))
            .await
            .expect("queued");
        conn.feed_frame(request(2, "echo", json!({"after": "compute"})))
            .await
            .expect("queued");
        conn.flush().await.expect("sent");
        let first = recv_json(&mut conn).await;
        assert_eq!(
            first["id"],
            json!(2),
            "the echo's reply comes first: {first}"
        );
        assert_eq!(first["data"], json!({"after": "compute"}));
        let second = recv_json(&mut conn).await;
        assert_eq!(second["id"], json!(1), "{second}");
        assert_eq!(second["data"], json!({"result": compute(n)}));
        drop(conn);
        node.shutdown().await;
    })
    .await;
}

// 2b. Pipelining, deterministic: a request held in its service does not
// hold back the replies of the requests sent after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_replies_come_out_of_order() {
    guarded(async {
        let gate = Gate::new();
        let node = Node::builder(config(vec![rpc_listener("rpc")]))
            .service("gate", gate.clone())
            .start()
            .await
            .expect("starts");
        let mut conn = FrameConn::connect(rpc_addr(&node)).await.expect("connects");
        conn.feed_frame(request(1, "gate", json!({"held": true})))
            .await
            .expect("queued");
        conn.feed_frame(request(2, "echo", json!({"n": 2})))
            .await
            .expect("queued");
        conn.feed_frame(request(3, "ping", json!({})))
            .await
            .expect("queued");
        conn.flush().await.expect("sent");
        let mut early = Vec::new();
        for _ in 0..2 {
            early.push(recv_json(&mut conn).await["id"].clone());
        }
        early.sort_by_key(|v| v.as_u64());
        assert_eq!(early, vec![json!(2), json!(3)]);
        gate.wait_entered(1).await;
        gate.release(1);
        let last = recv_json(&mut conn).await;
        assert_eq!(
            last,
            json!({"id": 1, "service": "gate", "data": {"held": true}})
        );
        drop(conn);
        node.shutdown().await;
    })
    .await;
}

/// Raises the soft limit on open files to at least `want` (up to the hard
/// limit); panics if the hard limit is lower.
fn raise_nofile(want: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    if lim.rlim_cur >= want {
        return;
    }
    assert!(
        lim.rlim_max == libc::RLIM_INFINITY || lim.rlim_max >= want,
        "the hard limit on open files ({}) is below the {want} this test needs",
        lim.rlim_max
    );
    lim.rlim_cur = want;
    // SAFETY: setrlimit reads the struct we own.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

// 3. A thousand connections open at once, each completing a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections() {
    const N: usize = 1_000;
    // Client and server ends of every connection, plus headroom.
    raise_nofile(2 * N as libc::rlim_t + 512);
    guarded(async {
        let node = start(config(vec![rpc_listener("rpc")])).await;
        let addr = rpc_addr(&node);
        let all_called = Arc::new(Barrier::new(N + 1));
        let release = Arc::new(Barrier::new(N + 1));
        let mut tasks = Vec::with_capacity(N);
        for i in 0..N {
            let all_called = all_called.clone();
            let release = release.clone();
            tasks.push(tokio::spawn(async move {
                let codec = if i % 2 == 0 {
                    Codec::Json
                } else {
                    Codec::MsgPack
                };
                let client = Client::connect(addr, codec).await.expect("connects");
                let r = client.call("echo", json!({"i": i})).await;
                all_called.wait().await;
                // Hold the connection open until every call is done.
                release.wait().await;
                drop(client);
                r
            }));
        }
        all_called.wait().await;
        let listener = node.listener("rpc").expect("rpc listener");
        assert_eq!(listener.connections(), N, "all connections open at once");
        release.wait().await;
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.expect("task").expect("call");
            assert_eq!(r, json!({"i": i}));
        }
        wait_until("every connection is closed", || listener.connections() == 0).await;
        node.shutdown().await;
    })
    .await;
}

// 4. max_connections is back-pressure: the third client waits in the
// backlog until one of the first two closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_the_next_client_in_the_backlog() {
    guarded(async {
        let mut l = rpc_listener("rpc");
        l.max_connections = 2;
        let node = start(config(vec![l])).await;
        let addr = rpc_addr(&node);
        let listener = node.listener("rpc").expect("rpc listener").clone();
        let first = Client::connect(addr, Codec::Json).await.expect("connects");
        let second = Client::connect(addr, Codec::Json).await.expect("connects");
        ping(&first).await;
        ping(&second).await;
        // The handshake completes in the kernel; the call waits.
        let third = Client::connect(addr, Codec::Json)
            .await
            .expect("the kernel completes the handshake");
        let mut pending = tokio::spawn(async move {
            let r = third.call("echo", json!({"third": true})).await;
            (third, r)
        });
        let held = tokio::time::timeout(Duration::from_millis(300), &mut pending).await;
        assert!(
            held.is_err(),
            "the third client must get no reply while two are open: {held:?}"
        );
        assert_eq!(listener.connections(), 2);
        ping(&second).await;
        drop(first);
        let (third, r) = pending.await.expect("task");
        assert_eq!(r.expect("served once a slot frees"), json!({"third": true}));
        ping(&third).await;
        ping(&second).await;
        assert_eq!(listener.connections(), 2);
        drop((second, third));
        node.shutdown().await;
    })
    .await;
}

// 5. A panicking service kills only its own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_service_kills_only_its_connection() {
    guarded(async {
        let node = Node::builder(config(vec![rpc_listener("rpc")]))
            .service("boom", Arc::new(Boom))
            .start()
            .await
            .expect("starts");
        let addr = rpc_addr(&node);
        let sup = listener_sup(&node, "rpc").await;
        let acceptor = child_cell(&sup, "acceptor_sup").await.expect("running");
        let listener_actor = child_cell(&sup, "listener").await.expect("running");

        let bystander = Client::connect(addr, Codec::Json).await.expect("connects");
        ping(&bystander).await;
        let mut victim = FrameConn::connect(addr).await.expect("connects");
        let r = victim
            .request(
                Codec::Json,
                &json!({"id": 1, "service": "ping", "data": {}}),
            )
            .await
            .expect("reply");
        assert_eq!(r["data"], json!({"pong": true}));
        victim
            .send_frame(request(2, "boom", json!({})))
            .await
            .expect("sent");
        expect_eof(&mut victim, "the panicking connection").await;

        ping(&bystander).await;
        let newcomer = Client::connect(addr, Codec::MsgPack)
            .await
            .expect("connects");
        ping(&newcomer).await;
        // Nothing above the connection was restarted.
        assert_eq!(
            child_cell(&sup, "acceptor_sup").await.map(|c| c.get_id()),
            Some(acceptor.get_id())
        );
        assert_eq!(
            child_cell(&sup, "listener").await.map(|c| c.get_id()),
            Some(listener_actor.get_id())
        );
        let listener = node.listener("rpc").expect("rpc listener");
        wait_until("the panicked connection is released", || {
            listener.connections() == 2
        })
        .await;
        drop((bystander, newcomer));
        node.shutdown().await;
    })
    .await;
}

// 6. Killing the listener restarts it alone: open connections live on and
// new ones are accepted on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_is_restarted_and_connections_live_on() {
    guarded(async {
        let node = start(config(vec![rpc_listener("rpc")])).await;
        let addr = rpc_addr(&node);
        let sup = listener_sup(&node, "rpc").await;
        let acceptor = child_cell(&sup, "acceptor_sup").await.expect("running");
        let old = child_cell(&sup, "listener").await.expect("running");

        let client = Client::connect(addr, Codec::Json).await.expect("connects");
        ping(&client).await;
        old.kill();
        wait_restarted(&sup, "listener", old.get_id()).await;

        assert_eq!(
            child_cell(&sup, "acceptor_sup").await.map(|c| c.get_id()),
            Some(acceptor.get_id()),
            "rest_for_one: acceptor_sup, before the listener, is left alone"
        );
        assert!(!client.is_closed(), "the open connection survives");
        ping(&client).await;
        assert_eq!(node.local_addr("rpc"), Some(addr), "same address");
        let newcomer = Client::connect(addr, Codec::Json).await.expect("connects");
        ping(&newcomer).await;
        ping(&client).await;
        drop((client, newcomer));
        node.shutdown().await;
    })
    .await;
}

// acceptor_sup answers as a supervisor: its connections are counted and
// listed (tasks, temporary), and what it does not do is refused, not hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_sup_lists_and_counts_its_connections() {
    guarded(async {
        let node = start(config(vec![rpc_listener("rpc")])).await;
        let addr = rpc_addr(&node);
        let sup = listener_sup(&node, "rpc").await;
        let acceptor = child_cell(&sup, "acceptor_sup").await.expect("running");
        let acceptor = Supervisor::from_cell(acceptor).expect("a supervisor");
        let mut clients = Vec::new();
        for _ in 0..3 {
            let c = Client::connect(addr, Codec::Json).await.expect("connects");
            ping(&c).await;
            clients.push(c);
        }
        let counts = acceptor.count_children().await.expect("counts");
        assert_eq!((counts.specs, counts.active, counts.workers), (1, 3, 3));
        let rows = acceptor.which_children().await.expect("rows");
        assert_eq!(rows.len(), 3);
        for row in &rows {
            assert!(matches!(row.state, ChildState::Task), "{row:?}");
            assert_eq!(row.restart, Restart::Temporary);
            assert!(row.history.uptime.is_some());
        }
        assert!(matches!(
            acceptor.terminate_child("connection").await,
            Err(SupervisorError::Unsupported(_))
        ));
        drop(clients.pop());
        wait_until("the closed connection leaves acceptor_sup", || {
            node.listener("rpc").expect("rpc").connections() == 2
        })
        .await;
        // Its row goes once its task has ended, just after the count.
        let mut active = 0;
        for _ in 0..500 {
            active = acceptor.count_children().await.expect("counts").active;
            if active == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(active, 2);
        drop(clients);
        node.shutdown().await;
    })
    .await;
}

// 7. Killing acceptor_sup takes its connections with it, and rest_for_one
// restarts both acceptor_sup and the listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_acceptor_sup_closes_connections_and_restarts_the_rest() {
    guarded(async {
        let node = start(config(vec![rpc_listener("rpc")])).await;
        let addr = rpc_addr(&node);
        let sup = listener_sup(&node, "rpc").await;
        let acceptor = child_cell(&sup, "acceptor_sup").await.expect("running");
        let listener_actor = child_cell(&sup, "listener").await.expect("running");

        let mut conns = Vec::new();
        for i in 0..2u64 {
            let mut c = FrameConn::connect(addr).await.expect("connects");
            let r = c
                .request(
                    Codec::Json,
                    &json!({"id": i, "service": "ping", "data": {}}),
                )
                .await
                .expect("reply");
            assert_eq!(r["data"], json!({"pong": true}));
            conns.push(c);
        }
        acceptor.kill();
        for c in &mut conns {
            expect_eof(c, "a connection of the killed acceptor_sup").await;
        }
        wait_restarted(&sup, "acceptor_sup", acceptor.get_id()).await;
        wait_restarted(&sup, "listener", listener_actor.get_id()).await;
        let listener = node.listener("rpc").expect("rpc listener");
        wait_until("the old connections are released", || {
            listener.connections() == 0
        })
        .await;
        wait_until("the listener accepts again", || listener.is_accepting()).await;
        let client = Client::connect(addr, Codec::Json).await.expect("connects");
        ping(&client).await;
        assert_eq!(listener.connections(), 1);
        drop(client);
        node.shutdown().await;
    })
    .await;
}

// 8. Suspend refuses new clients and keeps the open ones; resume accepts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_refuses_new_clients_and_resume_accepts_again() {
    guarded(async {
        let node = start(config(vec![rpc_listener("rpc")])).await;
        let addr = rpc_addr(&node);
        let listener = node.listener("rpc").expect("rpc listener").clone();
        let client = Client::connect(addr, Codec::Json).await.expect("connects");
        ping(&client).await;

        listener.suspend().await.expect("suspends");
        assert!(!listener.is_accepting());
        let refused = TcpStream::connect(addr).await;
        assert!(
            refused.is_err(),
            "a new connection must be refused while suspended"
        );
        ping(&client).await;
        assert_eq!(listener.connections(), 1);

        listener.resume().await.expect("resumes");
        assert!(listener.is_accepting());
        assert_eq!(node.local_addr("rpc"), Some(addr));
        let newcomer = Client::connect(addr, Codec::MsgPack)
            .await
            .expect("connects");
        ping(&newcomer).await;
        ping(&client).await;

        // The socket is closed by the time suspend returns, every time.
        for round in 0..50 {
            listener.suspend().await.expect("suspends");
            if let Ok(s) = TcpStream::connect(addr).await {
                panic!("round {round}: connected to a suspended listener: {s:?}");
            }
            listener.resume().await.expect("resumes");
        }
        let last = Client::connect(addr, Codec::Json).await.expect("connects");
        ping(&last).await;
        drop((client, newcomer, last));
        node.shutdown().await;
    })
    .await;
}

// 9. Graceful drain: a request in flight when shutdown starts is answered
// before its connection closes, and shutdown returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_request_in_flight() {
    guarded(async {
        let gate = Gate::new();
        // A drain long enough never to be what ends this one: the test
        // releases the request itself (the guard catches a hang).
        let mut l = rpc_listener("rpc");
        l.drain_timeout_ms = 60_000;
        let mut c = config(vec![l]);
        c.node.shutdown_timeout_ms = 90_000;
        let node = Node::builder(c)
            .service("slow", gate.clone())
            .start()
            .await
            .expect("starts");
        let addr = rpc_addr(&node);
        let listener = node.listener("rpc").expect("rpc listener").clone();
        let mut conn = FrameConn::connect(addr).await.expect("connects");
        conn.send_frame(request(1, "slow", json!({"slow": true})))
            .await
            .expect("sent");
        gate.wait_entered(1).await;

        let shutdown = tokio::spawn(node.shutdown());
        wait_until("the listener stops accepting", || !listener.is_accepting()).await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no new connection during the drain"
        );
        assert!(
            !shutdown.is_finished(),
            "shutdown waits for the request in flight"
        );
        gate.release(1);
        let reply = recv_json(&mut conn).await;
        assert_eq!(
            reply,
            json!({"id": 1, "service": "slow", "data": {"slow": true}})
        );
        expect_eof(&mut conn, "the drained connection").await;
        drop(conn);
        shutdown.await.expect("shutdown returns");
        assert_eq!(listener.connections(), 0);
    })
    .await;
}

// 10. The server closes a connection idle for longer than rpc.idle_timeout_ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_by_the_server() {
    guarded(async {
        let mut c = config(vec![rpc_listener("rpc")]);
        c.rpc.idle_timeout_ms = 200;
        let node = start(c).await;
        let addr = rpc_addr(&node);
        // One that made a call, one that never said anything.
        let mut active = FrameConn::connect(addr).await.expect("connects");
        let r = active
            .request(
                Codec::Json,
                &json!({"id": 1, "service": "ping", "data": {}}),
            )
            .await
            .expect("reply");
        assert_eq!(r["data"], json!({"pong": true}));
        let mut silent = FrameConn::connect(addr).await.expect("connects");
        expect_eof(&mut active, "the idle connection after a call").await;
        expect_eof(&mut silent, "the connection that never spoke").await;
        let listener = node.listener("rpc").expect("rpc listener");
        drop((active, silent));
        wait_until("both connections are released", || {
            listener.connections() == 0
        })
        .await;
        // The node itself goes on.
        let client = Client::connect(addr, Codec::Json).await.expect("connects");
        ping(&client).await;
        drop(client);
        node.shutdown().await;
    })
    .await;
}

/// A frame of `request(id, service, data)`, length prefix included.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

// 11. A client that pipelines requests and never reads its replies is cut
// after rpc.write_stall_timeout_ms, even with idle_timeout_ms = 0 (never),
// and its max_connections slot goes to the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_and_frees_its_slot() {
    guarded(async {
        let mut l = rpc_listener("rpc");
        l.max_connections = 1;
        let mut c = config(vec![l]);
        c.rpc.idle_timeout_ms = 0;
        c.rpc.write_stall_timeout_ms = 300;
        let node = start(c).await;
        let addr = rpc_addr(&node);
        let stuck = TcpStream::connect(addr).await.expect("connects");
        let (_unread, mut w) = stuck.into_split();
        let frame = framed(&request(1, "echo", json!({"p": "x".repeat(16 << 10)})));
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // 64 MiB: more than both ends' kernel buffers hold.
            for _ in 0..4096 {
                if w.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        let next = Client::connect(addr, Codec::Json).await.expect("connects");
        // Eventually (a generous bound, not a measurement).
        let r = tokio::time::timeout(Duration::from_secs(30), next.call("ping", json!({})))
            .await
            .expect("the stuck client is cut and the next one is served");
        assert_eq!(r.expect("ping answers"), json!({"pong": true}));
        writer.abort();
        drop(next);
        node.shutdown().await;
    })
    .await;
}

/// A compute long enough that 1000 of them on two workers would take
/// minutes, even in a release build; short enough that the two running when
/// their connection goes away finish soon.
const LONG_COMPUTE: u64 = 15_000_000;

/// Sends `count` computes of `n` on a new connection, waits until both
/// compute workers are busy, then closes the connection: with a reset
/// (SO_LINGER 0) when `reset`, else cleanly.
async fn computes_then_close(addr: SocketAddr, count: u64, n: u64, reset: bool) {
    use tokio::io::AsyncWriteExt;
    let mut gone = TcpStream::connect(addr).await.expect("connects");
    let mut all = Vec::new();
    for id in 0..count {
        all.extend(framed(&request(id, "compute", json!({ "n": n }))));
    }
    gone.write_all(&all).await.expect("sent");
    let watcher = Client::connect(addr, Codec::Json).await.expect("connects");
    loop {
        let stats = watcher.call("stats", json!({})).await.expect("stats");
        if stats["compute_busy"] == json!(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(watcher);
    if reset {
        socket2::SockRef::from(&gone)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER");
    }
    drop(gone);
}

/// A compute n=1 on a new connection, answered within 5 s (a generous
/// bound: the pool is free, or busy with at most one computation the node
/// could not stop).
async fn compute_one_promptly(addr: SocketAddr) {
    let client = Client::connect(addr, Codec::Json).await.expect("connects");
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        client.call("compute", json!({"n": 1})),
    )
    .await
    .expect("compute n=1 is answered within 5 s");
    assert_eq!(r.expect("compute answers"), json!({"result": 0}));
}

// 12. The requests of a connection that is gone do not hold the compute
// pool: 1000 computes are sent on a socket that then closes; a compute n=1
// from another client is answered promptly (the queued ones are dropped
// once a reply cannot be written, the running ones stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queued_work_of_a_closed_connection_is_dropped() {
    guarded(async {
        let mut c = config(vec![rpc_listener("rpc")]);
        c.rpc.compute_workers = 2;
        let node = start(c).await;
        let addr = rpc_addr(&node);
        computes_then_close(addr, 1000, LONG_COMPUTE, false).await;
        compute_one_promptly(addr).await;
        node.shutdown().await;
    })
    .await;
}

// 13. The same with a connection reset while its requests wait for the
// pool, the running ones as long as the node allows: they are dropped and
// stopped at once, not run until a reply fails to go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_of_a_reset_connection_is_dropped_and_stopped() {
    guarded(async {
        let mut c = config(vec![rpc_listener("rpc")]);
        c.rpc.compute_workers = 2;
        let max_n = c.rpc.compute_max_n;
        let node = start(c).await;
        let addr = rpc_addr(&node);
        computes_then_close(addr, 20, max_n, true).await;
        compute_one_promptly(addr).await;
        node.shutdown().await;
    })
    .await;
}
