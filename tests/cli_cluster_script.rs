//! scripts/cluster as a user runs it: start three real nats-server
//! processes and three corral nodes (this build's binary) on free ports in
//! a temporary directory, see them in `status`, reach every node with the
//! client, stop them by PID, and refuse bad port lists and taken ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use corral::client::{Client, Codec};
use serde_json::json;

/// Against hangs only.
const GUARD: Duration = Duration::from_secs(180);

/// Free ports, held until all are chosen so that none repeats.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The script's environment: its directory and ports.
struct Cluster {
    dir: tempfile::TempDir,
    rpc: Vec<u16>,
    env: Vec<(String, String)>,
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = free_ports(15);
        let rpc = p[9..12].to_vec();
        let env = vec![
            ("CLUSTER_DIR", dir.path().join("c").display().to_string()),
            ("CLUSTER_SETUP", "0".into()),
            ("CORRAL_BIN", env!("CARGO_BIN_EXE_corral").into()),
            ("CLUSTER_NATS_PORTS", join(&p[0..3])),
            ("CLUSTER_ROUTE_PORTS", join(&p[3..6])),
            ("CLUSTER_MONITOR_PORTS", join(&p[6..9])),
            ("CLUSTER_RPC_PORTS", join(&rpc)),
            ("CLUSTER_HTTP_PORTS", join(&p[12..15])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Cluster { dir, rpc, env }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("c")
    }

    /// Runs `scripts/cluster <cmd>` with `extra` environment to its end.
    fn run(&self, cmd: &str, extra: &[(&str, &str)]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster");
        let mut c = Command::new(script);
        c.arg(cmd)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .env("CORRAL__LOG__LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("scripts/cluster runs");
        let start = Instant::now();
        while child.try_wait().expect("try_wait").is_none() {
            assert!(start.elapsed() < GUARD, "scripts/cluster {cmd} hangs");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Whatever happened, nothing is left running.
        let _ = self.run("stop", &[]);
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The PIDs in the cluster's pids/ directory.
fn pids(root: &Path) -> Vec<u32> {
    std::fs::read_dir(root.join("pids"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_status_reach_and_stop() {
    let c = Cluster::new();
    let out = c.run("start", &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for name in ["nats1", "nats2", "nats3", "n1", "n2", "n3"] {
        assert!(t.contains(&format!("  {name} started (pid ")), "{t}");
    }
    assert!(t.contains("cluster: up."), "{t}");
    let mut started = pids(&c.root());
    started.sort_unstable();
    assert_eq!(started.len(), 6, "{t}");
    assert!(started.iter().all(|&p| alive(p)));
    // Each node got its name and the three NATS URLs.
    for i in 1..=3 {
        let conf = std::fs::read_to_string(c.root().join(format!("n{i}/corral.toml")))
            .expect("node config");
        assert!(conf.contains(&format!("port = {}", c.rpc[i - 1])), "{conf}");
        let environ = std::fs::read(format!(
            "/proc/{}/environ",
            std::fs::read_to_string(c.root().join(format!("pids/n{i}.pid")))
                .expect("pid")
                .trim()
        ))
        .expect("environ");
        let environ = String::from_utf8_lossy(&environ);
        assert!(environ.contains(&format!("CORRAL__NODE__NAME=n{i}\0")));
        assert!(environ.contains("CORRAL__CLUSTER__ENABLED=true\0"));
        assert_eq!(
            environ
                .split('\0')
                .find_map(|v| v.strip_prefix("CORRAL__CLUSTER__SERVERS="))
                .map(|v| v.split(',').count()),
            Some(3)
        );
    }

    // Every process runs; NATS and the nodes answer their health checks
    // (a node may report itself degraded while it joins: asked again).
    let start = Instant::now();
    loop {
        let out = c.run("status", &[]);
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert_eq!(t.matches(" running ").count(), 6, "{t}");
        if t.matches("healthz 200").count() == 3 && t.matches("/health 200").count() == 3 {
            break;
        }
        assert!(start.elapsed() < GUARD, "not healthy: {t}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A second start starts nothing new.
    let out = c.run("start", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches("already running").count(), 6);
    let mut again = pids(&c.root());
    again.sort_unstable();
    assert_eq!(again, started);

    for port in &c.rpc {
        let client =
            tokio::time::timeout(GUARD, Client::connect(("127.0.0.1", *port), Codec::Json))
                .await
                .expect("in time")
                .expect("node reachable");
        client.call("ping", json!({})).await.expect("ping");
    }

    let out = c.run("stop", &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(t.matches(" stopped (pid ").count(), 6, "{t}");
    assert!(started.iter().all(|&p| !alive(p)), "{t}");
    let out = c.run("status", &[]);
    assert!(!out.status.success());
    assert_eq!(text(&out).matches(" stopped ").count(), 6);
    // Data kept for the next start.
    assert!(c.root().join("nats/nats1").is_dir());
}

#[test]
fn bad_ports_and_taken_ports_are_refused() {
    let c = Cluster::new();
    for (var, value, says) in [
        ("CLUSTER_RPC_PORTS", "7071 7072", "needs 3 ports"),
        ("CLUSTER_HTTP_PORTS", "8081 x 8083", "x is not a port"),
        (
            "CLUSTER_NATS_PORTS",
            "4222 4223 70000",
            "70000 is not a port",
        ),
    ] {
        let out = c.run("start", &[(var, value)]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains(var) && t.contains(says), "{t}");
        assert!(pids(&c.root()).is_empty(), "nothing started: {t}");
    }
    // A NATS port taken by someone else: a clear error, nothing left behind.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let nats = c
        .env
        .iter()
        .find(|(k, _)| k == "CLUSTER_NATS_PORTS")
        .map(|(_, v)| v.clone())
        .expect("nats ports");
    let mut ports: Vec<&str> = nats.split(' ').collect();
    ports[0] = &port;
    let out = c.run("start", &[("CLUSTER_NATS_PORTS", &ports.join(" "))]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!("port {port}")) && t.contains("taken"),
        "{t}"
    );
    assert!(pids(&c.root()).is_empty(), "{t}");
    let out = c.run("frobnicate", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("unknown command"));
}
