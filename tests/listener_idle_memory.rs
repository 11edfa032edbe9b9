//! What an idle connection costs the node in heap memory: a real node on
//! 127.0.0.1, real sockets, and a global allocator that counts the bytes
//! allocated and not yet freed.
//!
//! Each test warms the node up (a few connections of its kind opened and
//! closed), then opens `CONNS` connections that each make one exchange (an
//! RPC `ping`; one keep-alive HTTP GET; a chat `login` and `subscribe`) and
//! idle, and divides the growth of the live heap by `CONNS`. The clients
//! are blocking `std::net` sockets, which allocate nothing while they are
//! open, so the growth is the node's. Each figure must stay within its
//! budget: an RPC connection's buffers (read, reply, push batch, write
//! queue) are allocated when bytes come and go and released when it idles,
//! so an idle one holds its tasks, its actor and its socket's registration,
//! not buffers. An idle HTTP/1 connection holds hyper's until it hibernates
//! (`[http] hibernate_after_ms`): measured both ways, with hibernation off
//! (its budget keeps hyper's share from growing) and once every connection
//! has hibernated (no buffers).
//!
//! The budgets are for this test build (debug futures are larger than
//! release ones); `scripts/bench-memory.sh` measures the release binary's
//! resident memory per connection, beside nginx's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// An HTTP/1 connection once it has hibernated: what is measured in this
/// build, plus a margin well under one 8 KiB buffer.
const HIBERNATED_BUDGET: isize = 12 * 1024;

/// Idle connections measured per test.
const CONNS: usize = 300;

/// One measurement at a time: the counter is the whole process's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What each connection does before it idles.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Rpc,
    /// HTTP with hibernation off: hyper's state is kept.
    Http,
    /// HTTP, measured once every connection has hibernated.
    HttpHibernated,
    Chat,
}

async fn node(dir: &std::path::Path, kind: Kind) -> Node {
    let mut c = Config::embedded_default();
    let rpc = ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0);
    let http = ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0);
    c.listeners = vec![rpc, http];
    c.node.data_dir = dir.join("data");
    c.http.docroot = dir.to_path_buf();
    // No connection may time out while it is measured; the timers stay on.
    c.rpc.idle_timeout_ms = 600_000;
    c.http.idle_timeout_ms = 600_000;
    c.http.header_read_timeout_ms = 600_000;
    c.http.hibernate_after_ms = match kind {
        Kind::HttpHibernated => 50,
        _ => 0,
    };
    c.log.level = "warn".into();
    Node::start(c).await.expect("the node starts")
}

/// One length-prefixed JSON request and its reply, which must not be an
/// error.
fn call(s: &mut TcpStream, service: &str, data: serde_json::Value) {
    let body = serde_json::to_vec(&serde_json::json!({"id": 1, "service": service, "data": data}))
        .expect("encodes");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).expect("request sent");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("reply length");
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut reply).expect("reply body");
    let reply: serde_json::Value = serde_json::from_slice(&reply).expect("a JSON reply");
    assert!(reply.get("error").is_none(), "{service}: {reply}");
}

/// One keep-alive GET of /1k.txt, its response read in full.
fn get(s: &mut TcpStream) {
    s.write_all(b"GET /1k.txt HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("request sent");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).expect("response");
        assert!(n > 0, "closed mid-response");
        got.extend_from_slice(&chunk[..n]);
        let Some(head) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let text = String::from_utf8_lossy(&got[..head]).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 200"), "{text}");
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("a Content-Length");
        if got.len() >= head + 4 + len {
            assert_eq!(got.len(), head + 4 + len, "bytes after the response");
            return;
        }
    }
}

