//! The `http` group: GET of a 1 KiB and of a 100 KiB static file (no
//! `Accept-Encoding`: the bytes as they are), each of 32 kept-alive
//! connections with a request in flight, with hyper's HTTP/1.1 client,
//! as `wrk -c32` does (a connection the node closes is opened again).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use corral::config::ProtocolKind;
use criterion::{Criterion, Throughput};
use futures::future::join_all;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{config, InProcess};

/// Kept-alive connections, one request in flight on each.
const CONNECTIONS: usize = 32;

pub(crate) fn benches(c: &mut Criterion) {
    let files = [
        ("file_1KiB", "1k.txt", 1024),
        ("file_100KiB", "100k.txt", 100 * 1024),
    ];
    let node = InProcess::start(|dir| {
        let docroot = dir.join("public");
        std::fs::create_dir_all(&docroot).expect("a docroot");
        for (_, name, len) in files {
            let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            std::fs::write(docroot.join(name), body).expect("a file");
        }
        let mut c = config(dir, "http", ProtocolKind::Http);
        c.http.docroot = docroot;
        c
    });
    let addr = node.addr("http");
    let mut conns = node.run(connect(addr));
    let mut g = c.benchmark_group("http");
    for (id, name, len) in files {
        let path = format!("/{name}");
        g.throughput(Throughput::ElementsAndBytes {
            elements: CONNECTIONS as u64,
            bytes: (CONNECTIONS * len) as u64,
        });
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                node.run(async {
                    let t0 = Instant::now();
                    let runs = conns.iter_mut().map(|c| c.get(&path, len, iters));
                    join_all(runs).await;
                    t0.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// The kept-alive connections.
async fn connect(addr: SocketAddr) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        conns.push(Conn::open(addr).await);
    }
    conns
}

/// A kept-alive HTTP/1.1 connection, opened again when the node closes it
/// (after `max_requests_per_connection`, 1000 by default), as wrk does.
struct Conn {
    addr: SocketAddr,
    sender: SendRequest<Empty<Bytes>>,
}

impl Conn {
    /// Connects; the connection's task runs on the load's runtime.
    async fn open(addr: SocketAddr) -> Conn {
        let tcp = TcpStream::connect(addr).await.expect("connects");
        tcp.set_nodelay(true).expect("nodelay");
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .expect("an HTTP/1.1 connection");
        // Its errors reach `get` too, as a failed `ready` or response.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("HTTP connection: {e}");
            }
        });
        Conn { addr, sender }
    }

    /// `n` GETs of `path` one after another; each must answer 200 with
    /// `len` bytes.
    async fn get(&mut self, path: &str, len: usize, n: u64) {
        for _ in 0..n {
            if self.sender.ready().await.is_err() {
                // Closed by the node after its last request.
                *self = Conn::open(self.addr).await;
                self.sender
                    .ready()
                    .await
                    .expect("a new connection is ready");
            }
            let req = Request::get(path)
                .header("host", "bench")
                .body(Empty::new())
                .expect("a request");
            let resp = self.sender.send_request(req).await.expect("a response");
            assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
            let mut body = resp.into_body();
            let mut read = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.expect("the body").into_data() {
                    read += data.len();
                }
            }
            assert_eq!(read, len, "GET {path}: the whole file");
        }
    }
}
