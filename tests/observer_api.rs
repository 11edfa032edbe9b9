//! The observer's JSON API against the tree the node really has: the tree,
//! listeners and chat as JSON; hostile names (`<script>` ...) come back as
//! data; the live stream shows a restart made through the library; the
//! actions are refused without `admin`, without the token, or cross-site,
//! and done with it; nothing samples while no one watches; bad
//! `[observer]` values stop start-up naming the key.
//!
//! Tests synchronise on answers and events; no assertion is about time.

mod support {
    pub(crate) mod guard;
    pub(crate) mod idle;
    pub(crate) mod wait;
}

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::{Node, NodeBuilder};
use corral::observer::{ChatView, ListenerView, TreeView};
use corral::supervisor::{
    ChildSpec, ChildState, SupervisionTree, Supervisor, SupervisorSpec, TreeKind,
};
use corral::transport::Transport;
use serde_json::json;
use std::net::SocketAddr;
use support::guard::guarded;
use support::idle::Idle;
use support::wait::wait_until;

const TOKEN: &str = "e2e-token-0123456789abcdef";
const HOSTILE_CHILD: &str = "<script>window.__pwned=1</script>";
const HOSTILE_LISTENER: &str = "<img src=x onerror=alert(1)>";
const HOSTILE_USER: &str = "\"<b>bold</b>\u{1b}[31m";

fn listener(name: &str, protocol: ProtocolKind) -> ListenerConfig {
    let mut l = ListenerConfig::new(name, Transport::Tcp, protocol, 0);
    l.drain_timeout_ms = 500;
    l
}

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

