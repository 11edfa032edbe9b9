//! The chat replicated on NATS JetStream: three real nats-server processes
//! (clustered, random ports, temp dirs) and three corral nodes in this
//! process (own data_dirs, names and ports), each with `[cluster] enabled`
//! and replicas 3. Cross-node pushes, private messages and history;
//! channels and conflicts decided by the log's order; retries stored once
//! whichever node takes them; a nats-server killed under load; a node
//! restarted and one rebuilt from an empty data_dir; all of NATS down and
//! back; garbage on the log's subject; a log that lacks what a node needs.

mod support {
    pub(crate) mod error_code;
    pub(crate) mod nats;
    pub(crate) mod nats_all;
}

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corral::client::{Client, Codec, IncomingPush};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use serde_json::{json, Value};
use support::error_code::code;
use support::nats::NatsCluster;
use tokio::sync::mpsc;

/// A guard against a hung test, not a measurement.
const GUARD: Duration = Duration::from_secs(60);

/// A corral node of the cluster, on a data_dir that outlives it.
struct CNode {
    node: Node,
    dir: PathBuf,
    name: String,
}

fn config(dir: &Path, name: &str, urls: &[String], publish_timeout_ms: u64) -> Config {
    let mut c = Config::embedded_default();
    let mut rpc = ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0);
    rpc.drain_timeout_ms = 300;
    let mut http = ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0);
    http.drain_timeout_ms = 300;
    c.listeners = vec![rpc, http];
    c.node.data_dir = dir.to_path_buf();
    c.node.name = name.to_owned();
    c.cluster.enabled = true;
    c.cluster.servers = urls.to_vec();
    c.cluster.replicas = 3;
    c.cluster.publish_timeout_ms = publish_timeout_ms;
    c.cluster.connect_timeout_ms = 1000;
    c
}

impl CNode {
    async fn start_in(dir: PathBuf, name: &str, urls: &[String], timeout_ms: u64) -> CNode {
        let node = Node::start(config(&dir, name, urls, timeout_ms))
            .await
            .expect("the node starts");
        CNode {
            node,
            dir,
            name: name.to_owned(),
        }
    }

    async fn client(&self) -> (Client, mpsc::Receiver<IncomingPush>) {
        let addr = self.node.local_addr("rpc").expect("bound");
        let c = Client::connect(addr, Codec::Json).await.expect("connects");
        let p = c.pushes().expect("pushes");
        (c, p)
    }

    /// A client logged in as `user` (retried until the cluster is up).
    async fn user(&self, user: &str) -> (Client, mpsc::Receiver<IncomingPush>) {
        let (c, p) = self.client().await;
        eventually(&format!("{user} logs in on {}", self.name), || async {
            c.call("login", json!({ "user": user })).await.is_ok()
        })
        .await;
        (c, p)
    }

    async fn health(&self) -> Value {
        let addr = self.node.local_addr("http").expect("http bound");
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .expect("health answers")
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .expect("health is JSON")
    }

    fn metric(&self, name: &str) -> f64 {
        let text = self.node.metrics().render();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }
}

/// Three nodes `a`, `b`, `c` on `nats`, each in a temp dir of `root`.
async fn trio(root: &Path, nats: &NatsCluster, timeout_ms: u64) -> Vec<CNode> {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(CNode::start_in(root.join(name), name, &nats.urls(), timeout_ms).await);
    }
    nodes
}

/// Polls `cond` until it holds; panics after [`GUARD`].
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + GUARD;
    while tokio::time::Instant::now() < end {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting until {what}");
}

async fn ok(c: &Client, service: &str, data: Value) -> Value {
    match c.call(service, data.clone()).await {
        Ok(v) => v,
        Err(e) => panic!("{service} {data}: {e}"),
    }
}

