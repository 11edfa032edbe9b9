//! `corral serve` as a user runs it: start-up logs name the bound
//! listeners, the node answers, and SIGTERM / SIGINT shut it down gracefully
//! with exit status 0.

mod support {
    pub(crate) mod serve;
}

use corral::client::{Client, Codec};
use std::process::Command;
use support::serve::Serve;

fn serve() -> Serve {
    serve_with(&[])
}

fn serve_with(vars: &[(&str, &str)]) -> Serve {
    // Concurrent nodes must not share a chat store (tests/chat_durability.rs).
    let mut all = vec![("CORRAL__CHAT__ENABLED", "false")];
    all.extend_from_slice(vars);
    Serve::start(&all)
}

/// Sends signal `sig` to the process.
fn signal(node: &Serve, sig: i32) {
    let pid = i32::try_from(node.child.id()).expect("a pid fits i32");
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

async fn stops_gracefully_on(sig: i32) {
    let mut node = serve();
    let rpc = node.listening("rpc");
    let client = Client::connect(rpc, Codec::Json).await.expect("connects");
    let pong = client
        .call("ping", serde_json::json!({}))
        .await
        .expect("ping");
    assert!(!pong.is_null());
    signal(&node, sig);
    node.wait_for(|v| (v["fields"]["message"] == "node stopped").then_some(()));
    let status = node.child.wait().expect("exits");
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn serve_stops_gracefully_on_sigterm() {
    stops_gracefully_on(libc::SIGTERM).await;
}

#[tokio::test]
async fn serve_stops_gracefully_on_sigint() {
    stops_gracefully_on(libc::SIGINT).await;
}

#[test]
fn serve_runs_the_configured_number_of_worker_threads() {
    let node = serve_with(&[("CORRAL__NODE__WORKER_THREADS", "3")]);
    let workers = node.wait_for(|v| {
        let fields = &v["fields"];
        (fields["message"] == "node started").then(|| fields["worker_threads"].as_u64())
    });
    assert_eq!(workers, Some(3));
}

#[test]
fn serve_refuses_a_port_in_use_and_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("busy.toml");
    std::fs::write(
        &file,
        format!("[[listener]]\nname = \"rpc\"\nprotocol = \"rpc\"\nport = {port}\n"),
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .env("CORRAL__LOG__LEVEL", "error")
        .env("CORRAL__CHAT__ENABLED", "false")
        .env_remove("RUST_LOG")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rpc") && stderr.contains(&port.to_string()),
        "the error names the listener and the address: {stderr}"
    );
    drop(taken);
}

#[test]
fn serve_logs_the_supervision_tree_at_start_up() {
    let node = serve();
    let tree = node.wait_for(|v| {
        let message = v["fields"]["message"].as_str()?;
        message
            .strip_prefix("supervision tree\n")
            .map(str::to_string)
    });
    let lines: Vec<&str> = tree.lines().collect();
    // The root is named after [node] name (config/test.toml).
    assert_eq!(
        lines.first().copied(),
        Some("corral-test (one_for_one)"),
        "{tree}"
    );
    for part in [
        "├── metrics_sup (one_for_one)",
        "│   └── metrics",
        "├── cache_sup (one_for_one)",
        "│   └── file_cache",
        "listener_sup:rpc (rest_for_one)",
        "listener_sup:http (rest_for_one)",
        "acceptor_sup (simple_one_for_one)",
        "└── connection × 0",
        "└── listener",
    ] {
        assert!(
            lines.iter().any(|l| l.ends_with(part)),
            "{part:?} missing:\n{tree}"
        );
    }
    // The chat is off in these tests (CORRAL__CHAT__ENABLED=false).
    assert!(!tree.contains("chat_sup"), "{tree}");
}
