//! The web chat page's whole flow in headless Chromium (e2e/chat.test.js),
//! against a node in this process with the stand-in chat services: two pages
//! log in, one creates a channel and publishes, the other sees it live.
//! Skipped (with a message) when node, e2e/node_modules or /usr/bin/chromium
//! is missing (scripts/setup installs them); CORRAL_REQUIRE_E2E=1 makes a
//! missing piece a failure.

mod fake_chat;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use corral::config::{Config, ListenerConfig, Protocol, Transport};
use corral::node::Node;

fn ready() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("e2e/node_modules/playwright-core").is_dir() {
        return Err("e2e/node_modules is missing (run scripts/setup)".into());
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("/usr/bin/chromium is missing (run scripts/setup)".into());
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("node is missing".into()),
    }
}

#[tokio::test]
async fn two_pages_chat_through_the_stand_in_services() {
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
    // Stand-in or no chat services: no store under ./data shared by tests.
    c.chat.enabled = false;
    let mut l = ListenerConfig::new("http", Transport::Tcp, Protocol::Http, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c.http.docroot = dir.path().to_path_buf();
    let chat = Arc::new(fake_chat::FakeChat::default());
    let node = fake_chat::register(Node::builder(c), &chat)
        .start()
        .await
        .expect("node starts");
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
    assert!(chat.published.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    node.shutdown().await;
}
