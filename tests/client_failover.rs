//! `ChatSession` over several real nodes (single-node mode, each with its
//! own store and the channel created): it moves to the next node when the
//! one it is on goes away, logs in again, resubscribes, and retries the cut
//! write with the same `client_id` (seen on the nodes' histories). Hostile:
//! an unreachable entry in the list, every node down, a server that answers
//! garbage.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral::client::{ChatSession, Client, Codec, FrameConn, SessionError, SessionOptions};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Against hangs only: no test waits this long when it passes.
const GUARD: Duration = Duration::from_secs(120);

/// A node with the chat on `dir`, RPC on a free port.
async fn node(dir: &Path) -> (Node, SocketAddr) {
    let mut c = Config::embedded_default();
    let mut l = ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c.node.data_dir = dir.to_path_buf();
    let node = Node::start(c).await.expect("the node starts");
    let addr = node.local_addr("rpc").expect("bound");
    (node, addr)
}

/// A plain client of `addr`, for set-up and checks.
async fn client(addr: SocketAddr) -> Client {
    Client::connect(addr, Codec::Json).await.expect("connects")
}

/// Creates `channel` on the node at `addr`.
async fn channel(addr: SocketAddr, channel: &str) {
    let c = client(addr).await;
    c.call("channel", json!({ "channel": channel }))
        .await
        .expect("channel created");
}

/// `client_id` -> how many events of `channel` on the node at `addr` have it.
async fn ids_in_history(addr: SocketAddr, channel: &str) -> HashMap<String, usize> {
    let c = client(addr).await;
    let h = c
        .call("history", json!({ "channel": channel, "limit": 500 }))
        .await
        .expect("history");
    let mut ids = HashMap::new();
    for e in h["messages"].as_array().expect("messages") {
        if let Some(id) = e["client_id"].as_str() {
            *ids.entry(id.to_string()).or_default() += 1;
        }
    }
    ids
}

