//! `corral serve` as a user runs it: start-up logs name the bound
//! listeners, the node answers, and SIGTERM / SIGINT shut it down gracefully
//! with exit status 0. ThreadCenter's `--host`, `--port` and `--workers`
//! win over the configuration, and bad values of theirs stop start-up
//! naming the flag. At debug level for `corral::rpc::request`, a line per
//! request names service, id, outcome and duration.

mod support {
    pub(crate) mod serve;
}

use bytes::Bytes;
use corral::client::{Client, Codec, FrameConn};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
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

/// A port that was free a moment ago (bound, read, released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn serve_flags_set_the_rpc_port_and_the_compute_pool_over_the_config() {
    let port = free_port();
    let port_arg = port.to_string();
    // config/test.toml says port 0 and compute_workers = 2, the variable 5:
    // the flags win over both.
    let node = Serve::start_with_args(
        &["--host", "127.0.0.2", "--port", &port_arg, "--workers", "3"],
        &[
            ("CORRAL__CHAT__ENABLED", "false"),
            ("CORRAL__RPC__COMPUTE_WORKERS", "5"),
        ],
    );
    let rpc = node.listening("rpc");
    assert_eq!(rpc.to_string(), format!("127.0.0.2:{port}"));
    let client = Client::connect(rpc, Codec::Json).await.expect("connects");
    let stats = client
        .call("stats", serde_json::json!({}))
        .await
        .expect("stats");
    assert_eq!(stats["compute_workers"], 3, "{stats}");
    let sum = client
        .call("compute", serde_json::json!({"n": 1000}))
        .await
        .expect("compute");
    assert_eq!(sum["result"], 332_833_500, "{sum}");
}

/// Runs `corral serve ARGS` over the test configuration, which must stop
/// on its own (a node that starts is killed after a while and fails the
/// test); returns its exit code and stderr.
fn serve_refused(args: &[&str]) -> (Option<i32>, String) {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("serve")
        .arg("--config")
        .arg(format!("{manifest}/config/sys.toml"))
        .args(["--env", "test"])
        .args(args)
        .env("CORRAL__CHAT__ENABLED", "false")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("corral serve starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("corral serve {args:?} did not stop: the flag was accepted");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn serve_refuses_bad_flags_and_names_them() {
    for (args, flag) in [
        (&["--port", "0"][..], "--port"),
        (&["--port", "65536"][..], "--port"),
        (&["--port", "http"][..], "--port"),
        (&["--workers", "0"][..], "--workers"),
        (&["--workers", "many"][..], "--workers"),
        (&["--workers", "100000"][..], "--workers"),
        (&["--host", "not a host"][..], "--host"),
        (&["--host", ""][..], "--host"),
    ] {
        let (code, stderr) = serve_refused(args);
        // As a bad configuration is refused: status 1, not clap's 2.
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} names {flag}: {stderr}");
    }
}

#[test]
fn check_config_takes_the_serve_flags() {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let check = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("check-config")
            .arg("--config")
            .arg(format!("{manifest}/config/sys.toml"))
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("runs")
    };
    let ok = check(&["--port", "7171", "--workers", "3"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(
        stdout.contains("listener \"rpc\": rpc tcp on 127.0.0.1:7171"),
        "{stdout}"
    );
    assert!(stdout.contains("compute_workers 3"), "{stdout}");
    // The HTTP listener's port: the flag made the conflict, and is named.
    let clash = check(&["--port", "8080"]);
    let stderr = String::from_utf8_lossy(&clash.stderr);
    assert_eq!(clash.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--port") && stderr.contains("8080"),
        "{stderr}"
    );
}

/// The debug line of the request with id `id`, as JSON log fields.
fn request_line(node: &Serve, id: &str) -> serde_json::Value {
    node.wait_for(|v| {
        (v["target"] == "corral::rpc::request" && v["fields"]["id"] == format!("{id:?}"))
            .then(|| v.clone())
    })
}

#[tokio::test]
async fn serve_logs_each_request_at_debug_level() {
    let node = Serve::start(&[
        ("CORRAL__CHAT__ENABLED", "false"),
        ("CORRAL__LOG__LEVEL", "info,corral::rpc::request=debug"),
    ]);
    let rpc = node.listening("rpc");
    let mut conn = FrameConn::connect(rpc).await.expect("connects");
    for body in [
        r#"{"id":"p-1","service":"ping","data":{}}"#,
        r#"{"id":"u-2","service":"no_such_service","data":{}}"#,
        r#"{"id":"b-3","service":"compute","data":{"n":"lots"}}"#,
    ] {
        conn.send_frame(Bytes::from(body)).await.expect("send");
        conn.recv_frame().await.expect("reply").expect("a reply");
    }
    for (id, service, outcome) in [
        ("p-1", "ping", "ok"),
        ("u-2", "no_such_service", "UNKNOWN_SERVICE"),
        ("b-3", "compute", "BAD_REQUEST"),
    ] {
        let line = request_line(&node, id);
        assert_eq!(line["level"], "DEBUG", "{line}");
        let fields = &line["fields"];
        assert_eq!(fields["service"], service, "{line}");
        assert_eq!(fields["outcome"], outcome, "{line}");
        assert!(fields["duration_us"].is_u64(), "{line}");
    }
}

#[tokio::test]
async fn serve_logs_no_request_lines_at_info_level() {
    let node = Serve::start(&[("CORRAL__CHAT__ENABLED", "false")]);
    let rpc = node.listening("rpc");
    let client = Client::connect(rpc, Codec::Json).await.expect("connects");
    client
        .call("ping", serde_json::json!({}))
        .await
        .expect("ping");
    // Then a line known to come after the ping's: the shutdown's.
    signal(&node, libc::SIGTERM);
    let request_lines = {
        let mut n = 0;
        node.wait_for(|v| {
            if v["target"] == "corral::rpc::request" {
                n += 1;
            }
            (v["fields"]["message"] == "node stopped").then_some(())
        });
        n
    };
    assert_eq!(request_lines, 0);
}
