//! What the fuzz targets share: one single-threaded runtime, the RPC and
//! HTTP protocols as a node builds them (built-in services, a file cache on
//! a docroot of a few files), and a client side that writes the input to an
//! in-memory pipe and reads everything the server answers.
//!
//! Every target goes through corral's public API only.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use corral::http::{
    websocket_handler, CacheSettings, FileCache, HttpProtocol, HttpSettings, Routes,
};
use corral::metrics::Metrics;
use corral::rpc::{Registry, RpcProtocol, RpcSettings};
use corral::zmq::{ZmqRouter, ZmqSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

/// Bytes of a file outside the docroot that a symlink inside points to: no
/// answer may ever contain them.
pub const SECRET: &[u8] = b"CORRAL-FUZZ-SECRET-OUTSIDE-THE-DOCROOT";

/// The runtime every input runs on (one thread: the fuzzer's).
pub fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The RPC protocol with its built-in services (`compute` bounded small, so
/// that an input's cost is the decoder's, not the service's).
pub fn rpc() -> &'static Arc<RpcProtocol> {
    static RPC: OnceLock<Arc<RpcProtocol>> = OnceLock::new();
    RPC.get_or_init(|| {
        let mut settings = RpcSettings::default();
        settings.compute_max_n = 10_000;
        settings.max_frame_bytes = 64 * 1024;
        Arc::new(RpcProtocol::new(settings, Metrics::new(), Registry::new()))
    })
}

/// The ZeroMQ request endpoint over [`rpc`], with a short handshake
/// timeout so that an unfinished handshake ends soon.
pub fn zmq() -> &'static ZmqRouter {
    static ZMQ: OnceLock<ZmqRouter> = OnceLock::new();
    ZMQ.get_or_init(|| {
        let mut settings = ZmqSettings::default();
        settings.handshake_timeout_ms = 200;
        ZmqRouter::new(rpc().clone(), settings)
    })
}

/// The docroot: `index.html`, `a.txt` (1 KiB), `big.txt` (64 KiB of text,
/// gzipped by the cache), `sub/index.html`, `sub/b.json`, and `leak.txt`,
/// a symlink to [`SECRET`]'s file outside the docroot.
pub fn docroot() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("corral-fuzz-{}", std::process::id()));
        let root = base.join("www");
        std::fs::create_dir_all(root.join("sub")).expect("docroot");
        std::fs::write(base.join("secret.txt"), SECRET).expect("secret");
        std::fs::write(root.join("index.html"), "<h1>corral</h1>\n").expect("file");
        std::fs::write(root.join("a.txt"), "a".repeat(1024)).expect("file");
        let big: String = (0..4096).map(|i| format!("line {i:09}\n")).collect();
        std::fs::write(root.join("big.txt"), big).expect("file");
        std::fs::write(root.join("sub/index.html"), "<p>sub</p>\n").expect("file");
        std::fs::write(root.join("sub/b.json"), "{\"b\":1}\n").expect("file");
        let _ = std::os::unix::fs::symlink(base.join("secret.txt"), root.join("leak.txt"));
        root
    })
}

/// The HTTP protocol as a node builds it: `/metrics`, `/health`, `/ws`
/// (RPC over WebSocket) and the static files of [`docroot`], with short
/// timeouts so that an incomplete request ends soon.
pub fn http() -> &'static HttpProtocol {
    static HTTP: OnceLock<HttpProtocol> = OnceLock::new();
    HTTP.get_or_init(|| {
        let metrics = Metrics::new();
        let mut settings = HttpSettings::default();
        settings.header_read_timeout_ms = 200;
        settings.idle_timeout_ms = 200;
        let files = FileCache::new(docroot().clone(), &CacheSettings::default(), None);
        let routes = Routes::new().route(
            "/ws",
            websocket_handler(rpc().clone(), CancellationToken::new()),
        );
        HttpProtocol::builder(metrics, &settings)
            .routes(routes)
            .files(files)
            .build()
    })
}

/// Writes `input` to the server side served by `serve`, closes the write
/// half, and returns everything the server wrote back (at most a few
/// seconds of it: a guard, the fuzzer reports a hang on its own).
pub fn exchange<F, Fut>(input: &[u8], serve: F) -> Vec<u8>
where
    F: FnOnce(tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    rt().block_on(async {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let server = tokio::spawn(serve(server));
        let input = input.to_vec();
        let (mut rd, mut wr) = tokio::io::split(&mut client);
        let write = async move {
            let _ = wr.write_all(&input).await;
            let _ = wr.shutdown().await;
        };
        let mut out = Vec::new();
        let read = rd.read_to_end(&mut out);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let (_, _) = tokio::join!(write, read);
        })
        .await;
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        out
    })
}

/// Panics if `out` holds [`SECRET`] more often than `input` does: a file
/// outside the docroot was served. (A request may carry the secret's text
/// itself, and a redirect echoes its query in `Location`: that is no leak.)
pub fn assert_no_leak(input: &[u8], out: &[u8]) {
    let count = |b: &[u8]| b.windows(SECRET.len()).filter(|w| *w == SECRET).count();
    assert!(
        count(out) <= count(input),
        "a file outside the docroot was served"
    );
}
