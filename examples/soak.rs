//! Soak: a node under mixed load for a long time, its memory, file
//! descriptors, threads and latency compared at the start and at the end.
//!
//! ```sh
//! scripts/soak [MINUTES=30]
//! # or, with target/release/corral built:
//! cargo run --release --example soak -- [MINUTES=30]
//! ```
//!
//! The node runs in this process, started from the embedded default config
//! (chat on, its store in a temporary directory, an RPC and an HTTP listener
//! on free ports, a docroot of a few files; the chat's rate limit off so the
//! bursts below are not refused). The load comes from other processes, so
//! the figures read from `/proc/self` are the node's own:
//!
//! - `corral bot`: 4 bots publishing 5 messages every 2 s on the channels;
//! - `corral bench rpc`: a burst of 4000 echo calls on 4 new connections
//!   every 10 s;
//! - `corral bench chat`: a burst of at most 2000 publications to 10
//!   subscribers every 30 s;
//! - `wrk` (when installed; else nothing): 1 s at 4 connections every 10 s,
//!   cycling over a small file, a 256 KiB file, `/index.html`, `/metrics`;
//! - a slow subscriber (this program, `--role slow-sub`): subscribed to every
//!   channel, reads one frame every 100 ms from its socket (and pings every
//!   20 s), so the node's queue for it fills and pushes are dropped;
//! - reconnecting clients (this program, `--role reconnect`): about 10 times
//!   a second, a new RPC connection (ping, login, publish, close), a new HTTP
//!   connection (one GET) or a new WebSocket (one ping, close).
//!
//! Every 20 s a child is restarted through the supervisor API
//! (`terminate_child` then `restart_child`), cycling over `chat_hub`,
//! `file_cache`, `chat_store` and each listener's accepting actor.
//!
//! Every second the program probes the node over persistent connections: an
//! RPC `ping`, an HTTP GET, a chat publish round trip to its own
//! subscription; every 5 s it samples VmRSS, the open descriptors and the
//! threads. It prints a row per window (a minute) after the first minute of
//! warm-up, every 5 minutes and at the end, then compares the first window
//! after warm-up with the last one and exits non-zero if:
//!
//! - RSS (the window's largest sample) grew by 20 % or more, beyond what the
//!   chat store file grew (redb caches the file's pages, so memory follows
//!   the data stored; the table shows both);
//! - open descriptors, the window's smallest sample (the count between
//!   bursts), grew by more than 10; or, after the load is stopped and the
//!   connections drained, the count is more than 10 above the count with no
//!   load at the start;
//! - a probe's p50 or p99 is above twice its first value plus 2 ms (the
//!   slack: a millisecond-level hiccup on a shared machine is not a trend);
//! - more than 1 % of the probes in the last window failed (a probe failed
//!   within 3 s of a listener's restart is that restart's cost: the socket
//!   is closed until it is bound again, and the listener's connections are
//!   drained and closed, as Ranch stops a listener; counted apart).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral::client::{Client, Codec, FrameConn};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::supervisor::{ChildState, Supervisor};
use corral::transport::Transport;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::process::Command;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Seconds per window (a row of the table).
const WINDOW_SECS: u64 = 60;
/// Seconds between two restarts of a child.
const RESTART_EVERY: Duration = Duration::from_secs(20);
/// Children restarted in turn: (supervisor path from the root, child id).
const RESTARTS: &[(&[&str], &str)] = &[
    (&["chat_sup"], "chat_hub"),
    (&["cache_sup"], "file_cache"),
    (&["listener_sup:rpc"], "listener"),
    (&["chat_sup"], "chat_store"),
    (&["listener_sup:http"], "listener"),
];
/// Channels the load uses (the bots pick among every channel).
const CHANNELS: &[&str] = &["general", "soakbench", "soakprobe"];

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Runtime::new()?;
    match args.get(1).map(String::as_str) {
        Some("--role") => {
            let role = args.get(2).map(String::as_str).unwrap_or("");
            let rpc = args
                .get(3)
                .cloned()
                .ok_or("--role ROLE RPC_ADDR [HTTP_ADDR]")?;
            match role {
                "slow-sub" => rt.block_on(slow_subscriber(rpc)),
                "reconnect" => {
                    let http = args.get(4).cloned().ok_or("reconnect needs HTTP_ADDR")?;
                    rt.block_on(reconnecting(rpc, http))
                }
                other => Err(format!("unknown role {other:?}").into()),
            }
        }
        minutes => {
            let minutes: f64 = minutes.map_or(Ok(30.0), str::parse)?;
            let code = rt.block_on(soak(Duration::from_secs_f64(minutes * 60.0)))?;
            drop(rt);
            std::process::exit(code)
        }
    }
}

