//! Throughput of the protocols' hot paths, the design card's `cargo bench`:
//! each group starts a node in this process (`Node::start`, listeners on
//! 127.0.0.1:0, its data in a temporary directory) and drives it over
//! loopback TCP with real clients, a batch of requests in flight:
//!
//! - `rpc`: `echo` of 64 bytes, 32 connections × 16 pipelined, and
//!   `compute` n=100000, 8 connections × 1, with corral's own client
//!   ([`corral::client::FrameConn`]); elements are replies;
//! - `http`: GET of a 1 KiB and of a 100 KiB static file (no gzip), 32
//!   kept-alive connections, with hyper's HTTP/1.1 client; elements are
//!   responses (bytes are the bodies);
//! - `chat`: fan-out, 1 publisher → 100 subscribers on one channel, 64-byte
//!   messages, every publish durable, the publisher at most 2000 messages
//!   ahead of the slowest subscriber; elements are pushes delivered.
//!
//! The node runs on a multi-threaded runtime of its own with one worker per
//! CPU, as `corral serve`; the load on a current-thread runtime, as
//! `corral bench --threads 1` and `wrk -t1`. Both share the machine's cores
//! (the scripts' co-located layout): compare figures from one machine,
//! one run. The peers are in the scripts (benches/README.md).
//!
//! `cargo bench --bench throughput [-- rpc|http|chat]`; `cargo test
//! --all-targets` runs each once.

mod chat;
mod http;
mod rpc;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use criterion::{criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// The allocator the `corral` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A node in this process, on a runtime of its own, and the runtime that
/// drives the load.
struct InProcess {
    node: Option<Node>,
    server: Runtime,
    load: Runtime,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts a node on `config` (given the temporary data directory).
    fn start(config: impl FnOnce(&Path) -> Config) -> InProcess {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = config(dir.path());
        let server = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.node.effective_worker_threads())
            .thread_name("corral")
            .enable_all()
            .build()
            .expect("the node's runtime");
        let node = server
            .block_on(Node::start(config))
            .expect("the node starts");
        let load = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the load's runtime");
        InProcess {
            node: Some(node),
            server,
            load,
            _dir: dir,
        }
    }

    /// The address listener `name` is bound to.
    fn addr(&self, name: &str) -> SocketAddr {
        self.node
            .as_ref()
            .and_then(|n| n.local_addr(name))
            .expect("the listener is bound")
    }

    /// Runs `f` on the load's runtime.
    fn run<F: Future>(&self, f: F) -> F::Output {
        self.load.block_on(f)
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            self.server.block_on(node.shutdown());
        }
    }
}

/// The embedded default with one listener, `name`, of `protocol` on a free
/// port of 127.0.0.1, the chat off and the data under `dir`.
fn config(dir: &Path, name: &str, protocol: ProtocolKind) -> Config {
    let mut c = Config::embedded_default();
    let mut l = ListenerConfig::new(name, Transport::Tcp, protocol, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c.chat.enabled = false;
    c.node.data_dir = dir.to_path_buf();
    // The load's RPC connections wait while criterion analyses a
    // benchmark, and chat subscribers send nothing: no idle cut-off.
    c.rpc.idle_timeout_ms = 0;
    c
}

criterion_group!(benches, rpc::benches, http::benches, chat::benches);
criterion_main!(benches);
