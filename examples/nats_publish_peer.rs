//! The peer of `scripts/bench-cluster.sh`'s acknowledged-publish row: plain
//! JetStream publishers on async-nats (=0.33.0, default features off: the
//! client the cluster module uses), with no corral in between.
//!
//! ```sh
//! cargo run --release --example nats_publish_peer -- \
//!     --servers nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 \
//!     [--publishers 3] [--in-flight 1024] [--size 64] [--secs 5] \
//!     [--stream BENCH_PEER] [--replicas 3]
//! ```
//!
//! It creates (if missing) a stream shaped like corral's chat log (file
//! storage, `--replicas` copies, a 120 s duplicate window), then runs
//! `--publishers` publishers, each on its own connection to the server
//! `i mod n` of `--servers` (as the corral nodes each have theirs), each
//! with at most `--in-flight` publishes waiting for their JetStream ack,
//! every publish with its own `Nats-Msg-Id` (as corral's). After `--secs`
//! it stops publishing, waits for the acks still due and prints one JSON
//! object: `acked`, `acked_per_s` (all publishers, first publish to last
//! ack), `errors`, `first_error`. Exit code 2 when a publish failed.
//!
//! It is an example rather than part of the `corral` binary because it is a
//! peer, not a corral feature: it shares the crate's pinned dev-dependency
//! on async-nats and its lockfile, and builds with
//! `cargo build --release --example nats_publish_peer`.

use std::future::IntoFuture;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::Publish, stream};
use futures::stream::{FuturesUnordered, StreamExt};

/// What the command line asked for.
struct Args {
    servers: Vec<String>,
    publishers: usize,
    in_flight: usize,
    size: usize,
    secs: f64,
    stream: String,
    replicas: usize,
}

fn usage(why: &str) -> String {
    format!(
        "nats_publish_peer: {why}\nusage: nats_publish_peer --servers URL[,URL...] \
         [--publishers N] [--in-flight N] [--size BYTES] [--secs S] [--stream NAME] [--replicas N]"
    )
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        servers: Vec::new(),
        publishers: 3,
        in_flight: 1024,
        size: 64,
        secs: 5.0,
        stream: "BENCH_PEER".into(),
        replicas: 3,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| usage(&format!("{flag} needs a value")))?;
        let count = |v: &str| -> Result<usize, String> {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(usage(&format!("{flag}: {v:?} is not a positive integer"))),
            }
        };
        match flag.as_str() {
            "--servers" => {
                a.servers = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--publishers" => a.publishers = count(&value)?,
            "--in-flight" => a.in_flight = count(&value)?,
            "--size" => a.size = count(&value)?,
            "--replicas" => a.replicas = count(&value)?,
            "--secs" => match value.parse::<f64>() {
                Ok(s) if s > 0.0 && s.is_finite() => a.secs = s,
                _ => {
                    return Err(usage(&format!(
                        "--secs: {value:?} is not a positive number"
                    )))
                }
            },
            "--stream" => a.stream = value,
            _ => return Err(usage(&format!("unknown option {flag}"))),
        }
    }
    if a.servers.is_empty() {
        return Err(usage("--servers is required"));
    }
    Ok(a)
}

/// Counts shared by the publishers.
#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    errors: AtomicU64,
    last_ack_ns: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counts {
    fn error(&self, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// One publisher: its own connection, at most `in_flight` acks due.
async fn publisher(
    i: usize,
    client: async_nats::Client,
    args: Arc<Args>,
    subject: String,
    t0: Instant,
    counts: Arc<Counts>,
) {
    let js = jetstream::new(client);
    let payload = bytes::Bytes::from(vec![b'x'; args.size]);
    let stop = t0 + Duration::from_secs_f64(args.secs);
    let mut due = FuturesUnordered::new();
    let mut n: u64 = 0;
    loop {
        while due.len() < args.in_flight && Instant::now() < stop {
            let publish = Publish::build()
                .payload(payload.clone())
                .message_id(format!("peer.{i}.{n}"));
            n += 1;
            match js.send_publish(subject.clone(), publish).await {
                Ok(ack) => due.push(ack.into_future()),
                Err(e) => counts.error(e),
            }
        }
        match due.next().await {
            Some(Ok(_)) => {
                counts.acked.fetch_add(1, Ordering::Relaxed);
                counts
                    .last_ack_ns
                    .fetch_max(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            Some(Err(e)) => counts.error(e),
            None => break,
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, String> {
    let args = Arc::new(args);
    let subject = format!("bench.peer.{}", args.stream.to_lowercase());
    let mut clients = Vec::with_capacity(args.publishers);
    for i in 0..args.publishers {
        let url = &args.servers[i % args.servers.len()];
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(10))
            .connect(url.as_str())
            .await
            .map_err(|e| format!("nats_publish_peer: cannot connect to {url}: {e}"))?;
        clients.push(client);
    }
    let js = jetstream::new(clients[0].clone());
    js.get_or_create_stream(stream::Config {
        name: args.stream.clone(),
        subjects: vec![subject.clone()],
        storage: stream::StorageType::File,
        num_replicas: args.replicas,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("nats_publish_peer: stream {}: {e}", args.stream))?;

    let counts = Arc::new(Counts::default());
    let t0 = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(publisher(
                i,
                c,
                args.clone(),
                subject.clone(),
                t0,
                counts.clone(),
            ))
        })
        .collect();
    for t in tasks {
        if let Err(e) = t.await {
            counts.error(format!("a publisher failed: {e}"));
        }
    }
    let acked = counts.acked.load(Ordering::Relaxed);
    let errors = counts.errors.load(Ordering::Relaxed);
    let secs = counts.last_ack_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let rate = if secs > 0.0 { acked as f64 / secs } else { 0.0 };
    let first_error = counts
        .first_error
        .lock()
        .ok()
        .and_then(|f| f.clone())
        .map_or("null".to_string(), |e| format!("{e:?}"));
    println!(
        "{{\"publishers\":{},\"in_flight\":{},\"size\":{},\"acked\":{acked},\
         \"elapsed_s\":{secs:.3},\"acked_per_s\":{rate:.1},\"errors\":{errors},\
         \"first_error\":{first_error}}}",
        args.publishers, args.in_flight, args.size
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nats_publish_peer: no runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
