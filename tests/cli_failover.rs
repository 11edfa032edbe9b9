//! `corral client` and `corral bot` with several addresses, against real
//! nodes in this process (single-node mode, each with the channel): when
//! the node they are on shuts down they move to the next and go on; a
//! malformed address list is refused with a message naming the entry.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use corral::client::{Client, Codec};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Against hangs only.
const GUARD: Duration = Duration::from_secs(120);

/// A node with the chat on `dir`, RPC on a free port, and `channel`.
async fn node(dir: &Path, channel: &str) -> (Node, SocketAddr) {
    let mut c = Config::embedded_default();
    let mut l = ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c.node.data_dir = dir.to_path_buf();
    // No rate limit: the bench publishes as fast as it can.
    c.chat.rate_per_second = 0.0;
    let node = Node::start(c).await.expect("the node starts");
    let addr = node.local_addr("rpc").expect("bound");
    let client = Client::connect(addr, Codec::Json).await.expect("connects");
    client
        .call("channel", json!({ "channel": channel }))
        .await
        .expect("channel");
    (node, addr)
}

/// Messages of `channel` on the node at `addr`, every page of them.
async fn events(addr: SocketAddr, channel: &str) -> Vec<serde_json::Value> {
    let c = Client::connect(addr, Codec::Json).await.expect("connects");
    let mut all = Vec::new();
    let mut before = serde_json::Value::Null;
    loop {
        let h = c
            .call(
                "history",
                json!({ "channel": channel, "limit": 500, "before": before }),
            )
            .await
            .expect("history");
        let page = h["messages"].as_array().expect("messages").clone();
        all.splice(0..0, page);
        before = h["next_before"].clone();
        if before.is_null() {
            return all;
        }
    }
}

