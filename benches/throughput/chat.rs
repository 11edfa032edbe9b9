//! The `chat` group: fan-out, 1 publisher → 100 subscribers on one
//! channel, 64-byte messages, as `scripts/bench-chat.sh` runs `corral
//! bench chat`: the publisher pipelines its publishes (each acknowledged
//! after its group commit, so durable) at most 2000 ahead of the slowest
//! subscriber; a subscriber checks that each frame is a push on the
//! channel and counts it. An iteration is one publish, delivered to every
//! subscriber.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corral::client::{Codec, FrameConn, FrameSink, FrameStream};
use corral::config::ProtocolKind;
use criterion::{Criterion, Throughput};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{config, InProcess};

const SUBSCRIBERS: usize = 100;
/// Publishes the publisher may run ahead of the slowest subscriber.
const WINDOW: u64 = 2000;
/// Publishes written at once.
const BATCH: u64 = 256;
const CHANNEL: &str = "bench";
/// No delivery or acknowledgement for this long means one was lost: the
/// bench fails rather than waits forever.
const STALL: Duration = Duration::from_secs(30);

/// What the subscribers and the publisher's reader count.
struct Counts {
    delivered: Vec<AtomicU64>,
    acked: AtomicU64,
    /// A frame that is not what it should be, or a closed connection.
    failed: AtomicBool,
    progress: Notify,
}

impl Counts {
    fn slowest(&self) -> u64 {
        self.delivered
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    fn fail(&self, why: String) {
        eprintln!("chat bench: {why}");
        self.failed.store(true, Ordering::SeqCst);
        self.progress.notify_one();
    }
}

pub(crate) fn benches(c: &mut Criterion) {
    let node = InProcess::start(|dir| {
        let mut c = config(dir, "rpc", ProtocolKind::Rpc);
        c.chat.enabled = true;
        // As config/bench.toml: no rate limit, and room for the window's
        // publishes to share group commits.
        c.chat.rate_per_second = 0.0;
        c.rpc.max_in_flight = WINDOW as usize + BATCH as usize;
        c
    });
    let addr = node.addr("rpc");
    let message = "m".repeat(64);
    let publish = Codec::Json
        .encode(&json!({
            "id": 1,
            "service": "publish",
            "data": { "channel": CHANNEL, "message": message },
        }))
        .expect("encodes");
    let counts = Arc::new(Counts {
        delivered: (0..SUBSCRIBERS).map(|_| AtomicU64::new(0)).collect(),
        acked: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        progress: Notify::new(),
    });
    let mut publisher = node.run(async {
        let mut publisher = FrameConn::connect(addr).await.expect("connects");
        call(&mut publisher, "login", json!({ "user": "bench_pub" })).await;
        call(&mut publisher, "channel", json!({ "channel": CHANNEL })).await;
        for i in 0..SUBSCRIBERS {
            let mut sub = FrameConn::connect(addr).await.expect("connects");
            call(&mut sub, "subscribe", json!({ "topic": CHANNEL })).await;
            let (_, pushes) = sub.into_parts();
            tokio::spawn(subscriber(i, pushes, counts.clone(), message.clone()));
        }
        let (sink, acks) = publisher.into_parts();
        tokio::spawn(read_acks(acks, counts.clone()));
        sink
    });

    let mut g = c.benchmark_group("chat");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    g.sample_size(20);
    g.bench_function("fanout_1_to_100_64B", |b| {
        b.iter_custom(|iters| {
            node.run(publish_and_deliver(
                &mut publisher,
                &publish,
                &counts,
                iters,
            ))
        })
    });
    g.finish();
}

/// Calls `service` on a connection with nothing else in flight; the reply
/// must not be an error.
async fn call(conn: &mut FrameConn, service: &str, data: Value) {
    let reply = conn
        .request(
            Codec::Json,
            &json!({ "id": 0, "service": service, "data": data }),
        )
        .await
        .expect("a reply");
    assert!(reply.get("error").is_none(), "{service}: {reply}");
}

/// Publishes `n` messages, at most [`WINDOW`] ahead of the slowest
/// subscriber, and waits until every subscriber has them and every
/// publish is acknowledged; the time that took.
async fn publish_and_deliver(
    sink: &mut FrameSink,
    body: &Bytes,
    counts: &Counts,
    n: u64,
) -> Duration {
    let (base, acked_before) = (counts.slowest(), counts.acked.load(Ordering::Relaxed));
    let t0 = Instant::now();
    let mut published = 0;
    loop {
        let notified = counts.progress.notified();
        assert!(
            !counts.failed.load(Ordering::SeqCst),
            "a subscriber or the publisher failed"
        );
        let slowest = counts.slowest() - base;
        let acked = counts.acked.load(Ordering::Relaxed) - acked_before;
        if slowest >= n && acked >= n {
            return t0.elapsed();
        }
        let room = (slowest + WINDOW)
            .saturating_sub(published)
            .min(n - published)
            .min(BATCH);
        if room > 0 {
            for _ in 0..room {
                sink.feed(body.clone()).await.expect("publishes");
            }
            sink.flush().await.expect("publishes");
            published += room;
            continue;
        }
        if tokio::time::timeout(STALL, notified).await.is_err() {
            panic!(
                "no progress for {STALL:?}: {slowest} of {n} delivered to the slowest \
                 subscriber, {acked} acknowledged"
            );
        }
    }
}

/// Counts the publisher's acknowledgements; an error reply fails the bench.
async fn read_acks(mut acks: FrameStream, counts: Arc<Counts>) {
    while let Some(frame) = acks.next().await {
        match frame {
            Ok(body) if !body.windows(7).any(|w| w == b"\"error\"") => {
                counts.acked.fetch_add(1, Ordering::Relaxed);
                counts.progress.notify_one();
            }
            Ok(body) => return counts.fail(format!("publish: {}", String::from_utf8_lossy(&body))),
            Err(e) => return counts.fail(format!("publisher: {e}")),
        }
    }
}

/// Subscriber `i`: the first push is decoded and checked whole; every
/// later one must begin as it does (a push on the channel) and is counted.
async fn subscriber(i: usize, mut pushes: FrameStream, counts: Arc<Counts>, message: String) {
    let prefix = format!("{{\"topic\":\"{CHANNEL}\",");
    let mut checked = false;
    while let Some(frame) = pushes.next().await {
        let body = match frame {
            Ok(body) => body,
            Err(e) => return counts.fail(format!("subscriber {i}: {e}")),
        };
        if !checked {
            let push: Value = Codec::Json.decode(&body).unwrap_or_default();
            if push["topic"] != CHANNEL || push["data"]["message"] != message.as_str() {
                return counts.fail(format!("subscriber {i}: push {push}"));
            }
            checked = true;
        }
        if !body.starts_with(prefix.as_bytes()) {
            let text = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
            return counts.fail(format!("subscriber {i}: frame {text}"));
        }
        counts.delivered[i].fetch_add(1, Ordering::Relaxed);
        counts.progress.notify_one();
    }
    counts.fail(format!("subscriber {i}: connection closed"));
}