/// The `client_id` of the one event of `channel` whose message is `message`
/// on the node at `addr`.
async fn id_of(addr: SocketAddr, channel: &str, message: &str) -> String {
    let c = client(addr).await;
    let h = c
        .call("history", json!({ "channel": channel, "limit": 500 }))
        .await
        .expect("history");
    let found: Vec<String> = h["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|e| e["message"] == message)
        .map(|e| e["client_id"].as_str().expect("a client_id").to_string())
        .collect();
    assert_eq!(found.len(), 1, "{message:?} on {addr}: {h}");
    found[0].clone()
}

/// Options for quick tests: short backoffs (the bounds still hold).
fn options(addrs: &[String]) -> SessionOptions {
    let mut o = SessionOptions::new(addrs).expect("addresses");
    o.backoff = Duration::from_millis(10);
    o.max_backoff = Duration::from_millis(100);
    o
}

/// A TCP relay in front of a node that, once `cut` is set, swallows the
/// next reply (a frame with an `id`) the node sends and closes both sides:
/// the node has done the work, the client never hears of it.
async fn cutting_relay(target: SocketAddr, cut: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((downstream, _)) = listener.accept().await {
            let Ok(upstream) = TcpStream::connect(target).await else {
                continue;
            };
            let cut = cut.clone();
            tokio::spawn(async move {
                let mut down = FrameConn::from_io(downstream, 1 << 20);
                let mut up = FrameConn::from_io(upstream, 1 << 20);
                loop {
                    tokio::select! {
                        f = down.recv_frame() => match f {
                            Ok(Some(f)) => if up.send_frame(f).await.is_err() { break },
                            _ => break,
                        },
                        f = up.recv_frame() => match f {
                            Ok(Some(f)) => {
                                let is_reply = Codec::Json
                                    .decode::<Value>(&f)
                                    .is_ok_and(|v| v.get("id").is_some());
                                if is_reply && cut.swap(false, Ordering::SeqCst) {
                                    break;
                                }
                                if down.send_frame(f).await.is_err() { break }
                            }
                            _ => break,
                        },
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_write_is_retried_on_the_next_node_with_the_same_id() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (_a, addr_a) = node(dir_a.path()).await;
    let (_b, addr_b) = node(dir_b.path()).await;
    channel(addr_a, "room").await;
    channel(addr_b, "room").await;
    let cut = Arc::new(AtomicBool::new(false));
    let relay = cutting_relay(addr_a, cut.clone()).await;

    let session = ChatSession::new(options(&[relay.to_string(), addr_b.to_string()]));
    let mut pushes = session.pushes().expect("pushes");
    let run = async {
        session.login("alice").await.expect("login");
        session.subscribe("room").await.expect("subscribe");
        for i in 0..5 {
            let r = session
                .publish("room", &format!("m{i}"))
                .await
                .expect("ack");
            assert_eq!(r["duplicate"], false);
        }
        assert_eq!(session.node(), Some(relay.to_string()));

        // Node A stores the next write; its reply never arrives.
        cut.store(true, Ordering::SeqCst);
        let r = session
            .publish("room", "cut")
            .await
            .expect("acknowledged on the next node");
        assert_eq!(r["user"], "alice", "logged in again on B: {r}");
        assert_eq!(session.node(), Some(addr_b.to_string()));
        assert_eq!(session.failovers(), 1);
        assert!(session.retries() >= 1);

        // The same id on both nodes: stored on A by the cut attempt, on B
        // by the retry. Once on each.
        let id = id_of(addr_a, "room", "cut").await;
        assert_eq!(id_of(addr_b, "room", "cut").await, id);
        let on_a = ids_in_history(addr_a, "room").await;
        let on_b = ids_in_history(addr_b, "room").await;
        assert_eq!(on_a.get(&id), Some(&1), "A: {on_a:?}");
        assert_eq!(on_b.get(&id), Some(&1), "B: {on_b:?}");
        assert_eq!(on_a.len(), 6);
        assert_eq!(on_b.len(), 1);

        // Resubscribed on B: a publication there reaches the session.
        let other = client(addr_b).await;
        other
            .call("login", json!({"user": "bob"}))
            .await
            .expect("login");
        other
            .call("publish", json!({"channel": "room", "message": "from bob"}))
            .await
            .expect("publish");
        loop {
            let p = pushes.recv().await.expect("a push");
            if p.data["message"] == "from bob" {
                assert_eq!(p.topic, "room");
                break;
            }
        }

        // A retry with that id on B again is the stored event, not a new one.
        let again = session
            .call(
                "publish",
                json!({"channel": "room", "message": "cut", "client_id": id}),
            )
            .await
            .expect("ack");
        assert_eq!(again["duplicate"], true);
        assert_eq!(ids_in_history(addr_b, "room").await.get(&id), Some(&1));
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shut_down_while_publishing_loses_no_acknowledged_write() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, addr_a) = node(dir_a.path()).await;
    let (_b, addr_b) = node(dir_b.path()).await;
    channel(addr_a, "room").await;
    channel(addr_b, "room").await;
    let session = ChatSession::new(options(&[addr_a.to_string(), addr_b.to_string()]));
    let run = async {
        session.login("carol").await.expect("login");
        session.subscribe("room").await.expect("subscribe");
        // A publisher that keeps writing while node A goes away.
        let publisher = {
            let session = session.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..150 {
                    let id = session.next_client_id();
                    let r = session
                        .call(
                            "publish",
                            json!({"channel": "room", "message": format!("m{i}"), "client_id": id}),
                        )
                        .await;
                    match r {
                        Ok(_) => acked.push(id),
                        Err(e) => panic!("write {i} not acknowledged: {e}"),
                    }
                }
                acked
            })
        };
        // Shut A down once some writes went through it.
        let watcher = client(addr_a).await;
        loop {
            let h = watcher
                .call("history", json!({"channel": "room", "limit": 500}))
                .await
                .expect("history");
            if h["messages"].as_array().map_or(0, Vec::len) >= 30 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(watcher);
        a.shutdown().await;
        let acked = publisher.await.expect("publisher");
        assert_eq!(acked.len(), 150);
        assert_eq!(session.node(), Some(addr_b.to_string()));
        assert!(session.failovers() >= 1);

        // A back on its store (a new port), to read what it holds.
        let (_a2, addr_a2) = node(dir_a.path()).await;
        let on_a = ids_in_history(addr_a2, "room").await;
        let on_b = ids_in_history(addr_b, "room").await;
        assert!(
            on_a.len() >= 30 && !on_b.is_empty(),
            "{} {}",
            on_a.len(),
            on_b.len()
        );
        for (id, n) in on_a.iter().chain(on_b.iter()) {
            assert_eq!(*n, 1, "{id} stored {n} times on one node");
        }
        let stored: HashSet<&String> = on_a.keys().chain(on_b.keys()).collect();
        for id in &acked {
            assert!(stored.contains(id), "acknowledged write {id} is lost");
        }
        // Nothing that was not asked for.
        let asked: HashSet<&String> = acked.iter().collect();
        assert!(stored.iter().all(|id| asked.contains(id)));
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}

/// A port nothing listens on (bound, then closed).
async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_entry_is_skipped() {
    let dir = tempfile::tempdir().expect("dir");
    let (_n, addr) = node(dir.path()).await;
    let dead = closed_port().await;
    let session = ChatSession::new(options(&[dead.clone(), addr.to_string()]));
    let run = async {
        assert_eq!(session.connect().await.expect("connects"), addr.to_string());
        session.login("dave").await.expect("login");
        assert_eq!(session.failovers(), 0);
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
    // A malformed entry is refused before anything is dialled.
    match SessionOptions::new([format!("{addr},localhost")]) {
        Err(SessionError::BadAddress { addr, .. }) => assert_eq!(addr, "localhost"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_down_is_a_clear_error_after_the_bound() {
    let dead = [closed_port().await, closed_port().await];
    let mut opts = options(&dead);
    opts.connect_rounds = 3;
    let session = ChatSession::new(opts);
    let r = tokio::time::timeout(GUARD, session.login("erin"))
        .await
        .expect("no hang");
    match r {
        Err(e @ SessionError::AllNodesDown { rounds: 3, .. }) => {
            let text = e.to_string();
            assert!(text.contains(&dead[0]) && text.contains(&dead[1]), "{text}");
        }
        other => panic!("unexpected {other:?}"),
    }

    // A node that goes away for good: a session on it ends with the same
    // error rather than waiting forever.
    let dir = tempfile::tempdir().expect("dir");
    let (n, addr) = node(dir.path()).await;
    let mut opts = options(&[addr.to_string()]);
    opts.connect_rounds = 2;
    let session = ChatSession::new(opts);
    let run = async {
        session.login("erin").await.expect("login");
        n.shutdown().await;
        match session.call("users", json!({})).await {
            Err(SessionError::AllNodesDown { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_garbage_is_left_for_a_real_node() {
    let dir = tempfile::tempdir().expect("dir");
    let (_n, addr) = node(dir.path()).await;
    let garbage = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let garbage_addr = garbage.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = garbage.accept().await {
            tokio::spawn(async move {
                // A frame that is not a reply, then one that is not JSON,
                // then an absurd length.
                let mut out = Vec::new();
                for body in [&b"{\"hello\":1}"[..], &b"\x00\x01garbage"[..]] {
                    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                    out.extend_from_slice(body);
                }
                out.extend_from_slice(b"\xff\xff\xff\xff");
                let _ = sock.write_all(&out).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    let session = ChatSession::new(options(&[garbage_addr, addr.to_string()]));
    let run = async {
        session
            .login("frank")
            .await
            .expect("login on the real node");
        assert_eq!(session.node(), Some(addr.to_string()));
        assert_eq!(session.failovers(), 1);
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_moves_at_once_and_keeps_receiving() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, addr_a) = node(dir_a.path()).await;
    let (_b, addr_b) = node(dir_b.path()).await;
    channel(addr_a, "room").await;
    channel(addr_b, "room").await;
    let session = ChatSession::new(options(&[addr_a.to_string(), addr_b.to_string()]));
    let mut pushes = session.pushes().expect("pushes");
    let mut node = session.watch_node();
    let run = async {
        session.login("gina").await.expect("login");
        session.subscribe("room").await.expect("subscribe");
        a.shutdown().await;
        // No call: the session notices the closed connection by itself.
        let b = Some(addr_b.to_string());
        node.wait_for(|n| *n == b).await.expect("the session lives");
        assert_eq!(session.failovers(), 1);
        let other = client(addr_b).await;
        other
            .call("login", json!({"user": "hal"}))
            .await
            .expect("login");
        other
            .call("publish", json!({"channel": "room", "message": "to gina"}))
            .await
            .expect("publish");
        let p = pushes.recv().await.expect("a push from B");
        assert_eq!(p.data["message"], "to gina");
        // And a private message to gina reaches her on B (logged in again).
        other
            .call("message", json!({"dst": "gina", "message": "psst"}))
            .await
            .expect("message");
        let p = pushes.recv().await.expect("a private push from B");
        assert_eq!(p.data["message"], "psst");
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}
