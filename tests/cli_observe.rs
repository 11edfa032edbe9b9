//! `corral observe`: the tree of a node running in this process, read from
//! its observer's JSON API by the real binary and drawn; a node without the
//! observer, an address where nothing listens, and a peer that is no HTTP
//! server are clear errors (exit 1), not a hang or a panic.

mod support {
    pub(crate) mod corral_cmd;
}

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use support::corral_cmd::{corral, run};

fn config(dir: &std::path::Path, observer: bool) -> Config {
    let mut c = Config::embedded_default();
    c.chat.enabled = true;
    c.node.data_dir = dir.to_path_buf();
    c.http.docroot = dir.to_path_buf();
    c.observer.enabled = observer;
    let mut l = ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c
}

/// Runs `corral observe ARGS` off the async runtime; its exit code, stdout
/// and stderr.
async fn observe(args: Vec<String>, dir: std::path::PathBuf) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["observe".to_string()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = run(corral(&refs, &dir));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_the_running_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(config(dir.path(), true)).await.expect("starts");
    let addr = node.local_addr("http").expect("bound").to_string();
    let (code, out, err) = observe(vec!["--addr".into(), addr.clone()], dir.path().into()).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("corral (one_for_one)\n"), "{out}");
    for line in [
        "├── chat_sup (rest_for_one) permanent up ",
        "│   └── chat_hub permanent up ",
        "    ├── acceptor_sup (simple_one_for_one) permanent up ",
        "    │   └── connection × ",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    let (code, json, _) = observe(
        vec!["--addr".into(), addr, "--json".into()],
        dir.path().into(),
    )
    .await;
    assert_eq!(code, 0);
    let tree: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(tree["children"][2]["id"], "chat_sup");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(config(dir.path(), false))
        .await
        .expect("starts");
    let addr = node.local_addr("http").expect("bound").to_string();
    let (code, _, err) = observe(vec!["--addr".into(), addr], dir.path().into()).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    node.shutdown().await;

    // Nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr").to_string();
    drop(free);
    let (code, _, err) = observe(vec!["--addr".into(), addr], dir.path().into()).await;
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");

    // A peer that answers garbage.
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = garbage.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = garbage.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"\x00\x01 not HTTP at all\r\n\r\n").await;
        }
    });
    let (code, _, err) = observe(
        vec!["--addr".into(), addr, "--timeout".into(), "5".into()],
        dir.path().into(),
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("error"), "{err}");
}