/// Connection `i` of `kind`, through its exchange.
fn open(kind: Kind, rpc: SocketAddr, http: SocketAddr, i: usize, prefix: &str) -> TcpStream {
    let addr = match kind {
        Kind::Http | Kind::HttpHibernated => http,
        _ => rpc,
    };
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout set");
    match kind {
        Kind::Rpc => call(&mut s, "ping", serde_json::json!({})),
        Kind::Http | Kind::HttpHibernated => get(&mut s),
        Kind::Chat => {
            call(
                &mut s,
                "login",
                serde_json::json!({ "user": format!("{prefix}{i}") }),
            );
            call(&mut s, "subscribe", serde_json::json!({ "topic": "idle" }));
        }
    }
    s
}

/// Opens `n` connections of `kind` from a blocking thread.
async fn open_many(node: &Node, kind: Kind, n: usize, prefix: &'static str) -> Vec<TcpStream> {
    let rpc = node.local_addr("rpc").expect("rpc bound");
    let http = node.local_addr("http").expect("http bound");
    tokio::task::spawn_blocking(move || (0..n).map(|i| open(kind, rpc, http, i, prefix)).collect())
        .await
        .expect("the clients ran")
}

/// Waits until the node counts `n` connections on its listeners.
async fn wait_open(node: &Node, n: usize) {
    for _ in 0..1000 {
        let open: usize = ["rpc", "http"]
            .iter()
            .filter_map(|l| node.listener(l))
            .map(|l| l.connections())
            .sum();
        if open == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the node never counted {n} connections");
}

/// Live heap bytes per idle connection of `kind`.
async fn per_connection(kind: Kind) -> isize {
    let _alone = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("1k.txt"), "x".repeat(1024)).expect("docroot file");
    let node = node(dir.path(), kind).await;
    // The chat's channel, made by a connection that stays open.
    let _setup = matches!(kind, Kind::Chat).then(|| {
        let rpc = node.local_addr("rpc").expect("bound");
        let mut setup = open(Kind::Rpc, rpc, rpc, 0, "");
        call(&mut setup, "login", serde_json::json!({"user": "setup"}));
        call(
            &mut setup,
            "channel",
            serde_json::json!({"channel": "idle"}),
        );
        setup
    });
    // Warm-up: what the first connections allocate once for all (pools,
    // caches, the file cache's entry) is not a connection's.
    let warm = open_many(&node, kind, 20, "warm").await;
    drop(warm);
    wait_open(&node, usize::from(matches!(kind, Kind::Chat))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = LIVE.load(Ordering::Relaxed);
    let slept = node.metrics().http_hibernations.get();
    let conns = open_many(&node, kind, CONNS, "idle").await;
    wait_open(&node, CONNS + usize::from(matches!(kind, Kind::Chat))).await;
    if matches!(kind, Kind::HttpHibernated) {
        while node.metrics().http_hibernations.get() < slept + CONNS as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Let each connection finish what follows its reply (the flush).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = LIVE.load(Ordering::Relaxed);
    drop(conns);
    node.shutdown().await;
    let per = (after - before) / CONNS as isize;
    eprintln!("{kind:?}: {per} heap bytes per idle connection ({CONNS} connections)");
    per
}

// The budgets: what the measure gives in this test build, plus a margin
// well under one 8 KiB buffer, so a buffer kept by idle connections again
// fails the test. Most of what is left is the connection's actor (a bare
// ractor actor holds about 7.3 KiB: its two mailboxes' first blocks) and
// its two tasks; an HTTP/1 connection adds hyper's (see benches/README.md).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_rpc_connection_holds_no_buffers() {
    let per = per_connection(Kind::Rpc).await;
    assert!(per <= 16 * 1024, "{per} bytes per idle RPC connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_chat_subscriber_holds_no_buffers() {
    let per = per_connection(Kind::Chat).await;
    assert!(per <= 18 * 1024, "{per} bytes per idle chat subscriber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http_keep_alive_connection_stays_within_its_budget() {
    let per = per_connection(Kind::Http).await;
    assert!(per <= 44 * 1024, "{per} bytes per idle HTTP connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hibernated_http_connection_holds_no_buffers() {
    let per = per_connection(Kind::HttpHibernated).await;
    assert!(
        per <= HIBERNATED_BUDGET,
        "{per} bytes per hibernated HTTP connection"
    );
}
