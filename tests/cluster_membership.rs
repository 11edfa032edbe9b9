//! Membership on a real three-server NATS JetStream cluster: members
//! register in the KV bucket with ranks in registration order, the lowest
//! live rank is the primary, the next one takes over when it dies (with a
//! log line), a member that returns comes back with a new rank, an actor
//! restarted by its supervisor keeps its rank, a second live node with a
//! taken name is refused, garbage in the bucket is ignored, and the
//! `servers` / `list` / `rank` / `heartbeat` services answer from the view.

mod support {
    pub(crate) mod cluster_member;
    pub(crate) mod log_lines;
    pub(crate) mod nats;
    pub(crate) mod wait;
}

use std::time::Duration;

use async_nats::jetstream;
use corral::client::{Client, ClientError, Codec};
use corral::cluster::{register_servers, ClusterSettings, Role};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::rpc::Registry;
use corral::transport::Transport;
use serde_json::{json, Value};
use support::cluster_member::{settings, start, Member};
use support::log_lines::{logged, record};
use support::nats::NatsCluster;
use support::wait::wait_until;

/// Starts `name` and waits until it sees itself registered.
async fn join(nats: &NatsCluster, i: usize, name: &str) -> Member {
    let s = settings(nats.urls(), 0);
    let m = start(&nats.url(i % 3), &s, name)
        .await
        .expect("member starts");
    wait_until(&format!("{name} registered"), || {
        m.members.my_rank().is_some()
    })
    .await;
    m
}