// ---------------------------------------------------------------- figures

/// The process's own figures, from /proc/self.
#[derive(Debug, Clone, Copy, Default)]
struct Proc {
    rss_kib: u64,
    fds: u64,
    threads: u64,
    /// The chat store file's allocated size: redb caches the file's pages,
    /// so the node's memory may grow with what it stores.
    store_kib: u64,
}

/// The node's chat store file (set once the node is configured).
static STORE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn proc_self() -> Proc {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let store_kib = STORE
        .get()
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| std::os::unix::fs::MetadataExt::blocks(&m) / 2);
    Proc {
        rss_kib: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
        store_kib,
    }
}

/// What one window gathered.
#[derive(Debug, Default, Clone)]
struct Window {
    samples: Vec<Proc>,
    rpc: Vec<u64>,
    http: Vec<u64>,
    chat: Vec<u64>,
    probes: u64,
    failures: u64,
    /// Probes that failed within RESTART_GRACE of a listener's restart:
    /// its socket is closed until it is bound again, and its connections
    /// are drained and closed (Ranch's stop); the restart's cost, not
    /// counted as failures.
    refused_in_restart: u64,
}

impl Window {
    fn rss_max(&self) -> u64 {
        self.samples.iter().map(|p| p.rss_kib).max().unwrap_or(0)
    }
    fn store_max(&self) -> u64 {
        self.samples.iter().map(|p| p.store_kib).max().unwrap_or(0)
    }
    fn fds_min(&self) -> u64 {
        self.samples.iter().map(|p| p.fds).min().unwrap_or(0)
    }
    fn fds_max(&self) -> u64 {
        self.samples.iter().map(|p| p.fds).max().unwrap_or(0)
    }
    fn threads_max(&self) -> u64 {
        self.samples.iter().map(|p| p.threads).max().unwrap_or(0)
    }
}