async fn start(builder: NodeBuilder) -> (Node, SocketAddr) {
    let node = builder.start().await.expect("the node starts");
    let addr = node.local_addr("http").expect("bound");
    (node, addr)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

async fn get_json<T: serde::de::DeserializeOwned>(addr: SocketAddr, path: &str) -> T {
    let resp = client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let bytes = resp.bytes().await.expect("body");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// POSTs an action; its status and body.
async fn act(
    addr: SocketAddr,
    action: &str,
    body: serde_json::Value,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = client()
        .post(format!("http://{addr}/observer/api/{action}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("answered");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

/// The JSON tree and the library's tree name the same entries, in the same
/// order, with the same kinds and strategies.
fn same_tree(json: &TreeView, lib: &SupervisionTree, path: &[String]) {
    assert_eq!(json.id, lib.id);
    assert_eq!(json.path, path, "path of {}", json.id);
    let running = matches!(lib.state, ChildState::Running(_));
    assert_eq!(json.status == "running", running, "{}", json.id);
    match &lib.kind {
        TreeKind::Worker => assert_eq!(json.kind, "worker", "{}", json.id),
        TreeKind::Supervisor {
            strategy, children, ..
        } => {
            assert_eq!(json.kind, "supervisor", "{}", json.id);
            assert_eq!(json.strategy.as_deref(), Some(strategy.name()));
            assert_eq!(json.children.len(), children.len(), "{}", json.id);
            for (j, l) in json.children.iter().zip(children) {
                let mut p = path.to_vec();
                p.push(l.id.clone());
                same_tree(j, l, &p);
            }
        }
        TreeKind::Dynamic {
            template, running, ..
        } => {
            assert_eq!(json.kind, "dynamic");
            assert_eq!(json.template.as_deref(), Some(template.as_str()));
            // Connections come and go between the two reads.
            assert!(json.running.is_some() && *running < 1_000);
        }
        _ => assert_eq!(json.kind, "unknown"),
    }
    assert_eq!(json.restart, lib.restart.map(|r| r.name().to_string()));
}

#[tokio::test]
async fn the_tree_is_the_one_the_node_runs() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, addr) = start(Node::builder(config(dir.path()))).await;
        let json: TreeView = get_json(addr, "/observer/api/tree").await;
        let lib = node.tree().await.expect("tree");
        same_tree(&json, &lib, &[]);
        assert_eq!(
            json.children
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
            [
                "metrics_sup",
                "cache_sup",
                "chat_sup",
                "listener_sup:rpc",
                "listener_sup:http"
            ]
        );
        let hub = json.at(&["chat_sup", "chat_hub"]).expect("chat_hub");
        assert_eq!(hub.restart.as_deref(), Some("permanent"));
        assert_eq!(hub.restarts, 0);
        assert!(hub.uptime_ms.is_some());
        let chat_sup = json.at(&["chat_sup"]).expect("chat_sup");
        assert_eq!(chat_sup.strategy.as_deref(), Some("rest_for_one"));
        assert!(chat_sup.max_restarts.is_some());
        // The same tree drawn for the terminal (`corral observe`).
        let drawn = json.to_string();
        assert!(drawn.starts_with("corral (one_for_one)\n"), "{drawn}");
        assert!(drawn.contains("chat_hub permanent up"), "{drawn}");

        let listeners: Vec<ListenerView> = get_json(addr, "/observer/api/listeners").await;
        let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["rpc", "http"]);
        let rpc = &listeners[0];
        assert_eq!(
            (rpc.transport.as_str(), rpc.state.as_str()),
            ("tcp", "accepting")
        );
        assert_eq!(rpc.max_connections, 10_000);
        assert_eq!(rpc.address, node.local_addr("rpc").map(|a| a.to_string()));
        let http = &listeners[1];
        assert!(http.connections >= 1, "this request's connection is open");

        let chat: ChatView = get_json(addr, "/observer/api/chat").await;
        assert!(chat.enabled);
        assert!(chat.store_bytes.is_some_and(|b| b > 0));
        let cluster: serde_json::Value = get_json(addr, "/observer/api/cluster").await;
        assert_eq!(cluster["enabled"], false);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn hostile_names_come_back_as_data() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config(dir.path());
        c.listeners
            .push(listener(HOSTILE_LISTENER, ProtocolKind::Rpc));
        let builder = Node::builder(c).child(ChildSpec::supervisor(
            HOSTILE_CHILD,
            SupervisorSpec::new(HOSTILE_CHILD).child(ChildSpec::worker("worker\n[evil]", Idle, ())),
        ));
        let (node, addr) = start(builder).await;
        // A library user may name users and channels as the services would
        // not let a client.
        let hub = node.chat().expect("chat").hub().clone();
        let (pushes, _rx) = corral::rpc::push_channel(16);
        hub.login(1, &pushes, HOSTILE_USER);
        hub.subscribe(1, &pushes, HOSTILE_CHILD);

        let tree: TreeView = get_json(addr, "/observer/api/tree").await;
        let hostile = tree
            .at(&[HOSTILE_CHILD])
            .expect("the hostile child, by its id");
        assert_eq!(hostile.children[0].id, "worker\n[evil]");
        assert!(tree
            .at(&[&format!("listener_sup:{HOSTILE_LISTENER}")])
            .is_some());
        // The terminal drawing shows control characters as `?`.
        assert!(tree.to_string().contains("worker?[evil]"));

        let listeners: Vec<ListenerView> = get_json(addr, "/observer/api/listeners").await;
        assert!(listeners.iter().any(|l| l.name == HOSTILE_LISTENER));

        let chat: ChatView = get_json(addr, "/observer/api/chat").await;
        assert_eq!(chat.online, [HOSTILE_USER]);
        assert!(chat
            .busiest
            .iter()
            .any(|t| t.name == HOSTILE_CHILD && t.kind == "channel"));
        assert!(chat
            .deepest_queues
            .iter()
            .any(|q| q.user.as_deref() == Some(HOSTILE_USER)));

        // The raw text is JSON-escaped data, not markup the page would parse
        // (the page sets names with textContent: e2e/observer.test.js).
        let raw = client()
            .get(format!("http://{addr}/observer/api/chat"))
            .send()
            .await
            .expect("answered")
            .text()
            .await
            .expect("text");
        assert!(raw.contains(r#""\"<b>bold</b>\u001b[31m""#), "{raw}");

        // The page is served under a CSP without inline script.
        let page = client()
            .get(format!("http://{addr}/observer/"))
            .send()
            .await
            .expect("answered");
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let js = client()
            .get(format!("http://{addr}/observer/observer.js"))
            .send()
            .await
            .expect("answered")
            .text()
            .await
            .expect("text");
        assert!(!js.contains("innerHTML") && !js.contains("insertAdjacentHTML"));
        node.shutdown().await;
    })
    .await;
}

/// A node whose observer has `admin`, the token, and `trust_loopback`.
async fn admin_node(dir: &std::path::Path, admin: bool, loopback: bool) -> (Node, SocketAddr) {
    let mut c = config(dir);
    c.observer.admin = admin;
    c.observer.token = TOKEN.into();
    c.observer.trust_loopback = loopback;
    start(Node::builder(c)).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn actions_are_off_without_admin_even_with_the_token() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, addr) = admin_node(dir.path(), false, true).await;
        let auth = bearer(TOKEN);
        let (status, body) = act(
            addr,
            "listener/suspend",
            json!({"listener": "rpc"}),
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("admin = false"), "{body}");
        let (status, _) = act(
            addr,
            "child/kill",
            json!({"path": ["chat_sup", "chat_hub"]}),
            &[],
        )
        .await;
        assert_eq!(status, 403);
        assert!(node.listener("rpc").expect("rpc").is_accepting());
        let tree: TreeView = get_json(addr, "/observer/api/tree").await;
        assert_eq!(tree.at(&["chat_sup", "chat_hub"]).expect("hub").restarts, 0);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn actions_need_the_token() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, addr) = admin_node(dir.path(), true, false).await;
        let rpc = node.listener("rpc").expect("rpc").clone();
        let target = json!({"listener": "rpc"});
        let good = bearer(TOKEN);
        let wrong = bearer("e2e-token-0123456789abcdeX");
        let short = bearer("e2e");
        // No token, a wrong one, a prefix of it: refused (loopback is not
        // trusted here).
        for headers in [
            vec![],
            vec![("authorization", wrong.as_str())],
            vec![("authorization", short.as_str())],
            vec![("authorization", "Basic ZTJlOnRva2Vu")],
        ] {
            let (status, body) = act(addr, "listener/suspend", target.clone(), &headers).await;
            assert_eq!(status, 403, "{headers:?}: {body}");
            assert!(rpc.is_accepting());
        }
        // The token, from another site's page: refused.
        let cross = [
            ("authorization", good.as_str()),
            ("origin", "http://evil.example"),
        ];
        let (status, _) = act(addr, "listener/suspend", target.clone(), &cross).await;
        assert_eq!(status, 403);
        assert!(rpc.is_accepting());
        // The token: done.
        let auth = [("authorization", good.as_str())];
        let (status, body) = act(addr, "listener/suspend", target.clone(), &auth).await;
        assert_eq!((status, body.trim()), (200, r#"{"ok":true}"#));
        assert!(!rpc.is_accepting());
        let listeners: Vec<ListenerView> = get_json(addr, "/observer/api/listeners").await;
        assert_eq!(listeners[0].state, "suspended");
        let (status, _) = act(addr, "listener/resume", target.clone(), &auth).await;
        assert_eq!(status, 200);
        assert!(rpc.is_accepting());

        // A child killed through the API is restarted by its supervisor.
        let hub = json!({"path": ["chat_sup", "chat_hub"]});
        let (status, _) = act(addr, "child/kill", hub.clone(), &auth).await;
        assert_eq!(status, 200);
        let mut restarted = None;
        for _ in 0..500 {
            let tree: TreeView = get_json(addr, "/observer/api/tree").await;
            let h = tree.at(&["chat_sup", "chat_hub"]).expect("hub").clone();
            if h.restarts == 1 && h.status == "running" {
                restarted = Some(h);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let h = restarted.expect("chat_hub restarted");
        assert_eq!(h.last_restart_reason.as_deref(), Some("killed"));
        // Terminate keeps it down; restart brings it back.
        let (status, _) = act(addr, "child/terminate", hub.clone(), &auth).await;
        assert_eq!(status, 200);
        let tree: TreeView = get_json(addr, "/observer/api/tree").await;
        assert_eq!(
            tree.at(&["chat_sup", "chat_hub"]).expect("hub").status,
            "not_running"
        );
        let (status, _) = act(addr, "child/restart", hub.clone(), &auth).await;
        assert_eq!(status, 200);
        let tree: TreeView = get_json(addr, "/observer/api/tree").await;
        let h = tree.at(&["chat_sup", "chat_hub"]).expect("hub");
        assert_eq!((h.status.as_str(), h.restarts), ("running", 2));
        assert_eq!(h.last_restart_reason.as_deref(), Some("restart_child"));

        // Hostile or wrong bodies and targets.
        for (action, body, want) in [
            ("child/kill", json!({"path": ["nope"]}), 404),
            (
                "child/kill",
                json!({"path": ["chat_sup", "chat_hub", "deeper"]}),
                404,
            ),
            ("child/kill", json!({"path": []}), 400),
            ("child/kill", json!({"path": "chat_sup"}), 400),
            ("child/kill", json!({"path": ["chat_sup"], "extra": 1}), 400),
            ("child/explode", json!({"path": ["chat_sup"]}), 404),
            ("listener/suspend", json!({"listener": "nope"}), 404),
        ] {
            let (status, text) = act(addr, action, body.clone(), &auth).await;
            assert_eq!(status, want, "{action} {body}: {text}");
        }
        let big = "x".repeat(64 * 1024);
        let (status, _) = act(addr, "child/kill", json!({ "path": [big] }), &auth).await;
        assert_eq!(status, 413);
        let resp = client()
            .get(format!("http://{addr}/observer/api/child/kill"))
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status(), 405);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn loopback_may_act_without_the_token_when_trusted() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, addr) = admin_node(dir.path(), true, true).await;
        let target = json!({"listener": "rpc"});
        let (status, body) = act(addr, "listener/suspend", target.clone(), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert!(!node.listener("rpc").expect("rpc").is_accepting());
        // A page of another site in the user's browser, or a rebound DNS
        // name: refused.
        let (status, _) = act(
            addr,
            "listener/resume",
            target.clone(),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = act(
            addr,
            "listener/resume",
            target.clone(),
            &[("host", "rebound.example")],
        )
        .await;
        assert_eq!(status, 403);
        assert!(!node.listener("rpc").expect("rpc").is_accepting());
        node.shutdown().await;
    })
    .await;
}

/// Reads server-sent events from `resp` until `want` accepts one (name,
/// data); the events read, in order.
async fn read_events(
    resp: &mut reqwest::Response,
    buf: &mut String,
    mut want: impl FnMut(&str, &serde_json::Value) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = "";
            let mut data = "";
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n;
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d;
                }
            }
            let value: serde_json::Value = serde_json::from_str(data).expect("event data is JSON");
            seen.push(name.to_string());
            if want(name, &value) {
                return seen;
            }
        }
        let chunk = resp.chunk().await.expect("stream").expect("not ended");
        buf.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
}

