//! A node's graceful shutdown (`Node::shutdown`, what SIGTERM runs): every
//! listener stops accepting at once, they drain in parallel, requests in
//! flight are answered, and the whole stays within `shutdown_timeout_ms`.
//!
//! The bounds on elapsed time here are not measurements: they tell a
//! parallel drain from a sequential one (each drain lasts seconds), and
//! check the documented deadline with a margin far above scheduling noise.

mod support {
    pub(crate) mod gate;
    pub(crate) mod guard;
    pub(crate) mod wait;
}

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use corral::client::{Codec, FrameConn};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use serde_json::{json, Value};
use support::gate::Gate;
use support::guard::guarded;
use support::wait::wait_until;
use tokio::net::TcpStream;

fn rpc_listener(name: &str, drain_timeout_ms: u64) -> ListenerConfig {
    let mut l = ListenerConfig::new(name, Transport::Tcp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = drain_timeout_ms;
    l
}

/// Two RPC listeners, `a` then `b`, and the `slow` gate service.
async fn start(
    drain_timeout_ms: u64,
    shutdown_timeout_ms: u64,
    gate: &std::sync::Arc<Gate>,
) -> Node {
    let mut c = Config::embedded_default();
    c.listeners = vec![
        rpc_listener("a", drain_timeout_ms),
        rpc_listener("b", drain_timeout_ms),
    ];
    c.chat.enabled = false;
    c.node.shutdown_timeout_ms = shutdown_timeout_ms;
    Node::builder(c)
        .service("slow", gate.clone())
        .start()
        .await
        .expect("the node starts")
}

fn addr(node: &Node, name: &str) -> SocketAddr {
    node.local_addr(name).expect("the listener is bound")
}

/// A connection with one `slow` request in flight.
async fn in_flight(addr: SocketAddr, id: u64) -> FrameConn {
    let mut conn = FrameConn::connect(addr).await.expect("connects");
    let frame = Codec::Json
        .encode(&json!({"id": id, "service": "slow", "data": {"id": id}}))
        .expect("encodes");
    conn.send_frame(frame).await.expect("sent");
    conn
}

async fn recv_json(conn: &mut FrameConn) -> Value {
    let body = conn
        .recv_frame()
        .await
        .expect("reads a frame")
        .expect("a frame, not EOF");
    Codec::Json.decode(&body).expect("a JSON reply")
}

// Every listener stops accepting as soon as shutdown starts, not when its
// turn in the tree's stop order comes; the requests in flight on both are
// answered before their connections close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_listeners_stop_accepting_at_once_and_answer_what_is_in_flight() {
    guarded(async {
        let gate = Gate::new();
        let node = start(60_000, 90_000, &gate).await;
        let (a, b) = (addr(&node, "a"), addr(&node, "b"));
        let handles = [
            node.listener("a").expect("a").clone(),
            node.listener("b").expect("b").clone(),
        ];
        let mut conns = [in_flight(a, 1).await, in_flight(b, 2).await];
        gate.wait_entered(2).await;

        let shutdown = tokio::spawn(node.shutdown());
        wait_until("both listeners stop accepting", || {
            handles.iter().all(|h| !h.is_accepting())
        })
        .await;
        for (name, addr) in [("a", a), ("b", b)] {
            assert!(
                TcpStream::connect(addr).await.is_err(),
                "listener {name} refuses new connections while the node drains"
            );
        }
        assert!(
            !shutdown.is_finished(),
            "shutdown waits for the requests in flight"
        );
        gate.release(2);
        for (i, conn) in conns.iter_mut().enumerate() {
            let id = i as u64 + 1;
            let reply = recv_json(conn).await;
            assert_eq!(
                reply,
                json!({"id": id, "service": "slow", "data": {"id": id}})
            );
            assert!(
                matches!(conn.recv_frame().await, Ok(None)),
                "the drained connection {id} closes cleanly"
            );
        }
        shutdown.await.expect("shutdown returns");
    })
    .await;
}

// Two listeners whose connections never finish drain side by side: the
// shutdown takes one drain timeout, not the sum of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_drain_in_parallel() {
    guarded(async {
        const DRAIN: Duration = Duration::from_secs(3);
        let gate = Gate::new();
        let node = start(DRAIN.as_millis() as u64, 60_000, &gate).await;
        let _conns = [
            in_flight(addr(&node, "a"), 1).await,
            in_flight(addr(&node, "b"), 2).await,
        ];
        gate.wait_entered(2).await;
        let started = Instant::now();
        node.shutdown().await;
        let took = started.elapsed();
        assert!(
            took < DRAIN * 2 - Duration::from_millis(500),
            "two {DRAIN:?} drains in parallel took {took:?}: they ran one after the other"
        );
    })
    .await;
}

// A connection that never finishes cannot hold the shutdown past
// shutdown_timeout_ms, even with a longer drain timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_within_its_timeout() {
    guarded(async {
        const TIMEOUT: Duration = Duration::from_secs(2);
        let gate = Gate::new();
        let node = start(60_000, TIMEOUT.as_millis() as u64, &gate).await;
        let _conns = [
            in_flight(addr(&node, "a"), 1).await,
            in_flight(addr(&node, "b"), 2).await,
        ];
        gate.wait_entered(2).await;
        let started = Instant::now();
        node.shutdown().await;
        let took = started.elapsed();
        // The deadline, and a margin for the scheduler of a loaded machine.
        assert!(
            took <= TIMEOUT + Duration::from_millis(250),
            "shutdown_timeout_ms = {TIMEOUT:?}, the shutdown took {took:?}"
        );
    })
    .await;
}