/// A percentile of latencies in µs, in ms.
fn pct(v: &[u64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let i = ((s.len() as f64 - 1.0) * q).round() as usize;
    s[i.min(s.len() - 1)] as f64 / 1000.0
}

#[derive(Debug, Default)]
struct Counters {
    restarts: AtomicU64,
    restart_errors: AtomicU64,
    load_runs: AtomicU64,
    load_failures: AtomicU64,
    /// When a listener was last restarted.
    listener_restarted: Mutex<Option<Instant>>,
}

/// How long after a listener's restart a failed probe is the restart's
/// doing.
const RESTART_GRACE: Duration = Duration::from_secs(3);

impl Counters {
    fn listener_restarted_recently(&self) -> bool {
        self.listener_restarted
            .lock()
            .ok()
            .and_then(|t| *t)
            .is_some_and(|t| t.elapsed() < RESTART_GRACE)
    }
}

fn header() {
    println!(
        "{:>5} {:>8} {:>9} {:>9} {:>7} | {:>15} {:>15} {:>15} | {:>6} {:>8} {:>8} {:>9}",
        "min",
        "rss_MiB",
        "store_MiB",
        "fds",
        "threads",
        "rpc p50/p99 ms",
        "http p50/p99 ms",
        "chat p50/p99 ms",
        "fails",
        "restarts",
        "load_runs",
        "dropped"
    );
}

fn row(minute: usize, w: &Window, c: &Counters, dropped: u64) {
    let lat = |v: &[u64]| format!("{:.2}/{:.2}", pct(v, 0.5), pct(v, 0.99));
    println!(
        "{:>5} {:>8.1} {:>9.1} {:>9} {:>7} | {:>15} {:>15} {:>15} | {:>6} {:>8} {:>8} {:>9}",
        minute,
        w.rss_max() as f64 / 1024.0,
        w.store_max() as f64 / 1024.0,
        format!("{}-{}", w.fds_min(), w.fds_max()),
        w.threads_max(),
        lat(&w.rpc),
        lat(&w.http),
        lat(&w.chat),
        format!("{}/{}", w.failures, w.probes),
        c.restarts.load(Ordering::Relaxed),
        c.load_runs.load(Ordering::Relaxed),
        dropped,
    );
}

// ---------------------------------------------------------------- the soak

async fn soak(duration: Duration) -> Result<i32, Error> {
    let data = tempfile::tempdir()?;
    let docroot = tempfile::tempdir()?;
    write_docroot(docroot.path())?;
    let mut config = Config::embedded_default();
    config.listeners = vec![
        ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0),
        ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0),
    ];
    config.node.data_dir = data.path().to_path_buf();
    let _ = STORE.set(data.path().join("chat.redb"));
    config.http.docroot = docroot.path().to_path_buf();
    config.chat.rate_per_second = 0.0;
    let node = Node::start(config).await?;
    let rpc = node.local_addr("rpc").ok_or("no rpc listener")?;
    let http = node.local_addr("http").ok_or("no http listener")?;
    println!(
        "# soak: {:.0} min, node rpc {rpc} http {http}",
        duration.as_secs_f64() / 60.0
    );
    print!("{}", node.tree().await?);

    let setup = Client::connect(rpc, Codec::Json).await?;
    setup.call("login", json!({"user": "soak"})).await?;
    for c in CHANNELS {
        setup.call("channel", json!({"channel": c})).await?;
    }
    drop(setup);

    let counters = Arc::new(Counters::default());
    let windows: Arc<Mutex<VecDeque<Window>>> = Arc::new(Mutex::new(VecDeque::new()));
    windows
        .lock()
        .map_err(|_| "poisoned")?
        .push_back(Window::default());

    // The probes and the sampler run from the start; the load after a few
    // seconds of quiet, for the no-load descriptor count.
    let probes = tokio::spawn(probe_loop(rpc, http, windows.clone(), counters.clone()));
    let sampler = tokio::spawn(sample_loop(windows.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_start = proc_self();
    println!(
        "# no load: rss {:.1} MiB, {} fds, {} threads",
        idle_start.rss_kib as f64 / 1024.0,
        idle_start.fds,
        idle_start.threads
    );

    let corral = corral_binary()?;
    let me = std::env::current_exe()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = tokio::task::JoinSet::new();
    let rpc_s = rpc.to_string();
    let http_s = http.to_string();
    // Long-running generators, started again if they exit.
    let long: Vec<(&str, PathBuf, Vec<String>)> = vec![
        (
            "bot",
            corral.clone(),
            args(&[
                "bot",
                "-n",
                "4",
                "--addr",
                &rpc_s,
                "--messages",
                "5",
                "--pause",
                "2",
            ]),
        ),
        (
            "slow-sub",
            me.clone(),
            args(&["--role", "slow-sub", &rpc_s]),
        ),
        (
            "reconnect",
            me.clone(),
            args(&["--role", "reconnect", &rpc_s, &http_s]),
        ),
    ];
    for (name, prog, a) in long {
        load.spawn(respawning(name, prog, a, stop.clone(), counters.clone()));
    }
    // Bursts.
    load.spawn(bursts(
        "bench rpc",
        Duration::from_secs(10),
        vec![(
            corral.clone(),
            args(&[
                "bench",
                "rpc",
                "--addr",
                &rpc_s,
                "--concurrency",
                "4",
                "--requests",
                "4000",
                "--in-flight",
                "4",
                "--warmup",
                "0",
                "--json",
            ]),
        )],
        stop.clone(),
        counters.clone(),
    ));
    load.spawn(bursts(
        "bench chat",
        Duration::from_secs(30),
        vec![(
            corral.clone(),
            args(&[
                "bench",
                "chat",
                "--addr",
                &rpc_s,
                "--subscribers",
                "10",
                "--messages",
                "2000",
                "--duration",
                "5",
                "--window",
                "500",
                "--channel",
                "soakbench",
                "--json",
            ]),
        )],
        stop.clone(),
        counters.clone(),
    ));
    match which("wrk") {
        Some(wrk) => {
            let runs = ["/a.txt", "/big.bin", "/index.html", "/metrics"]
                .iter()
                .map(|p| {
                    (
                        wrk.clone(),
                        args(&["-t1", "-c4", "-d1s", &format!("http://{http}{p}")]),
                    )
                })
                .collect();
            load.spawn(bursts(
                "wrk",
                Duration::from_secs(10),
                runs,
                stop.clone(),
                counters.clone(),
            ));
        }
        None => println!("# wrk not installed: HTTP load from the reconnecting clients only"),
    }

    // Restarts, and the table.
    let started = Instant::now();
    let warmup = Duration::from_secs(WINDOW_SECS).min(duration / 3);
    let window_len = Duration::from_secs(WINDOW_SECS).min(duration / 3);
    let mut next_restart = started + RESTART_EVERY;
    let mut next_window = started + warmup;
    let mut restart_i = 0usize;
    let mut closed: Vec<Window> = Vec::new();
    let mut printed_header = false;
    loop {
        let now = Instant::now();
        if now >= started + duration {
            break;
        }
        if now >= next_restart {
            let (path, child) = RESTARTS[restart_i % RESTARTS.len()];
            restart_i += 1;
            eprintln!(
                "# {:.0} s: restarting {}/{child}",
                started.elapsed().as_secs_f64(),
                path.join("/")
            );
            if child == "listener" {
                if let Ok(mut t) = counters.listener_restarted.lock() {
                    *t = Some(Instant::now());
                }
            }
            match restart(&node, path, child).await {
                Ok(()) => counters.restarts.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    eprintln!("# restart of {}/{child} failed: {e}", path.join("/"));
                    counters.restart_errors.fetch_add(1, Ordering::Relaxed)
                }
            };
            next_restart += RESTART_EVERY;
        }
        if now >= next_window {
            let w = rotate(&windows)?;
            // The first window is the warm-up: not compared, not shown.
            if next_window > started + warmup {
                closed.push(w);
                let n = closed.len();
                let minute = ((next_window - started).as_secs_f64() / 60.0).round() as usize;
                if n == 1 || minute % 5 == 0 {
                    if !printed_header {
                        header();
                        printed_header = true;
                    }
                    row(minute, &closed[n - 1], &counters, dropped(&node));
                }
            }
            next_window += window_len;
        }
        let wake = next_restart.min(next_window).min(started + duration);
        tokio::time::sleep_until(wake.into()).await;
    }
    // The last (partial) window, if it holds anything worth comparing.
    let w = rotate(&windows)?;
    if w.probes >= 10 {
        closed.push(w);
    }
    if !printed_header {
        header();
    }
    let minute = (started.elapsed().as_secs_f64() / 60.0).round() as usize;
    if let Some(last) = closed.last() {
        row(minute, last, &counters, dropped(&node));
    }

    // Stop the load; the connections drain; the descriptors with no load.
    stop.cancel();
    while load.join_next().await.is_some() {}
    let mut idle_end = proc_self();
    for _ in 0..30 {
        if idle_end.fds <= idle_start.fds + 10 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        idle_end = proc_self();
    }
    probes.abort();
    sampler.abort();
    println!(
        "# no load at the end: rss {:.1} MiB, {} fds, {} threads; restarts {} (failed {}), \
         load runs {} (failed {}), pushes dropped {}",
        idle_end.rss_kib as f64 / 1024.0,
        idle_end.fds,
        idle_end.threads,
        counters.restarts.load(Ordering::Relaxed),
        counters.restart_errors.load(Ordering::Relaxed),
        counters.load_runs.load(Ordering::Relaxed),
        counters.load_failures.load(Ordering::Relaxed),
        dropped(&node),
    );
    let verdict = judge(&closed, idle_start, idle_end, &counters);
    node.shutdown().await;
    Ok(if verdict { 0 } else { 1 })
}