#[tokio::test]
async fn a_restart_made_through_the_library_shows_live() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config(dir.path());
        c.observer.sample_interval_ms = 60_000; // only the restart wakes it
        let (node, addr) = start(Node::builder(c)).await;
        let observer = node.observer().expect("observer").clone();
        assert!(!observer.is_sampling(), "nothing runs unwatched");
        let mut resp = client()
            .get(format!("http://{addr}/observer/api/events"))
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut buf = String::new();
        let first = read_events(&mut resp, &mut buf, |name, _| name == "frame").await;
        assert_eq!(first, ["history", "frame"]);
        assert!(observer.is_sampling());
        assert_eq!(observer.watchers(), 1);

        // Kill chat_hub with the library's own calls.
        let chat_sup = node
            .root()
            .which_children()
            .await
            .expect("children")
            .into_iter()
            .find(|c| c.id.as_deref() == Some("chat_sup"))
            .expect("chat_sup");
        let ChildState::Running(cell) = chat_sup.state else {
            panic!("chat_sup runs")
        };
        let chat_sup = Supervisor::from_cell(cell).expect("a supervisor");
        let hub = chat_sup.which_children().await.expect("children");
        let ChildState::Running(hub) = hub[1].state.clone() else {
            panic!("chat_hub runs")
        };
        hub.kill();

        let mut restart = None;
        read_events(&mut resp, &mut buf, |name, data| {
            if name == "restart" {
                restart = Some(data.clone());
            }
            name == "frame"
                && data["tree"]["children"][2]["children"][1]["restarts"] == 1
                && data["tree"]["children"][2]["children"][1]["status"] == "running"
        })
        .await;
        let restart = restart.expect("a restart event before the frame that shows it");
        assert_eq!(restart["supervisor"], "chat_sup");
        assert_eq!(restart["child"], "chat_hub");
        assert_eq!(restart["reason"], "killed");

        // The watcher goes: the sampler stops.
        drop(resp);
        wait_until("the sampler stops", || !observer.is_sampling()).await;
        assert_eq!(observer.watchers(), 0);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn too_many_watchers_get_503() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config(dir.path());
        c.observer.max_watchers = 1;
        let (node, addr) = start(Node::builder(c)).await;
        let first = client()
            .get(format!("http://{addr}/observer/api/events"))
            .send()
            .await
            .expect("answered");
        assert_eq!(first.status(), 200);
        let second = client()
            .get(format!("http://{addr}/observer/api/events"))
            .send()
            .await
            .expect("answered");
        assert_eq!(second.status(), 503);
        drop(first);
        node.shutdown().await;
    })
    .await;
}

