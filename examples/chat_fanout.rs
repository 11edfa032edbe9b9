//! Chat fan-out benchmark: one publisher, S subscribers on one channel,
//! 64-byte messages, on a node started in this process (rate limit off,
//! store in a temporary directory).
//!
//! ```sh
//! cargo run --release --example chat_fanout -- [subscribers=100] [messages=20000] [in_flight=256]
//! ```
//!
//! Prints the durable publish rate (each publish acknowledged after its
//! group commit), delivered pushes per second, the p50 / p99 delivery
//! latency (publish sent to push received) and pushes dropped by the
//! slow-subscriber policy. Generator and server share the process: for the
//! comparison with Redis (a separate server, `pubsub-load`'s flow control)
//! use `corral bench chat` against `corral serve` (`scripts/bench-chat.sh`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::client::{Client, Codec};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use serde_json::json;
use tokio::sync::Semaphore;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let subscribers = arg(1, 100);
    let messages = arg(2, 20_000);
    let in_flight = arg(3, 256).max(1);
    let dir = tempfile::tempdir()?;
    let mut config = Config::embedded_default();
    config.listeners = vec![ListenerConfig::new(
        "rpc",
        Transport::Tcp,
        ProtocolKind::Rpc,
        0,
    )];
    config.node.data_dir = dir.path().to_path_buf();
    config.chat.rate_per_second = 0.0;
    let node = Node::start(config).await?;
    let addr = node.local_addr("rpc").ok_or("no rpc listener")?;

    let publisher = Arc::new(Client::connect(addr, Codec::Json).await?);
    publisher.call("login", json!({"user": "pub"})).await?;
    publisher
        .call("channel", json!({"channel": "bench"}))
        .await?;

    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let last_rx_ns = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for _ in 0..subscribers {
        let c = Client::connect(addr, Codec::Json).await?;
        let mut pushes = c.pushes().ok_or("pushes taken")?;
        c.call("subscribe", json!({"topic": "bench"})).await?;
        let received = received.clone();
        let last = last_rx_ns.clone();
        subs.push((
            c,
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while let Some(p) = pushes.recv().await {
                    let now = start.elapsed().as_nanos() as u64;
                    let sent = p.data["message"]
                        .as_str()
                        .and_then(|m| m.split(' ').next())
                        .and_then(|t| t.parse::<u64>().ok());
                    if let Some(sent) = sent {
                        lat.push(now.saturating_sub(sent));
                    }
                    received.fetch_add(1, Ordering::Relaxed);
                    last.fetch_max(now, Ordering::Relaxed);
                }
                lat
            }),
        ));
    }

    let dropped_before = node.metrics().chat_pushes_dropped.get();
    let sem = Arc::new(Semaphore::new(in_flight));
    let t0 = Instant::now();
    let first_ns = start.elapsed().as_nanos() as u64;
    let mut tasks = Vec::with_capacity(messages);
    for _ in 0..messages {
        let permit = sem.clone().acquire_owned().await?;
        let p = publisher.clone();
        tasks.push(tokio::spawn(async move {
            let sent = start.elapsed().as_nanos() as u64;
            let mut text = format!("{sent} ");
            while text.len() < 64 {
                text.push('x');
            }
            let r = p
                .call("publish", json!({"channel": "bench", "message": text}))
                .await;
            drop(permit);
            r.is_ok()
        }));
    }
    let mut acked = 0usize;
    for t in tasks {
        if t.await.unwrap_or(false) {
            acked += 1;
        }
    }
    let publish_secs = t0.elapsed().as_secs_f64();
    // Let the queues drain: stop once nothing arrived for 500 ms.
    let mut seen = received.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = received.load(Ordering::Relaxed);
        if now == seen {
            break;
        }
        seen = now;
    }
    let dropped = node.metrics().chat_pushes_dropped.get() - dropped_before;
    let span = (last_rx_ns.load(Ordering::Relaxed).saturating_sub(first_ns)) as f64 / 1e9;
    let mut lat = Vec::new();
    for (c, h) in subs {
        drop(c);
        lat.extend(h.await.unwrap_or_default());
    }
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
        lat[i.min(lat.len() - 1)] as f64 / 1e3
    };
    println!(
        "chat.fanout{subscribers}.64B published={acked} publish_per_s={:.0} delivered={seen} \
         delivered_per_s={:.0} p50_us={:.1} p99_us={:.1} dropped={dropped} in_flight={in_flight}",
        acked as f64 / publish_secs,
        seen as f64 / span.max(1e-9),
        pct(0.50),
        pct(0.99),
    );
    node.shutdown().await;
    Ok(())
}