/// Compares the first window after warm-up with the last; prints the rule,
/// each check and PASS or FAIL.
fn judge(closed: &[Window], idle_start: Proc, idle_end: Proc, c: &Counters) -> bool {
    println!(
        "# rule: last window vs first after warm-up: RSS < +20% plus what the chat store file \
         grew (redb caches its pages); fds (window min) <= +10 \
         and fds with no load <= +10; each probe's p50 and p99 <= 2x + 2 ms; <= 1% probes \
         failed; every restart done"
    );
    let (Some(first), Some(last)) = (closed.first(), closed.last()) else {
        println!("FAIL: the run is too short to have a window after the warm-up");
        return false;
    };
    let mut ok = true;
    let mut check = |pass: bool, what: String| {
        println!("{} {what}", if pass { "  ok  " } else { "  FAIL" });
        ok &= pass;
    };
    let (r0, r1) = (first.rss_max(), last.rss_max());
    let (s0, s1) = (first.store_max(), last.store_max());
    let stored = s1.saturating_sub(s0);
    check(
        (r1 as f64) < r0 as f64 * 1.2 + stored as f64,
        format!(
            "rss {:.1} -> {:.1} MiB ({:+.1}%); the store grew {:.1} MiB ({:.1} -> {:.1})",
            r0 as f64 / 1024.0,
            r1 as f64 / 1024.0,
            (r1 as f64 / r0.max(1) as f64 - 1.0) * 100.0,
            stored as f64 / 1024.0,
            s0 as f64 / 1024.0,
            s1 as f64 / 1024.0
        ),
    );
    check(
        last.fds_min() <= first.fds_min() + 10,
        format!(
            "fds between bursts {} -> {}",
            first.fds_min(),
            last.fds_min()
        ),
    );
    check(
        idle_end.fds <= idle_start.fds + 10,
        format!("fds with no load {} -> {}", idle_start.fds, idle_end.fds),
    );
    println!(
        "  info threads {} -> {} (window max), {} -> {} with no load",
        first.threads_max(),
        last.threads_max(),
        idle_start.threads,
        idle_end.threads
    );
    for (name, a, b) in [
        ("rpc", &first.rpc, &last.rpc),
        ("http", &first.http, &last.http),
        ("chat", &first.chat, &last.chat),
    ] {
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            let (x, y) = (pct(a, q), pct(b, q));
            check(
                y <= 2.0 * x + 2.0,
                format!("{name} {label} {x:.2} -> {y:.2} ms"),
            );
        }
    }
    check(
        last.failures * 100 <= last.probes,
        format!(
            "probes failed in the last window {}/{} ({} more during a listener restart)",
            last.failures, last.probes, last.refused_in_restart
        ),
    );
    check(
        c.restart_errors.load(Ordering::Relaxed) == 0,
        format!(
            "restarts failed {}",
            c.restart_errors.load(Ordering::Relaxed)
        ),
    );
    println!("{}", if ok { "PASS" } else { "FAIL" });
    ok
}