/// The texts of the channel's publications, oldest first.
async fn messages(addr: SocketAddr, channel: &str) -> Vec<String> {
    events(addr, channel)
        .await
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

fn corral() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_moves_to_the_next_node() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, addr_a) = node(dir_a.path(), "room").await;
    let (_b, addr_b) = node(dir_b.path(), "room").await;
    let list = format!("{addr_a},{addr_b}");
    let mut child = corral()
        .args(["client", "--addr", &list, "--user", "zed"])
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let run = async {
        let mut seen = Vec::new();
        // Waits for a line containing `what`, keeping every line.
        macro_rules! wait_for {
            ($what:expr) => {
                loop {
                    let line = out
                        .next_line()
                        .await
                        .expect("read")
                        .unwrap_or_else(|| panic!("no {:?} in {seen:#?}", $what));
                    let hit = line.contains($what);
                    seen.push(line);
                    if hit {
                        break;
                    }
                }
            };
        }
        wait_for!(&format!("connected to {addr_a}"));
        stdin
            .write_all(b"sub room\npub room one\n")
            .await
            .expect("write");
        wait_for!("published (seq=");
        a.shutdown().await;
        stdin.write_all(b"pub room two\n").await.expect("write");
        wait_for!(&format!("now on node {addr_b}"));
        stdin
            .write_all(b"history room\nquit\n")
            .await
            .expect("write");
        wait_for!("bye");
        let text = seen.join("\n");
        assert_eq!(text.matches("published (seq=").count(), 2, "{text}");
        // On B: logged in again (the publish is zed's) and the history is B's.
        assert!(text.contains("[#room] zed: two"), "{text}");
        assert_eq!(messages(addr_b, "room").await, ["two"]);
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
    drop(stdin);
    let status = tokio::time::timeout(GUARD, child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_go_on_on_the_other_node_and_lose_nothing() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, addr_a) = node(dir_a.path(), "general").await;
    let (_b, addr_b) = node(dir_b.path(), "general").await;
    let child = corral()
        .args([
            "bot",
            "--count",
            "2",
            "--addr",
            &addr_a.to_string(),
            "--addr",
            &addr_b.to_string(),
            "--duration",
            "4",
            "--pause",
            "0.05",
        ])
        .spawn()
        .expect("spawn");
    let run = async {
        // Node A goes away once the bot on it has published.
        while messages(addr_a, "general").await.len() < 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.shutdown().await;
        let out = child.wait_with_output().await.expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        let total = stdout
            .lines()
            .find(|l| l.starts_with("total: "))
            .unwrap_or_else(|| panic!("a summary in {stdout}"));
        assert!(total.contains(", 0 errors, 2 bots"), "{total}");
        assert!(!total.contains(" 0 failovers"), "{total}");
        let sent: usize = total
            .trim_start_matches("total: ")
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");

        // Every acknowledged message is on A (read back from its store) or
        // B: count them.
        let (_a2, addr_a2) = node_again(dir_a.path()).await;
        let on_a = messages(addr_a2, "general").await;
        let on_b = messages(addr_b, "general").await;
        let stored = on_a.len() + on_b.len();
        // A publish cut by the shutdown may be stored on both; one more per
        // bot may be stored unacknowledged when the duration ends.
        assert!(
            stored >= sent && stored <= sent + 4,
            "sent {sent}, stored {} + {}",
            on_a.len(),
            on_b.len()
        );
        let on_b = events(addr_b, "general").await;
        let bots: HashSet<&str> = on_b.iter().filter_map(|e| e["user"].as_str()).collect();
        assert_eq!(bots.len(), 2, "both bots end on B: {bots:?}");
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_chat_moves_its_publisher_and_resends_what_was_not_acknowledged() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, addr_a) = node(dir_a.path(), "bench").await;
    let (_b, addr_b) = node(dir_b.path(), "bench").await;
    let list = format!("{addr_a},{addr_b}");
    let child = corral()
        .args([
            "bench",
            "chat",
            "--addr",
            &list,
            "--subscribers",
            "0",
            "--duration",
            "3",
            "--window",
            "64",
            "--batch",
            "16",
            "--json",
        ])
        .spawn()
        .expect("spawn");
    let run = async {
        // Node A goes away in the middle of the run.
        let watcher = Client::connect(addr_a, Codec::Json)
            .await
            .expect("connects");
        loop {
            let h = watcher
                .call("history", json!({"channel": "bench", "limit": 1}))
                .await
                .expect("history");
            if h["messages"][0]["seq"].as_u64().unwrap_or(0) >= 300 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(watcher);
        a.shutdown().await;
        let out = child.wait_with_output().await.expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
        let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
        assert_eq!(summary["errors"], 0, "{summary}");
        assert_eq!(summary["published"], summary["acked"], "{summary}");
        assert!(summary["failovers"].as_u64() >= Some(1), "{summary}");
        assert!(summary["max_ack_gap_ms"].as_f64().is_some(), "{summary}");
        assert!(stderr.contains("now on"), "{stderr}");
        let acked = summary["acked"].as_u64().expect("acked") as usize;

        // Every acknowledged publish is stored, on A (read back from its
        // store) or on B, once on each at most.
        let (_a2, addr_a2) = node_again(dir_a.path()).await;
        let on_a = messages(addr_a2, "bench").await;
        let on_b = messages(addr_b, "bench").await;
        for (name, stored) in [("A", &on_a), ("B", &on_b)] {
            let unique: HashSet<&String> = stored.iter().collect();
            assert_eq!(unique.len(), stored.len(), "a message twice on {name}");
        }
        assert!(!on_a.is_empty() && !on_b.is_empty());
        let all: HashSet<&String> = on_a.iter().chain(on_b.iter()).collect();
        // At most a window of publishes was resent (stored on both).
        assert!(
            all.len() >= acked && all.len() <= acked + 64,
            "acked {acked}, stored {} + {} ({} distinct)",
            on_a.len(),
            on_b.len(),
            all.len()
        );
    };
    tokio::time::timeout(GUARD, run).await.expect("no hang");
}

/// A node back on `dir` (its channel already stored).
async fn node_again(dir: &Path) -> (Node, SocketAddr) {
    let mut c = Config::embedded_default();
    let mut l = ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c.node.data_dir = dir.to_path_buf();
    c.chat.rate_per_second = 0.0;
    let node = Node::start(c).await.expect("the node starts again");
    let addr = node.local_addr("rpc").expect("bound");
    (node, addr)
}

#[tokio::test]
async fn a_malformed_address_list_is_refused() {
    for args in [
        &["client", "--addr", "127.0.0.1:7070,oops"][..],
        &[
            "bot",
            "--addr",
            "127.0.0.1:7070",
            "--addr",
            "oops",
            "--duration",
            "1",
        ][..],
        &[
            "bench",
            "chat",
            "--addr",
            "127.0.0.1:7070,oops",
            "--duration",
            "1",
        ][..],
    ] {
        let out = tokio::time::timeout(GUARD, corral().args(args).output())
            .await
            .expect("ends")
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("bad --addr") && stderr.contains("bad address \"oops\""),
            "{args:?}: {stderr}"
        );
    }
}