#[test]
fn bad_observer_values_stop_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, key) in [
        (
            "[observer]\nsample_interval_ms = 5\n",
            "observer.sample_interval_ms",
        ),
        (
            "[observer]\nhistory_samples = 0\n",
            "observer.history_samples",
        ),
        ("[observer]\nmax_watchers = 0\n", "observer.max_watchers"),
        ("[observer]\ntoken = \"short\"\n", "observer.token"),
        (
            "[observer]\ntoken = \"has a space in it, long\"\n",
            "observer.token",
        ),
        (
            "[observer]\nadmin = true\ntrust_loopback = false\n",
            "observer.admin",
        ),
        (
            "[observer]\nsample_interval_ms = \"often\"\n",
            "observer.sample_interval_ms",
        ),
        ("[observer]\nunknown = 1\n", "observer"),
    ] {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).expect("write");
        let e = Config::load(Some(&path), None).expect_err(text);
        let message = e.to_string();
        assert!(message.contains(key), "{text}: {message}");
        assert!(message.contains("c.toml"), "{text}: {message}");
    }
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        format!("[observer]\nadmin = true\ntoken = \"{TOKEN}\"\ntrust_loopback = false\n"),
    )
    .expect("write");
    let c = Config::load(Some(&path), None).expect("valid");
    assert!(c.observer.admin && !c.observer.trust_loopback);
    // The token is a secret: never printed (`check-config --print`).
    let printed = serde_json::to_string(&c).expect("serializes");
    assert!(!printed.contains(TOKEN) && printed.contains(r#""token":"***""#));
}