fn rotate(windows: &Mutex<VecDeque<Window>>) -> Result<Window, Error> {
    let mut w = windows.lock().map_err(|_| "poisoned")?;
    let done = w.pop_front().unwrap_or_default();
    w.push_back(Window::default());
    Ok(done)
}

fn dropped(node: &Node) -> u64 {
    node.metrics().chat_pushes_dropped.get()
}

/// Terminates then restarts `child` of the supervisor at `path`.
async fn restart(node: &Node, path: &[&str], child: &str) -> Result<(), Error> {
    let mut sup: Supervisor = node.root().clone();
    for id in path {
        let cell = sup
            .which_children()
            .await?
            .into_iter()
            .find(|c| c.id.as_deref() == Some(id))
            .and_then(|c| match c.state {
                ChildState::Running(cell) => Some(cell),
                _ => None,
            })
            .ok_or_else(|| format!("{id} is not running"))?;
        sup = Supervisor::from_cell(cell).ok_or_else(|| format!("{id} is not a supervisor"))?;
    }
    sup.terminate_child(child).await?;
    sup.restart_child(child).await?;
    Ok(())
}

fn write_docroot(dir: &Path) -> std::io::Result<()> {
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>soak</title><p>soak</p>\n",
    )?;
    std::fs::write(dir.join("a.txt"), "a".repeat(1024))?;
    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), big)?;
    std::fs::create_dir_all(dir.join("sub"))?;
    std::fs::write(dir.join("sub/b.json"), "{\"b\": 1}\n")
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The `corral` binary: $CORRAL_BIN, else beside this example's directory
/// (target/release/examples/soak -> target/release/corral).
fn corral_binary() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("CORRAL_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let p = me
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("corral"))
        .ok_or("no directory for the corral binary")?;
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build it (cargo build --release) or set CORRAL_BIN",
            p.display()
        )
        .into())
    }
}

