//! A node's supervision tree is the one DESIGN.md and the README draw:
//! metrics_sup, cache_sup, chat_sup, then one listener_sup per listener, in
//! that order, each with its children; and `Node::tree` (the drawing the
//! node logs at start-up) names every part, connections counted.
//!
//! Tests synchronise on replies and supervisor state; no assertion is about
//! time.

mod support {
    pub(crate) mod guard;
    pub(crate) mod wait;
}

use corral::client::{Client, Codec};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::supervisor::{ChildState, Strategy, TreeKind};
use corral::transport::Transport;
use serde_json::json;
use support::guard::guarded;
use support::wait::wait_until;

fn listener(name: &str, protocol: ProtocolKind) -> ListenerConfig {
    let mut l = ListenerConfig::new(name, Transport::Tcp, protocol, 0);
    l.drain_timeout_ms = 1_000;
    l
}

/// Everything on: the chat (on `dir`), an RPC and an HTTP listener on free
/// ports, static files from `dir`.
fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::embedded_default();
    c.chat.enabled = true;
    c.node.data_dir = dir.to_path_buf();
    c.http.docroot = dir.to_path_buf();
    c.listeners = vec![
        listener("rpc", ProtocolKind::Rpc),
        listener("http", ProtocolKind::Http),
    ];
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_is_the_designs_and_its_drawing_names_every_part() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = Node::start(config(dir.path()))
            .await
            .expect("the node starts");
        let addr = node.local_addr("rpc").expect("bound");
        let mut clients = Vec::new();
        for _ in 0..2 {
            let c = Client::connect(addr, Codec::Json).await.expect("connects");
            // Answered: its connection actor runs under acceptor_sup.
            c.call("ping", json!({})).await.expect("ping");
            clients.push(c);
        }

        let tree = node.tree().await.expect("the root answers");
        assert_eq!(tree.id, "corral");
        assert!(matches!(
            tree.kind,
            TreeKind::Supervisor {
                strategy: Strategy::OneForOne,
                ..
            }
        ));
        assert_eq!(
            tree.child_ids(),
            [
                "metrics_sup",
                "cache_sup",
                "chat_sup",
                "listener_sup:rpc",
                "listener_sup:http"
            ]
        );
        for (sup, strategy, children) in [
            ("metrics_sup", Strategy::OneForOne, &["metrics"][..]),
            ("cache_sup", Strategy::OneForOne, &["file_cache"]),
            (
                "chat_sup",
                Strategy::RestForOne,
                &["chat_store", "chat_hub"],
            ),
            (
                "listener_sup:rpc",
                Strategy::RestForOne,
                &["acceptor_sup", "listener"],
            ),
            (
                "listener_sup:http",
                Strategy::RestForOne,
                &["acceptor_sup", "listener"],
            ),
        ] {
            let t = tree.find(sup).expect(sup);
            match &t.kind {
                TreeKind::Supervisor { strategy: s, .. } => assert_eq!(*s, strategy, "{sup}"),
                other => panic!("{sup} is {other:?}"),
            }
            assert_eq!(t.child_ids(), children, "{sup}");
            for c in t.children() {
                assert!(
                    matches!(c.state, ChildState::Running(_)),
                    "{sup}/{} runs",
                    c.id
                );
            }
        }
        match &tree.find("listener_sup:rpc").expect("rpc").children()[0].kind {
            TreeKind::Dynamic {
                template, running, ..
            } => assert_eq!((template.as_str(), *running), ("connection", 2)),
            other => panic!("acceptor_sup is {other:?}"),
        }

        // The drawing the node logs at start-up: one line per supervisor and
        // child, connections counted on one line.
        assert_eq!(
            tree.to_string(),
            "\
corral (one_for_one)
├── metrics_sup (one_for_one)
│   └── metrics
├── cache_sup (one_for_one)
│   └── file_cache
├── chat_sup (rest_for_one)
│   ├── chat_store
│   └── chat_hub
├── listener_sup:rpc (rest_for_one)
│   ├── acceptor_sup (simple_one_for_one)
│   │   └── connection × 2
│   └── listener
└── listener_sup:http (rest_for_one)
    ├── acceptor_sup (simple_one_for_one)
    │   └── connection × 0
    └── listener
"
        );

        let handle = node.listener("rpc").expect("listener").clone();
        drop(clients);
        wait_until("the connections are closed", || handle.connections() == 0).await;
        node.shutdown().await;
    })
    .await;
}

/// Without an HTTP listener nothing serves static files: no cache_sup; and
/// without the chat, no chat_sup. metrics_sup is always first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_without_http_or_chat() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config(dir.path());
        c.chat.enabled = false;
        c.listeners = vec![listener("rpc", ProtocolKind::Rpc)];
        let node = Node::start(c).await.expect("the node starts");
        let tree = node.tree().await.expect("the root answers");
        assert_eq!(tree.child_ids(), ["metrics_sup", "listener_sup:rpc"]);
        node.shutdown().await;
    })
    .await;
}