/// `(seq, message)` of a channel's whole history as `c` reads it (page by
/// page), or the error code of a refusal.
async fn try_history(c: &Client, channel: &str) -> Result<Vec<(u64, String)>, String> {
    let mut all = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let h = c
            .call(
                "history",
                json!({"channel": channel, "limit": 500, "before": before}),
            )
            .await
            .map_err(|e| e.to_string())?;
        let page: Vec<(u64, String)> = h["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["seq"].as_u64().unwrap_or(0),
                    m["message"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        all.splice(0..0, page);
        match h["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => return Ok(all),
        }
    }
}

async fn history(c: &Client, channel: &str) -> Vec<(u64, String)> {
    match try_history(c, channel).await {
        Ok(h) => h,
        Err(e) => panic!("history of {channel}: {e}"),
    }
}

/// Waits until every client reads the same history of `channel` as
/// `want`.
async fn same_history(clients: &[&Client], channel: &str, want: &[(u64, String)]) {
    for c in clients {
        eventually(
            &format!("history of {channel} is {} events", want.len()),
            || async { try_history(c, channel).await.is_ok_and(|h| h == want) },
        )
        .await;
    }
}

async fn next_push(p: &mut mpsc::Receiver<IncomingPush>) -> IncomingPush {
    tokio::time::timeout(GUARD, p.recv())
        .await
        .expect("a push in time")
        .expect("the connection is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_one_node_are_seen_on_every_node_in_one_order() {
    let nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("tempdir");
    let n = trio(root.path(), &nats, 10_000).await;
    let (ann, _) = n[0].user("ann").await;
    let (bob, mut bob_pushes) = n[2].user("bob").await;
    let (cid, _) = n[1].user("cid").await;

    // A channel created on A is seen on C; a subscriber on C gets A's
    // publications.
    ok(&ann, "channel", json!({"channel": "room"})).await;
    eventually("C knows room", || async {
        bob.call("subscribe", json!({"topic": "room"}))
            .await
            .is_ok()
    })
    .await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let r = ok(
            &ann,
            "publish",
            json!({"channel": "room", "message": format!("m{i}")}),
        )
        .await;
        assert_eq!(r["duplicate"], false);
        sent.push((r["seq"].as_u64().expect("seq"), format!("m{i}")));
    }
    assert!(sent.windows(2).all(|w| w[0].0 < w[1].0));
    for (seq, msg) in &sent {
        let push = next_push(&mut bob_pushes).await;
        assert_eq!(push.topic, "room");
        assert_eq!(push.data["user"], "ann");
        assert_eq!(push.data["message"], msg.as_str());
        assert_eq!(push.data["seq"].as_u64(), Some(*seq));
    }
    // Lamport: a remote event advances the clock of the node applying it.
    let high = 1_000_000;
    let r = ok(
        &ann,
        "publish",
        json!({"channel": "room", "message": "late", "clock": high}),
    )
    .await;
    sent.push((r["seq"].as_u64().expect("seq"), "late".into()));
    let push = next_push(&mut bob_pushes).await;
    assert!(
        push.data["event_clock"].as_u64() > Some(high),
        "{}",
        push.data
    );
    eventually("node b's clock passes the remote event's", || async {
        ok(&cid, "channels", json!({})).await["clock"].as_u64() > Some(high)
    })
    .await;
    // History: the same events with the same seqs on every node.
    same_history(&[&ann, &bob, &cid], "room", &sent).await;

    // A private message from A to a user logged in on C.
    let r = ok(&ann, "message", json!({"dst": "bob", "message": "psst"})).await;
    let push = next_push(&mut bob_pushes).await;
    assert_eq!(push.topic, "bob");
    assert_eq!(push.data["src"], "ann");
    assert_eq!(push.data["message"], "psst");
    assert_eq!(push.data["seq"], r["seq"]);
    let h = ok(&bob, "history", json!({"user": "bob"})).await;
    assert_eq!(h["messages"][0]["seq"], r["seq"]);

    // Two nodes create one channel at once: the log's order decides, one
    // OK and one CONFLICT, and every node agrees on the creator.
    let (x, y) = tokio::join!(
        ann.call("channel", json!({"channel": "race"})),
        cid.call("channel", json!({"channel": "race"}))
    );
    let winner = match (&x, &y) {
        (Ok(_), Err(_)) => "ann",
        (Err(_), Ok(_)) => "cid",
        _ => panic!("one create must win and one fail: {x:?} {y:?}"),
    };
    let loser = if winner == "ann" { y } else { x };
    assert_eq!(code(loser), "CONFLICT");
    // Unknown channel: NOT_FOUND, decided at apply time.
    assert_eq!(
        code(
            ann.call("publish", json!({"channel": "nowhere", "message": "x"}))
                .await
        ),
        "NOT_FOUND"
    );

    // A write retried with the same client id on another node is stored
    // once; the retry is answered with the original.
    let first = ok(
        &ann,
        "publish",
        json!({"channel": "room", "message": "once", "client_id": "k-1"}),
    )
    .await;
    let (ann_on_b, _) = n[1].user("ann").await;
    let again = ok(
        &ann_on_b,
        "publish",
        json!({"channel": "room", "message": "once", "client_id": "k-1"}),
    )
    .await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["seq"], first["seq"]);
    sent.push((first["seq"].as_u64().expect("seq"), "once".into()));
    same_history(&[&ann, &bob, &cid], "room", &sent).await;
    let creators: Vec<Value> = futures::future::join_all(n.iter().map(|node| async {
        node.node
            .chat()
            .expect("chat")
            .store()
            .channels()
            .await
            .expect("channels")
            .into_iter()
            .find(|c| c.channel == "race")
            .map(|c| Value::from(c.creator))
            .unwrap_or(Value::Null)
    }))
    .await;
    for c in &creators {
        assert_eq!(c, &json!(winner), "{creators:?}");
    }
    for node in n {
        node.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_every_node_land_in_one_order_everywhere() {
    let nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("tempdir");
    let n = trio(root.path(), &nats, 10_000).await;
    let mut writers = Vec::new();
    for (i, node) in n.iter().enumerate() {
        let (c, _) = node.user(&format!("w{i}")).await;
        writers.push(c);
    }
    ok(&writers[0], "channel", json!({"channel": "busy"})).await;
    for w in &writers {
        eventually("busy is known everywhere", || async {
            w.call("subscribe", json!({"topic": "busy"})).await.is_ok()
        })
        .await;
    }
    // Every writer pipelines its publishes: many in flight on each node.
    let per_writer = 150;
    let calls = writers.iter().enumerate().flat_map(|(i, w)| {
        (0..per_writer).map(move |j| async move {
            let m = format!("w{i}-{j}");
            let r = ok(w, "publish", json!({"channel": "busy", "message": m})).await;
            (r["seq"].as_u64().expect("seq"), m)
        })
    });
    let mut acked = futures::future::join_all(calls).await;
    acked.sort();
    let seqs: Vec<u64> = acked.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "distinct seqs");
    assert_eq!(acked.len(), per_writer * writers.len());
    let clients: Vec<&Client> = writers.iter().collect();
    same_history(&clients, "busy", &acked).await;
    for node in n {
        node.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nats_server_loses_no_acknowledged_write() {
    let mut nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("tempdir");
    let n = trio(root.path(), &nats, 10_000).await;
    let (ann, _) = n[0].user("ann").await;
    ok(&ann, "channel", json!({"channel": "steady"})).await;
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acks, stop) = (acks.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let m = format!("s{i}");
                let r = ann
                    .call(
                        "publish",
                        json!({"channel": "steady", "message": m, "client_id": m}),
                    )
                    .await;
                if let Ok(r) = r {
                    acked.push((r["seq"].as_u64().expect("seq"), m));
                    acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                i += 1;
            }
            (ann, acked)
        })
    };
    let acked_now = || acks.load(std::sync::atomic::Ordering::SeqCst);
    eventually("50 writes acknowledged", || async { acked_now() >= 50 }).await;
    // Kill the stream's leader: the log fails over to another server.
    let addrs: Vec<async_nats::ServerAddr> = nats
        .urls()
        .iter()
        .map(|u| u.parse().expect("url"))
        .collect();
    let js = async_nats::jetstream::new(async_nats::connect(addrs).await.expect("connect"));
    let stream = corral::cluster::ClusterSettings::default().stream;
    let mut st = js.get_stream(&stream).await.expect("stream");
    let leader = st
        .info()
        .await
        .expect("info")
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("the stream has a leader");
    let victim: usize = leader
        .strip_prefix('n')
        .and_then(|i| i.parse().ok())
        .expect("servers are named n<i>");
    drop(js);
    nats.kill(victim);
    let at_kill = acked_now();
    // Writes go on with two servers of three.
    eventually("50 more writes acknowledged after the kill", || async {
        acked_now() >= at_kill + 50
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ann, acked) = writer.await.expect("writer");
    let mut clients = vec![ann];
    for node in &n[1..] {
        clients.push(node.user("obs").await.0);
    }
    for c in &clients {
        eventually("every acknowledged write is in the history", || async {
            try_history(c, "steady")
                .await
                .is_ok_and(|got| acked.iter().all(|a| got.contains(a)))
        })
        .await;
    }
    nats.restart(victim);
    for node in n {
        node.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_and_a_wiped_one_rebuilds_from_the_stream() {
    let nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("tempdir");
    let mut n = trio(root.path(), &nats, 10_000).await;
    let (ann, _) = n[0].user("ann").await;
    ok(&ann, "channel", json!({"channel": "log"})).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let r = ok(
            &ann,
            "publish",
            json!({"channel": "log", "message": format!("before{i}")}),
        )
        .await;
        sent.push((r["seq"].as_u64().expect("seq"), format!("before{i}")));
    }
    // C stops; writes go on without it; C starts again on its data_dir.
    let c = n.pop().expect("c");
    let (dir, name) = (c.dir.clone(), c.name.clone());
    {
        let (obs, _) = c.user("obs").await;
        same_history(&[&obs], "log", &sent).await;
    }
    c.node.shutdown().await;
    for i in 0..20 {
        let r = ok(
            &ann,
            "publish",
            json!({"channel": "log", "message": format!("while{i}")}),
        )
        .await;
        sent.push((r["seq"].as_u64().expect("seq"), format!("while{i}")));
    }
    let c = CNode::start_in(dir, &name, &nats.urls(), 10_000).await;
    let (obs, _) = c.user("obs").await;
    same_history(&[&obs], "log", &sent).await;

    // B stops, its data_dir is wiped, it starts on an empty one: it
    // rebuilds everything from the stream, users and channels included.
    let b = n.remove(1);
    let (dir, name) = (b.dir.clone(), b.name.clone());
    b.node.shutdown().await;
    std::fs::remove_dir_all(&dir).expect("wipe");
    let b = CNode::start_in(dir, &name, &nats.urls(), 10_000).await;
    let (obs_b, _) = b.client().await;
    same_history(&[&obs_b], "log", &sent).await;
    let store = b.node.chat().expect("chat").store();
    assert!(store.user("ann").await.expect("read").is_some());
    let applied = n[0].node.chat().expect("chat").store().applied_seq();
    assert_eq!(store.applied_seq(), applied);
    eventually("b's metrics and health show it caught up", || async {
        let h = b.health().await;
        b.metric("corral_cluster_log_applied_sequence") == applied as f64
            && b.metric("corral_cluster_log_lag_entries") == 0.0
            && h["status"] == "ok"
            && h["cluster"]["applied"] == applied
            && b.metric("corral_cluster_nats_connected") == 1.0
    })
    .await;
    for node in [b, c].into_iter().chain(n) {
        node.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_writes_are_unavailable_reads_go_on_and_all_recovers() {
    let mut nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("tempdir");
    let n = trio(root.path(), &nats, 1_500).await;
    let (ann, _) = n[0].user("ann").await;
    ok(&ann, "channel", json!({"channel": "room"})).await;
    let first = ok(
        &ann,
        "publish",
        json!({"channel": "room", "message": "kept"}),
    )
    .await;
    let kept = vec![(first["seq"].as_u64().expect("seq"), "kept".to_owned())];
    same_history(&[&ann], "room", &kept).await;
    assert_eq!(n[0].health().await["status"], "ok");

    nats.kill_all(3);
    // Within the publish timeout (guarded loosely): UNAVAILABLE.
    let refused = tokio::time::timeout(
        GUARD,
        ann.call(
            "publish",
            json!({"channel": "room", "message": "lost", "client_id": "x1"}),
        ),
    )
    .await
    .expect("answered");
    assert_eq!(code(refused), "UNAVAILABLE");
    assert_eq!(
        code(ann.call("channel", json!({"channel": "other"})).await),
        "UNAVAILABLE"
    );
    // Reads are served from local state.
    assert_eq!(history(&ann, "room").await, kept);
    let h = n[0].health().await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["cluster"]["nats"], "disconnected", "{h}");
    assert!(n[0].metric("corral_cluster_replication_errors_total{kind=\"publish\"}") >= 1.0);
    assert_eq!(n[0].metric("corral_cluster_nats_connected"), 0.0);

    // NATS back: writes work again by themselves.
    nats.restart_all(3);
    eventually("writes work again", || async {
        ann.call(
            "publish",
            json!({"channel": "room", "message": "back", "client_id": "x2"}),
        )
        .await
        .is_ok()
    })
    .await;
    // The same client id again: answered from the state, stored once.
    let back = ok(
        &ann,
        "publish",
        json!({"channel": "room", "message": "back", "client_id": "x2"}),
    )
    .await;
    assert_eq!(back["duplicate"], true);
    assert!(back["seq"].as_u64() > first["seq"].as_u64());
    eventually("health is ok again", || async {
        n[0].health().await["status"] == "ok"
    })
    .await;
    for node in n {
        node.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_log_is_skipped_and_counted_and_later_entries_apply() {
    let nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("tempdir");
    let n = trio(root.path(), &nats, 10_000).await;
    let (ann, _) = n[0].user("ann").await;
    ok(&ann, "channel", json!({"channel": "room"})).await;
    let addrs: Vec<async_nats::ServerAddr> = nats
        .urls()
        .iter()
        .map(|u| u.parse().expect("url"))
        .collect();
    let js = async_nats::jetstream::new(async_nats::connect(addrs).await.expect("connect"));
    let subject = corral::cluster::ClusterSettings::default().subject;
    let garbage: [&[u8]; 7] = [
        b"not json at all",
        // Well-formed writes no node could have made: bad names.
        b"{\"op\":\"login\",\"user\":\"../../etc\",\"ts\":1}",
        b"{\"op\":\"channel\",\"channel\":{\"channel\":\"\",\"creator\":null,\"created\":1,\"clock\":1}}",
        b"{\"op\":\"drop_everything\"}",
        b"{\"op\":\"append\",\"event\":{\"seq\":1}}",
        b"",
        &[0xff, 0x00, 0xc1],
    ];
    for g in garbage {
        js.publish(subject.clone(), g.to_vec().into())
            .await
            .expect("published")
            .await
            .expect("acknowledged");
    }
    // Later entries still apply on every node.
    let r = ok(
        &ann,
        "publish",
        json!({"channel": "room", "message": "after garbage"}),
    )
    .await;
    let want = vec![(r["seq"].as_u64().expect("seq"), "after garbage".to_owned())];
    for node in &n {
        let (c, _) = node.client().await;
        same_history(&[&c], "room", &want).await;
        assert_eq!(
            node.metric("corral_cluster_replication_errors_total{kind=\"decode\"}"),
            garbage.len() as f64
        );
        assert_eq!(node.health().await["status"], "ok");
        let store = node.node.chat().expect("chat").store();
        assert!(store.user("../../etc").await.expect("read").is_none());
        assert_eq!(store.channels().await.expect("read").len(), 1);
    }
    for node in n {
        node.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_the_log_cannot_rebuild_says_so_and_serves_no_partial_state() {
    let nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("tempdir");
    let a = CNode::start_in(root.path().join("a"), "a", &nats.urls(), 10_000).await;
    let (ann, _) = a.user("ann").await;
    ok(&ann, "channel", json!({"channel": "room"})).await;
    ok(
        &ann,
        "publish",
        json!({"channel": "room", "message": "gone"}),
    )
    .await;
    // Retention took everything so far.
    let addrs: Vec<async_nats::ServerAddr> = nats
        .urls()
        .iter()
        .map(|u| u.parse().expect("url"))
        .collect();
    let js = async_nats::jetstream::new(async_nats::connect(addrs).await.expect("connect"));
    let stream = corral::cluster::ClusterSettings::default().stream;
    js.get_stream(&stream)
        .await
        .expect("stream")
        .purge()
        .await
        .expect("purged");
    // A node on an empty data_dir cannot rebuild: it says so.
    let b = CNode::start_in(root.path().join("b"), "b", &nats.urls(), 10_000).await;
    eventually("b reports the gap", || async {
        b.health().await["cluster"]["gap"].is_string()
    })
    .await;
    let h = b.health().await;
    assert_eq!(h["status"], "degraded", "{h}");
    let (c, _) = b.client().await;
    assert_eq!(code(c.call("channels", json!({})).await), "UNAVAILABLE");
    assert_eq!(
        code(c.call("history", json!({"channel": "room"})).await),
        "UNAVAILABLE"
    );
    assert_eq!(
        code(c.call("login", json!({"user": "zed"})).await),
        "UNAVAILABLE"
    );
    assert!(b.metric("corral_cluster_replication_errors_total{kind=\"gap\"}") >= 1.0);
    // A, which applied everything, goes on.
    ok(
        &ann,
        "publish",
        json!({"channel": "room", "message": "still"}),
    )
    .await;
    a.node.shutdown().await;
    b.node.shutdown().await;
}

// The whole cluster_sup on real nodes: each node registers with the
// addresses its listeners got, `servers` lists every node by rank on every
// node, the first registered is the primary, the tree shows membership and
// clock_sync; when the primary shuts down, the next rank takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_register_their_addresses_and_the_next_rank_takes_over() {
    let nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("temp dir");
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let mut cfg = config(&root.path().join(name), name, &nats.urls(), 5_000);
        // A short expiry, so that the failover below is quick.
        cfg.cluster.heartbeat_interval_ms = 200;
        cfg.cluster.heartbeat_misses = 5;
        let node = Node::start(cfg).await.expect("the node starts");
        // Registered before the next starts: ranks follow this order.
        let n = node.cluster().expect("clustered").members().clone();
        eventually(&format!("{name} is a member"), || {
            let n = n.clone();
            async move { n.my_rank().is_some() }
        })
        .await;
        nodes.push(CNode {
            node,
            dir: root.path().join(name),
            name: name.to_owned(),
        });
    }
    let tree = nodes[0].node.tree().await.expect("tree").to_string();
    for child in [
        "cluster_sup",
        "nats",
        "log_consumer",
        "membership",
        "clock_sync",
    ] {
        assert!(tree.contains(child), "no {child} in\n{tree}");
    }
    for n in &nodes {
        let (c, _) = n.client().await;
        let name = n.name.clone();
        eventually(&format!("{name} lists three nodes with addresses"), || {
            let c = &c;
            let nodes = &nodes;
            async move {
                let Ok(s) = c.call("servers", json!({})).await else {
                    return false;
                };
                let Some(list) = s["servers"].as_array() else {
                    return false;
                };
                let want: Vec<Value> = nodes
                    .iter()
                    .map(|m| {
                        json!([
                            m.name,
                            m.node.local_addr("rpc").map(|a| a.to_string()),
                            m.node.local_addr("http").map(|a| a.to_string()),
                        ])
                    })
                    .collect();
                let got: Vec<Value> = list
                    .iter()
                    .map(|e| json!([e["name"], e["rpc"], e["http"]]))
                    .collect();
                s["primary"] == "a" && got == want
            }
        })
        .await;
        let rank = ok(&c, "rank", json!({})).await;
        assert_eq!(rank["node"], name.as_str());
        assert_eq!(rank["role"], if name == "a" { "primary" } else { "backup" });
    }
    assert_eq!(nodes[1].metric("corral_cluster_members"), 3.0);

    let a = nodes.remove(0);
    a.node.shutdown().await;
    for n in &nodes {
        let (c, _) = n.client().await;
        eventually(&format!("{} sees b primary and a gone", n.name), || {
            let c = &c;
            async move {
                c.call("servers", json!({})).await.is_ok_and(|s| {
                    s["primary"] == "b" && s["servers"].as_array().map(Vec::len) == Some(2)
                })
            }
        })
        .await;
    }
    assert_eq!(nodes[0].metric("corral_cluster_rank"), 2.0);
}