fn ranks(m: &Member) -> Vec<(String, u64)> {
    m.members
        .members()
        .into_iter()
        .map(|x| (x.name, x.rank))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranks_follow_registration_and_the_next_rank_takes_over() {
    record();
    let nats = NatsCluster::start(3);
    let a = join(&nats, 0, "ma").await;
    let b = join(&nats, 1, "mb").await;
    let c = join(&nats, 2, "mc").await;
    let want = vec![
        ("ma".to_string(), 1),
        ("mb".to_string(), 2),
        ("mc".to_string(), 3),
    ];
    for m in [&a, &b, &c] {
        wait_until("every member sees all three", || ranks(m) == want).await;
        assert_eq!(m.members.primary().as_deref(), Some("ma"));
    }
    assert_eq!(a.members.role(), Some(Role::Primary));
    assert_eq!(b.members.role(), Some(Role::Backup));
    assert_eq!(a.metrics.cluster_rank.get(), 1);
    assert_eq!(
        a.metrics.cluster_role.with_label_values(&["primary"]).get(),
        1
    );
    assert_eq!(
        b.metrics.cluster_role.with_label_values(&["backup"]).get(),
        1
    );
    assert_eq!(c.metrics.cluster_members.get(), 3);
    assert!(logged(&[
        "message=cluster member joined",
        "node=mc",
        "member=ma",
        "rank=1"
    ]));
    let entry = b.members.member("ma").expect("ma listed");
    assert_eq!(entry.rpc.as_deref(), Some("127.0.0.1:7ma"));
    assert!(entry.started_ms > 0 && entry.last_heartbeat_ms >= entry.started_ms);

    // The primary dies (its heartbeats stop; its entry expires).
    a.sup.stop().await;
    for m in [&b, &c] {
        wait_until("mb takes over", || {
            m.members.primary().as_deref() == Some("mb")
        })
        .await;
        assert!(m.members.failovers() >= 1);
    }
    assert_eq!(b.members.role(), Some(Role::Primary));
    assert_eq!(
        b.metrics.cluster_role.with_label_values(&["primary"]).get(),
        1
    );
    assert!(logged(&[
        "message=cluster failover: primary changed",
        "node=mc",
        "from=ma",
        "to=mb"
    ]));
    assert!(logged(&[
        "message=cluster member left",
        "node=mb",
        "member=ma"
    ]));
    assert_eq!(
        ranks(&c),
        vec![("mb".to_string(), 2), ("mc".to_string(), 3)]
    );

    // It returns (a new process): a new, higher rank; mb stays primary.
    let a2 = join(&nats, 0, "ma").await;
    assert_eq!(a2.members.my_rank(), Some(4));
    wait_until("mb sees ma again", || b.members.member("ma").is_some()).await;
    assert_eq!(b.members.member("ma").map(|m| m.rank), Some(4));
    assert_eq!(a2.members.role(), Some(Role::Backup));
    assert_eq!(c.members.primary().as_deref(), Some("mb"));
    drop(a2.client);
    a2.sup.stop().await;
    b.sup.stop().await;
    c.sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_actor_keeps_its_rank_and_a_taken_name_is_refused() {
    record();
    let nats = NatsCluster::start(3);
    let a = join(&nats, 0, "ka").await;
    let b = join(&nats, 1, "kb").await;
    assert_eq!(b.members.my_rank(), Some(2));
    // The supervisor restarts membership (same process): same rank, and
    // the primary never moves.
    b.sup
        .terminate_child("membership")
        .await
        .expect("terminate");
    b.sup.restart_child("membership").await.expect("restart");
    a.sup
        .terminate_child("membership")
        .await
        .expect("terminate");
    a.sup.restart_child("membership").await.expect("restart");
    // Each joins again on its restarted actor's first tick.
    for (node, rank) in [("node=ka", "rank=1"), ("node=kb", "rank=2")] {
        wait_until(&format!("{node} registered again"), || {
            logged(&["message=registered again, keeping its rank", node, rank])
        })
        .await;
    }
    assert_eq!(a.members.my_rank(), Some(1));
    assert_eq!(b.members.my_rank(), Some(2));
    assert_eq!(b.members.primary().as_deref(), Some("ka"));
    assert_eq!(b.members.failovers(), 0);

    // A second process named kb while kb lives: refused, kb untouched.
    let s = settings(nats.urls(), 0);
    // It starts (joining is membership's first tick, never its start),
    // waits out kb's registration, finds it renewed, and stops, again and
    // again under its supervisor; kb keeps its registration.
    let second = start(&nats.url(2), &s, "kb")
        .await
        .expect("a member starts whatever NATS says");
    wait_until("the second kb is refused", || {
        logged(&["message=membership stops", "node=kb", "is taken"])
    })
    .await;
    assert!(logged(&["message=a registration of this name by another process is still live; waiting for it to expire", "node=kb"]));
    second.sup.stop().await;
    assert_eq!(b.members.my_rank(), Some(2));
    assert_eq!(a.members.member("kb").map(|m| m.rank), Some(2));
    drop((a.facts, a.wall, b.client));
    a.sup.stop().await;
    b.sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_bucket_is_ignored() {
    record();
    let nats = NatsCluster::start(3);
    let a = join(&nats, 0, "ga").await;
    let b = join(&nats, 1, "gb").await;
    wait_until("ga sees gb", || a.members.len() == 2).await;
    let kv = jetstream::new(a.client.clone())
        .get_key_value("corral_members")
        .await
        .expect("the members bucket");
    let reg = |name: &str, rank: i64| {
        json!({"name": name, "rank": rank, "rpc": null, "http": null, "started_ms": 1,
               "heartbeat_ms": 1, "offset_ms": 0, "instance": "x"})
        .to_string()
    };
    for (key, value) in [
        ("zz", "not json".to_string()),
        ("zy", reg("someone-else", 1)),
        ("zx", reg("zx", 0)),
        ("zw", json!({"name": "zw"}).to_string()),
        ("zv", "x".repeat(5000)),
        // Over a live member's own entry.
        ("gb", "{\"rank\": \"garbage\"}".to_string()),
    ] {
        kv.put(key, value.into()).await.expect("put garbage");
    }
    wait_until("the garbage is logged", || {
        logged(&[
            "message=ignoring a value in the members bucket that is not a registration",
            "node=ga",
            "key=gb",
        ])
    })
    .await;
    assert!(logged(&["key=zz", "why=not a registration"]));
    assert!(logged(&["key=zy", "why=registration of"]));
    assert!(logged(&["key=zx", "why=rank 0"]));
    // gb writes its entry again at its next heartbeat, keeping its rank.
    wait_until("gb's entry is a registration again", || {
        logged(&[
            "message=this node's entry was overwritten; writing it again",
            "node=gb",
        ])
    })
    .await;
    let mut fixed = false;
    for _ in 0..100 {
        let v = kv.get("gb").await.expect("get gb").unwrap_or_default();
        if let Ok(v) = serde_json::from_slice::<Value>(&v) {
            if v["rank"] == 2 {
                fixed = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fixed, "gb's entry rewritten with its rank");
    // Nothing of the garbage is a member; both actors still run.
    for m in [&a, &b] {
        let names: Vec<String> = m.members.members().into_iter().map(|x| x.name).collect();
        assert_eq!(names, ["ga", "gb"]);
        let kids = m.sup.which_children().await.expect("children");
        assert_eq!(kids.len(), 2);
    }
    assert_eq!(b.members.my_rank(), Some(2));
    assert_eq!(a.members.failovers(), 0);
    a.sup.stop().await;
    b.sup.stop().await;
}

/// The error code of a failed call, or the reply.
async fn call(c: &Client, service: &str, data: Value) -> Result<Value, String> {
    c.call(service, data).await.map_err(|e| match e {
        ClientError::Rpc { code, .. } => code,
        e => panic!("{service}: {e}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_list_rank_and_heartbeat_reply_shapes() {
    record();
    let nats = NatsCluster::start(3);
    let a = join(&nats, 0, "sa").await;
    let b = join(&nats, 1, "sb").await;
    wait_until("sb sees both", || b.members.len() == 2).await;
    // A real node serving sb's view over TCP.
    let mut r = Registry::new();
    register_servers(&mut r, &b.members, &settings(nats.urls(), 0));
    assert_eq!(
        r.names().collect::<Vec<_>>(),
        ["heartbeat", "list", "rank", "servers"]
    );
    let mut config = Config::embedded_default();
    config.listeners = vec![ListenerConfig::new(
        "rpc",
        Transport::Tcp,
        ProtocolKind::Rpc,
        0,
    )];
    config.chat.enabled = false;
    let mut builder = Node::builder(config);
    for name in r.names() {
        builder = builder.service(name, r.get(name).expect("registered").clone());
    }
    let node = builder.start().await.expect("the node starts");
    let addr = node.local_addr("rpc").expect("bound");
    let c = Client::connect(addr, Codec::Json).await.expect("connects");
    let mp = Client::connect(addr, Codec::MsgPack)
        .await
        .expect("connects");

    let servers = call(&c, "servers", json!({})).await.expect("servers");
    assert_eq!(servers["node"], "sb");
    assert_eq!(servers["primary"], "sa");
    let list = servers["servers"].as_array().expect("a list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "sa");
    assert_eq!(list[0]["rank"], 1);
    assert_eq!(list[0]["role"], "primary");
    assert_eq!(list[0]["rpc"], "127.0.0.1:7sa");
    assert_eq!(list[0]["http"], "127.0.0.1:8sa");
    assert_eq!(list[1]["name"], "sb");
    assert_eq!(list[1]["role"], "backup");
    for e in list {
        for k in ["started_ms", "last_heartbeat_ms"] {
            assert!(e[k].as_u64().is_some_and(|t| t > 0), "{k} in {e}");
        }
        assert!(e["offset_ms"].is_i64(), "{e}");
    }
    let same = call(&mp, "list", json!({})).await.expect("list");
    assert_eq!(same["servers"].as_array().map(Vec::len), Some(2));
    assert_eq!(same["primary"], "sa");

    let rank = call(&c, "rank", json!({})).await.expect("rank");
    assert_eq!(
        rank,
        json!({"node": "sb", "rank": 2, "role": "backup", "primary": "sa"})
    );

    let hb = call(&mp, "heartbeat", json!({})).await.expect("heartbeat");
    assert_eq!(hb["node"], "sb");
    assert_eq!(hb["interval_ms"], 200);
    assert_eq!(hb["expiry_ms"], 600);
    let hb = call(&c, "heartbeat", json!({"node": "sa"}))
        .await
        .expect("hb");
    assert_eq!(hb["role"], "primary");
    // Hostile or unknown arguments: clear errors, the connection goes on.
    let bad = call(&c, "heartbeat", json!({"node": 7})).await;
    assert_eq!(bad.err().as_deref(), Some("BAD_REQUEST"));
    let unknown = call(&c, "heartbeat", json!({"node": "nobody"})).await;
    assert_eq!(unknown.err().as_deref(), Some("NOT_FOUND"));
    // Cut off from the cluster (its actors stopped; its view empties after
    // the expiry): rank is UNAVAILABLE, servers an empty list.
    b.sup.stop().await;
    a.sup.stop().await;
    wait_until("sb's view expires", || b.members.is_empty()).await;
    let rank = call(&c, "rank", json!({})).await;
    assert_eq!(rank.err().as_deref(), Some("UNAVAILABLE"));
    let servers = call(&c, "servers", json!({})).await.expect("servers");
    assert_eq!(servers["servers"], json!([]));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_leader_dying_moves_nobody() {
    record();
    let mut nats = NatsCluster::start(3);
    // Heartbeats whose expiry outlasts a JetStream leader election.
    let s = ClusterSettings {
        heartbeat_interval_ms: 500,
        heartbeat_misses: 20,
        ..settings(nats.urls(), 0)
    };
    // The bucket made first, to find its stream's leader.
    let client = async_nats::connect(nats.url(0)).await.expect("connect");
    let mut bucket = jetstream::new(client)
        .create_key_value(jetstream::kv::Config {
            bucket: "corral_members".into(),
            history: 1,
            max_age: Duration::from_millis(s.member_ttl_ms()),
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .expect("the members bucket")
        .stream;
    let leader = bucket
        .info()
        .await
        .expect("stream info")
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("a leader");
    let leader: usize = leader.trim_start_matches('n').parse().expect("n<i>");
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    // la and lb on the two servers that stay; the leader's server dies.
    let a = start(&nats.url(others[0]), &s, "la").await.expect("la");
    let b = start(&nats.url(others[1]), &s, "lb").await.expect("lb");
    wait_until("both see both", || {
        a.members.len() == 2 && b.members.len() == 2
    })
    .await;
    let rank_a = a.members.my_rank();
    nats.kill(leader);
    // With the leader gone, checked all along.
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for m in [&a, &b] {
            assert_eq!(m.members.len(), 2, "{} lost a member", m.members.me());
            assert_eq!(m.members.failovers(), 0);
        }
    }
    tokio::task::block_in_place(|| nats.restart(leader));
    assert_eq!(a.members.my_rank(), rank_a);
    assert_eq!(b.members.primary().as_deref(), Some("la"));
    assert!(!logged(&["message=cluster member left", "member=lb"]));
    a.sup.stop().await;
    b.sup.stop().await;
}
