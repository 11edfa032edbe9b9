//! Shared by the `http_*` tests: a docroot in a temporary directory (with a
//! secret beside it and symlinks in and out), a node serving it on a free
//! port, raw requests over a TcpStream, and bounded waits on events.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use corral::config::{Config, ListenerConfig, ProtocolKind, Transport};
use corral::node::{Node, NodeBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for a whole test: a guard against hangs, not a measurement.
pub const GUARD: Duration = Duration::from_secs(60);

pub async fn guarded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(GUARD, body)
        .await
        .expect("the test did not finish (hung)");
}

/// The text outside the docroot that must never be served.
pub const SECRET: &str = "TOP-SECRET-0xC0FFEE";

/// A docroot under a temporary directory.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    /// 1 KiB of text.
    pub small: Vec<u8>,
    /// 100 KiB of text.
    pub big: Vec<u8>,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("public");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("secret.txt"), SECRET).expect("write");
        let small: Vec<u8> = (0..1024)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz\n"[i % 27])
            .collect();
        let big: Vec<u8> = (0..100 * 1024)
            .map(|i| format!("line {:06}\n", i / 12).into_bytes()[i % 12])
            .collect();
        std::fs::write(root.join("small.txt"), &small).expect("write");
        std::fs::write(root.join("big.txt"), &big).expect("write");
        std::fs::write(root.join("index.html"), "<h1>home</h1>\n").expect("write");
        std::fs::write(root.join("sub/index.html"), "<h1>sub</h1>\n").expect("write");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.txt"))
                .expect("symlink");
            std::os::unix::fs::symlink(dir.path(), root.join("updir")).expect("symlink");
            std::os::unix::fs::symlink(root.join("small.txt"), root.join("inside.txt"))
                .expect("symlink");
        }
        Site {
            dir,
            root,
            small,
            big,
        }
    }
}

/// A config with one HTTP listener (`http`) on a free port serving `root`.
pub fn config(root: &std::path::Path) -> Config {
    let mut c = Config::embedded_default();
    c.chat.enabled = false;
    let mut l = ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0);
    l.drain_timeout_ms = 1_000;
    c.listeners = vec![l];
    c.http.docroot = root.to_path_buf();
    c.http.header_read_timeout_ms = 5_000;
    c.http.idle_timeout_ms = 10_000;
    c
}

pub async fn start(builder: NodeBuilder) -> (Node, SocketAddr) {
    let node = builder.start().await.expect("the node starts");
    let addr = node.local_addr("http").expect("bound");
    (node, addr)
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// A client that does not decompress, so gzip is seen as sent.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Sends `request` as is and reads the reply until the server closes.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(request).await.expect("writes");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A GET of `target` exactly as written, on a connection that closes after it.
pub async fn raw_get(addr: SocketAddr, target: &str) -> String {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

/// The status code of a raw response.
pub fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Reads one response head and its Content-Length body from a kept-alive
/// connection; returns the head (lowercased) and the body.
pub async fn read_response(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some((head, body))
}

/// Waits until the server closes `s` (read returns 0 or an error), reading
/// and discarding what it sends; false if it did not within the guard.
pub async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(GUARD, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}
