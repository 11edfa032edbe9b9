//! The observer page's whole flow in headless Chromium
//! (e2e/observer.test.js), against a node in this process: the page shows
//! the tree the node runs; a child this test kills through the library
//! (`ActorCell::kill` on the cell `which_children` gives) shows up
//! restarted, live, its count up and its row marked; a listener suspend is
//! refused without the admin token and done with it; a child, a listener
//! and a user with hostile names are shown as text; the page breaks none of
//! its Content-Security-Policy. Skipped (with a message) when node,
//! e2e/node_modules or /usr/bin/chromium is missing (scripts/setup installs
//! them); CORRAL_REQUIRE_E2E=1 makes a missing piece a failure.

mod support {
    pub(crate) mod e2e;
    pub(crate) mod idle;
}

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::supervisor::{ChildSpec, ChildState, Supervisor, SupervisorSpec};
use corral::transport::Transport;
use support::e2e::ready;
use support::idle::Idle;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const TOKEN: &str = "e2e-observer-token-0123456789";
const HOSTILE_CHILD: &str = "<script>window.__pwned=2</script>";
const HOSTILE_LISTENER: &str = "<img src=x onerror=\"window.__pwned=1\">";
const HOSTILE_USER: &str = "<b onclick=alert(1)>bob</b>";

fn listener(name: &str, protocol: ProtocolKind) -> ListenerConfig {
    let mut l = ListenerConfig::new(name, Transport::Tcp, protocol, 0);
    l.drain_timeout_ms = 500;
    l
}

/// Kills the child at `path` (ids below the root) with the library's calls.
async fn kill(root: &Supervisor, path: &str) {
    let mut sup = root.clone();
    let ids: Vec<&str> = path.split('/').collect();
    for (i, id) in ids.iter().enumerate() {
        let child = sup
            .which_children()
            .await
            .expect("children")
            .into_iter()
            .find(|c| c.id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no child {id}"));
        let ChildState::Running(cell) = child.state else {
            panic!("{id} is not running")
        };
        if i + 1 == ids.len() {
            cell.kill();
        } else {
            sup = Supervisor::from_cell(cell).expect("a supervisor");
        }
    }
}

#[tokio::test]
async fn the_page_shows_the_tree_a_restart_live_and_guards_its_actions() {
    if let Err(why) = ready() {
        assert!(
            std::env::var("CORRAL_REQUIRE_E2E").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Config::embedded_default();
    c.chat.enabled = true;
    c.node.data_dir = dir.path().to_path_buf();
    c.http.docroot = dir.path().to_path_buf();
    c.listeners = vec![
        listener("rpc", ProtocolKind::Rpc),
        listener(HOSTILE_LISTENER, ProtocolKind::Rpc),
        listener("http", ProtocolKind::Http),
    ];
    c.observer.admin = true;
    c.observer.token = TOKEN.into();
    c.observer.trust_loopback = false;
    let node = Node::builder(c)
        .child(ChildSpec::supervisor(
            HOSTILE_CHILD,
            SupervisorSpec::new(HOSTILE_CHILD).child(ChildSpec::worker("idle", Idle, ())),
        ))
        .start()
        .await
        .expect("node starts");
    let (pushes, _queue) = corral::rpc::push_channel(16);
    let hub = node.chat().expect("chat").hub().clone();
    hub.login(1, &pushes, HOSTILE_USER);
    let addr = node.local_addr("http").expect("http address");
    let hostile = serde_json::json!([HOSTILE_CHILD, HOSTILE_LISTENER, HOSTILE_USER]).to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/observer.test.js");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .env("E2E_BASE", format!("http://{addr}"))
        .env("E2E_TOKEN", TOKEN)
        .env("E2E_HOSTILE", hostile)
        .env("E2E_KILL", "stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let root = node.root().clone();
    let run = async {
        let mut killed = Vec::new();
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if let Some(path) = line.strip_prefix("KILL ") {
                kill(&root, path).await;
                killed.push(path.to_string());
                stdin.write_all(b"killed\n").await.expect("stdin");
            }
        }
        let out = child.wait_with_output().await.expect("the script ends");
        (killed, out)
    };
    let (killed, out) = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the e2e script finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("e2e: ok"), "{stderr}");
    assert_eq!(killed, ["chat_sup/chat_hub"]);
    let tree = node.tree().await.expect("tree");
    let hub = tree.find("chat_hub").expect("chat_hub");
    assert_eq!(hub.history.restarts, 1);
    node.shutdown().await;
}
