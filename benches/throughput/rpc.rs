//! The `rpc` group: `echo` of 64 bytes and `compute` n=100000 over
//! loopback TCP, each connection keeping its requests in flight (a new one
//! sent as each reply comes), as `corral bench rpc` does.

use std::time::{Duration, Instant};

use bytes::Bytes;
use corral::client::{Codec, FrameConn};
use corral::config::ProtocolKind;
use criterion::{Criterion, Throughput};
use futures::future::join_all;
use serde_json::{json, Value};

use super::{config, InProcess};

/// One load: a request, its connections and how many each keeps in flight.
struct Load {
    name: &'static str,
    service: &'static str,
    data: Value,
    /// What the reply's `data` must be.
    expected: Value,
    connections: usize,
    in_flight: usize,
}

/// Σ i·i mod 1_000_000_007 for i in 0..n, as the `compute` service defines it.
fn compute(n: u64) -> u64 {
    const MOD: u64 = 1_000_000_007;
    (0..n).fold(0, |acc, i| (acc + (i * i) % MOD) % MOD)
}

pub(crate) fn benches(c: &mut Criterion) {
    let node = InProcess::start(|dir| config(dir, "rpc", ProtocolKind::Rpc));
    let addr = node.addr("rpc");
    let payload = "x".repeat(64);
    let loads = [
        Load {
            name: "echo_64B_32x16",
            service: "echo",
            data: json!({ "payload": payload }),
            expected: json!({ "payload": payload }),
            connections: 32,
            in_flight: 16,
        },
        Load {
            name: "compute_n100000_8x1",
            service: "compute",
            data: json!({ "n": 100_000 }),
            expected: json!({ "result": compute(100_000) }),
            connections: 8,
            in_flight: 1,
        },
    ];
    let mut g = c.benchmark_group("rpc");
    for load in &loads {
        let mut conns = node.run(connect(addr, load));
        // The reply every request gets: the same bytes each time (one id).
        let (request, reply) = node.run(first_call(&mut conns[0], load));
        let batch = (load.connections * load.in_flight) as u64;
        g.throughput(Throughput::Elements(batch));
        if load.service == "compute" {
            // 8 replies of about 0.3 ms of CPU each per iteration.
            g.sample_size(20).measurement_time(Duration::from_secs(8));
        }
        g.bench_function(load.name, |b| {
            b.iter_custom(|iters| {
                let per_conn = iters * load.in_flight as u64;
                node.run(async {
                    let t0 = Instant::now();
                    let runs = conns
                        .iter_mut()
                        .map(|conn| drive(conn, &request, &reply, per_conn, load.in_flight));
                    join_all(runs).await;
                    t0.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// The load's connections.
async fn connect(addr: std::net::SocketAddr, load: &Load) -> Vec<FrameConn> {
    let mut conns = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        conns.push(FrameConn::connect(addr).await.expect("connects"));
    }
    conns
}

/// Calls the service once and checks the reply's data: the request's
/// bytes and the reply's, which every later reply must equal.
async fn first_call(conn: &mut FrameConn, load: &Load) -> (Bytes, Bytes) {
    let request = Codec::Json
        .encode(&json!({ "id": 1, "service": load.service, "data": load.data }))
        .expect("encodes");
    conn.send_frame(request.clone()).await.expect("sends");
    let reply = conn.recv_frame().await.expect("receives").expect("a reply");
    let v: Value = Codec::Json.decode(&reply).expect("a JSON reply");
    assert_eq!(v["data"], load.expected, "{} replies {v}", load.service);
    (request, reply)
}

/// Sends `n` requests on `conn`, at most `window` unanswered, and reads
/// their replies; each must be `reply`.
async fn drive(conn: &mut FrameConn, request: &Bytes, reply: &Bytes, n: u64, window: usize) {
    let (mut sent, mut got) = (0u64, 0u64);
    while got < n {
        let room = (window as u64 - (sent - got)).min(n - sent);
        for _ in 0..room {
            conn.feed_frame(request.clone()).await.expect("sends");
        }
        if room > 0 {
            conn.flush().await.expect("sends");
            sent += room;
        }
        let body = conn
            .recv_frame()
            .await
            .expect("receives")
            .expect("the server keeps the connection");
        assert!(
            body == *reply,
            "unexpected reply {}",
            String::from_utf8_lossy(&body)
        );
        got += 1;
    }
}
