//! The web chat page's whole flow in headless Chromium (e2e/chat.test.js),
//! against a node in this process with the real chat services (a store in a
//! temporary data_dir): two pages log in, one creates a channel and
//! publishes, the other sees it live, and the publication is in the store.
//! Skipped (with a message) when node, e2e/node_modules or /usr/bin/chromium
//! is missing (scripts/setup installs them); CORRAL_REQUIRE_E2E=1 makes a
//! missing piece a failure.

mod support {
    pub(crate) mod e2e;
}

use std::path::Path;
use std::time::Duration;

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use support::e2e::ready;

#[tokio::test]
async fn two_pages_chat_through_the_real_chat() {
    if let Err(why) = ready() {
        assert!(
            std::env::var("CORRAL_REQUIRE_E2E").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let mut c = Config::embedded_default();
    c.chat.enabled = true;
    c.node.data_dir = data.path().to_path_buf();
    let mut l = ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c.http.docroot = dir.path().to_path_buf();
    let node = Node::builder(c).start().await.expect("node starts");
    let addr = node.local_addr("http").expect("http address");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/chat.test.js");
    let run = tokio::process::Command::new("node")
        .arg(script)
        .env("E2E_BASE", format!("http://{addr}"))
        .env("E2E_REQUIRE_CHAT", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the e2e script finishes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("bob saw alice's publication live"),
        "{stdout}"
    );
    // The page's publication is stored, in the channel it created.
    let store = node.chat().expect("chat").store().clone();
    let channels = store.channels().await.expect("channels");
    let channel = channels
        .iter()
        .find(|c| c.channel.starts_with("e2e_"))
        .expect("the page's channel")
        .channel
        .clone();
    let history = store
        .history(corral::chat::Scope::Channel(channel), None, 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(history[0].message.starts_with("hello from alice"));
    node.shutdown().await;
}