/// Runs a generator until stopped, starting it again whenever it exits.
async fn respawning(
    name: &'static str,
    prog: PathBuf,
    a: Vec<String>,
    stop: tokio_util::sync::CancellationToken,
    c: Arc<Counters>,
) {
    while !stop.is_cancelled() {
        c.load_runs.fetch_add(1, Ordering::Relaxed);
        let child = Command::new(&prog)
            .args(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                eprintln!("# {name}: cannot start {}: {e}", prog.display());
                c.load_failures.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        tokio::select! {
            out = child.wait_with_output() => {
                c.load_failures.fetch_add(1, Ordering::Relaxed);
                if let Ok(out) = out {
                    let err = String::from_utf8_lossy(&out.stderr);
                    eprintln!("# {name} exited ({}): {}", out.status, err.lines().last().unwrap_or(""));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = stop.cancelled() => return, // kill_on_drop
        }
    }
}

/// Runs each command in turn, one every `every`, until stopped.
async fn bursts(
    name: &'static str,
    every: Duration,
    runs: Vec<(PathBuf, Vec<String>)>,
    stop: tokio_util::sync::CancellationToken,
    c: Arc<Counters>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0u32;
    for i in 0.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let (prog, a) = &runs[i % runs.len()];
        c.load_runs.fetch_add(1, Ordering::Relaxed);
        let child = Command::new(prog)
            .args(a)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let Ok(child) = child else {
            c.load_failures.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        tokio::select! {
            out = tokio::time::timeout(every * 3, child.wait_with_output()) => {
                let failed = match out {
                    Ok(Ok(out)) if out.status.success() => None,
                    Ok(Ok(out)) => Some(format!("{}: {}", out.status,
                        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""))),
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("timed out".into()),
                };
                if let Some(why) = failed {
                    c.load_failures.fetch_add(1, Ordering::Relaxed);
                    if reported < 5 {
                        reported += 1;
                        eprintln!("# {name} failed: {why}");
                    }
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

async fn sample_loop(windows: Arc<Mutex<VecDeque<Window>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let p = proc_self();
        if let Ok(mut w) = windows.lock() {
            if let Some(w) = w.back_mut() {
                w.samples.push(p);
            }
        }
    }
}

/// The persistent probe connections (made again after a failure).
struct Probes {
    rpc: Option<Client>,
    chat: Option<(
        Client,
        tokio::sync::mpsc::Receiver<corral::client::IncomingPush>,
    )>,
    http: reqwest::Client,
    n: u64,
}

async fn probe_loop(
    rpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    windows: Arc<Mutex<VecDeque<Window>>>,
    counters: Arc<Counters>,
) {
    let mut p = Probes {
        rpc: None,
        chat: None,
        http: reqwest::Client::new(),
        n: 0,
    };
    let url = format!("http://{http}/a.txt");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let timeout = Duration::from_secs(5);
        let r = tokio::time::timeout(timeout, probe_rpc(&mut p, rpc)).await;
        if !record(&windows, &counters, "rpc", r, |w| &mut w.rpc) {
            p.rpc = None;
        }
        let r = tokio::time::timeout(timeout, probe_http(&p.http, &url)).await;
        record(&windows, &counters, "http", r, |w| &mut w.http);
        let r = tokio::time::timeout(timeout, probe_chat(&mut p, rpc)).await;
        if !record(&windows, &counters, "chat", r, |w| &mut w.chat) {
            p.chat = None;
        }
    }
}

/// Whether an error, or one of its causes, is a refused connection.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            || c.to_string().contains("Connection refused")
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Records a probe's latency or failure (printed, with why); whether it
/// succeeded.
fn record(
    windows: &Mutex<VecDeque<Window>>,
    counters: &Counters,
    probe: &str,
    r: Result<Result<u64, Error>, tokio::time::error::Elapsed>,
    field: impl Fn(&mut Window) -> &mut Vec<u64>,
) -> bool {
    let Ok(mut w) = windows.lock() else {
        return false;
    };
    let Some(w) = w.back_mut() else {
        return false;
    };
    w.probes += 1;
    match r {
        Ok(Ok(us)) => {
            field(w).push(us);
            true
        }
        Ok(Err(e)) if counters.listener_restarted_recently() => {
            let how = if refused(e.as_ref()) {
                "refused"
            } else {
                "closed"
            };
            eprintln!("# probe {probe} {how} during a listener restart (not a failure): {e}");
            w.refused_in_restart += 1;
            false
        }
        Ok(Err(e)) => {
            eprintln!("# probe {probe} failed: {e}");
            w.failures += 1;
            false
        }
        Err(_) => {
            eprintln!("# probe {probe} failed: no answer within its timeout");
            w.failures += 1;
            false
        }
    }
}

async fn probe_rpc(p: &mut Probes, addr: std::net::SocketAddr) -> Result<u64, Error> {
    if p.rpc.as_ref().is_none_or(Client::is_closed) {
        p.rpc = Some(Client::connect(addr, Codec::Json).await?);
    }
    let c = p.rpc.as_ref().ok_or("no client")?;
    let t = Instant::now();
    c.call("ping", json!({})).await?;
    Ok(t.elapsed().as_micros() as u64)
}

async fn probe_http(c: &reqwest::Client, url: &str) -> Result<u64, Error> {
    let t = Instant::now();
    let r = c.get(url).send().await?.error_for_status()?;
    let body = r.bytes().await?;
    if body.len() != 1024 {
        return Err(format!("GET returned {} bytes", body.len()).into());
    }
    Ok(t.elapsed().as_micros() as u64)
}

async fn probe_chat(p: &mut Probes, addr: std::net::SocketAddr) -> Result<u64, Error> {
    if p.chat.as_ref().is_none_or(|(c, _)| c.is_closed()) {
        let c = Client::connect(addr, Codec::Json).await?;
        let pushes = c.pushes().ok_or("pushes taken")?;
        c.call("login", json!({"user": "soak_probe"})).await?;
        c.call("subscribe", json!({"topic": "soakprobe"})).await?;
        p.chat = Some((c, pushes));
    }
    let (c, pushes) = p.chat.as_mut().ok_or("no client")?;
    p.n += 1;
    let message = format!("probe {}", p.n);
    let t = Instant::now();
    c.call(
        "publish",
        json!({"channel": "soakprobe", "message": message}),
    )
    .await?;
    // Other publications (the bots') may come first on this channel.
    loop {
        let push = pushes.recv().await.ok_or("push stream closed")?;
        if push.data["message"] == message.as_str() {
            return Ok(t.elapsed().as_micros() as u64);
        }
    }
}

// ---------------------------------------------------------------- roles

/// A subscriber to every channel that reads one frame every 100 ms from
/// its own socket (the client library would read eagerly and drop), so the
/// node's push queue for it fills. Connects again when cut.
async fn slow_subscriber(rpc: String) -> Result<(), Error> {
    loop {
        if let Err(e) = slow_once(&rpc).await {
            eprintln!("slow-sub: {e}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn slow_once(rpc: &str) -> Result<(), Error> {
    let mut conn = FrameConn::connect(rpc).await?;
    let mut id = 0u64;
    let mut call = |service: &str, data: serde_json::Value| {
        id += 1;
        Codec::Json.encode(&json!({"id": id, "service": service, "data": data}))
    };
    conn.send_frame(call("login", json!({"user": "soak_slow"}))?)
        .await?;
    for c in CHANNELS {
        conn.send_frame(call("subscribe", json!({"topic": c}))?)
            .await?;
    }
    // A ping now and then: the node cuts a connection that sends nothing
    // for rpc.idle_timeout_ms.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for i in 1u64.. {
        tick.tick().await;
        if i % 200 == 0 {
            conn.send_frame(call("ping", json!({}))?).await?;
        }
        if conn.recv_frame().await?.is_none() {
            return Ok(());
        }
    }
    Ok(())
}

/// Clients that connect, do one thing and go, about 10 times a second:
/// RPC (ping, login, publish), HTTP (one GET on a new connection), WebSocket
/// (one ping).
async fn reconnecting(rpc: String, http: String) -> Result<(), Error> {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let paths = [
        "/a.txt",
        "/index.html",
        "/sub/b.json",
        "/health",
        "/missing",
    ];
    for i in 0u64.. {
        tick.tick().await;
        let r: Result<(), Error> = match i % 3 {
            0 => {
                async {
                    let c = Client::connect(rpc.as_str(), Codec::MsgPack).await?;
                    c.call("ping", json!({})).await?;
                    c.call("login", json!({"user": format!("soak_r{}", i % 50)}))
                        .await?;
                    c.call(
                        "publish",
                        json!({"channel": "general", "message": format!("reconnect {i}")}),
                    )
                    .await?;
                    Ok(())
                }
                .await
            }
            1 => {
                async {
                    let c = reqwest::Client::builder()
                        .pool_max_idle_per_host(0)
                        .build()?;
                    let path = paths[(i / 3) as usize % paths.len()];
                    c.get(format!("http://{http}{path}")).send().await?;
                    Ok(())
                }
                .await
            }
            _ => {
                async {
                    let (mut ws, _) =
                        tokio_tungstenite::connect_async(format!("ws://{http}/ws")).await?;
                    ws.send(tokio_tungstenite::tungstenite::Message::text(
                        r#"{"id":1,"service":"ping","data":{}}"#,
                    ))
                    .await?;
                    ws.next().await.ok_or("no reply")??;
                    ws.close(None).await?;
                    Ok(())
                }
                .await
            }
        };
        if let Err(e) = r {
            if i % 100 == 0 {
                eprintln!("reconnect: {e}");
            }
        }
    }
    Ok(())
}
