//! The observer of a node in a cluster (three real nats-servers, two corral
//! nodes in this process): `/observer/api/cluster` lists both members by
//! rank with their roles, the primary and this node's own log lag, and
//! the tree shows cluster_sup's children.

mod support {
    // Servers are not killed and restarted here.
    #[allow(dead_code)]
    pub(crate) mod nats;
}

use std::path::Path;
use std::time::Duration;

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::observer::{ClusterView, TreeView};
use corral::transport::Transport;
use support::nats::NatsCluster;

fn config(dir: &Path, name: &str, urls: &[String]) -> Config {
    let mut c = Config::embedded_default();
    let mut http = ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0);
    http.drain_timeout_ms = 300;
    c.listeners = vec![http];
    c.node.data_dir = dir.to_path_buf();
    c.node.name = name.to_owned();
    c.chat.enabled = true;
    c.cluster.enabled = true;
    c.cluster.servers = urls.to_vec();
    c.cluster.replicas = 3;
    c.cluster.heartbeat_interval_ms = 200;
    c.cluster.connect_timeout_ms = 1000;
    c
}

async fn get<T: serde::de::DeserializeOwned>(node: &Node, path: &str) -> T {
    let addr = node.local_addr("http").expect("bound");
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.bytes().await.expect("body")).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_view_lists_the_members_by_rank() {
    let nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("tempdir");
    let a = Node::start(config(&root.path().join("a"), "a", &nats.urls()))
        .await
        .expect("a starts");
    // a registers first: rank order is registration order.
    let mut view: Option<ClusterView> = None;
    for _ in 0..600 {
        let v: ClusterView = get(&a, "/observer/api/cluster").await;
        if v.members.len() == 1 {
            view = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(view.is_some(), "a registered");
    let b = Node::start(config(&root.path().join("b"), "b", &nats.urls()))
        .await
        .expect("b starts");
    let mut view = None;
    for _ in 0..600 {
        let v: ClusterView = get(&b, "/observer/api/cluster").await;
        if v.members.len() == 2 && v.primary.is_some() {
            view = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = view.expect("b sees both members");
    assert!(v.enabled && v.nats_connected);
    assert_eq!(v.me.as_deref(), Some("b"));
    assert_eq!(v.primary.as_deref(), Some("a"));
    let names: Vec<&str> = v.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(v.members[0].rank < v.members[1].rank);
    assert_eq!(
        (v.members[0].role.as_str(), v.members[1].role.as_str()),
        ("primary", "backup")
    );
    // Only this node's lag is known here.
    assert!(v.members[0].lag.is_none() && v.members[1].lag.is_some());
    assert!(v.members[1].http.is_some());

    let tree: TreeView = get(&b, "/observer/api/tree").await;
    let cluster_sup = tree.at(&["cluster_sup"]).expect("cluster_sup");
    let ids: Vec<&str> = cluster_sup.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["nats", "log_consumer", "membership", "clock_sync"]);
    b.shutdown().await;
    a.shutdown().await;
}
