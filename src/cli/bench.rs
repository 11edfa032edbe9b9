//! `corral bench rpc`: a closed-loop, pipelined load generator for the RPC
//! service.
//!
//! Each connection keeps up to `--in-flight` requests outstanding and sends a
//! new one as soon as a reply arrives; replies may come out of order and are
//! matched by `id`. Latency is measured from queueing a request on the socket
//! to decoding its reply (closed loop, so subject to coordinated omission).
//! Every reply is checked: echo must return the payload, compute the value
//! computed locally; error replies and mismatches count as errors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use corral::client::Codec;
use futures::FutureExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

use super::call::{parse_codec, parse_transport};

pub(crate) mod chat;
mod csv;
mod hgrm;
pub(crate) mod idle;

const MOD: u64 = 1_000_000_007;
/// Highest latency the histogram records: 120 s, in nanoseconds.
const MAX_LATENCY_NS: u64 = 120_000_000_000;

/// The service the bench calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchCmd {
    /// `echo` with `{"payload": "<size bytes>"}`.
    Echo,
    /// `compute` with `{"n": size}`.
    Compute,
}

impl BenchShape {
    fn name(self) -> &'static str {
        match self {
            BenchShape::Native => "native",
            BenchShape::Threadcenter => "threadcenter",
        }
    }
}

impl BenchCmd {
    fn service(self) -> &'static str {
        match self {
            BenchCmd::Echo => "echo",
            BenchCmd::Compute => "compute",
        }
    }
}

/// The request shape the bench sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchShape {
    /// corral's own: `{"id", "service", "data": {...}}`.
    Native,
    /// ThreadCenter's: `{"id": "<s>", "cmd", <arguments at top level>}`
    /// (what the peers in ../shared/peers speak).
    Threadcenter,
}

/// Arguments of `corral bench rpc`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchRpcArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub addr: String,
    /// Transport: tcp (length-prefixed frames), sctp (one message per body),
    /// tls (frames over TLS; see --tls-ca) or zmq (ZeroMQ DEALERs, to a
    /// `zmq_router` endpoint).
    #[arg(long, default_value = "tcp", value_parser = parse_transport)]
    pub transport: super::tls::ClientTransport,
    #[command(flatten)]
    pub tls: super::tls::TlsArgs,
    /// Number of connections.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Total requests, split evenly over the connections.
    #[arg(long, default_value_t = 200_000)]
    pub requests: u64,
    /// Payload bytes for echo, or n for compute.
    #[arg(long, default_value_t = 64)]
    pub size: u64,
    /// The service to call.
    #[arg(long, value_enum, default_value = "echo")]
    pub cmd: BenchCmd,
    /// Body encoding (json or msgpack).
    #[arg(long, default_value = "json", value_parser = parse_codec)]
    pub codec: Codec,
    /// Request shape: corral's native envelope, or ThreadCenter's.
    #[arg(long, value_enum, default_value = "native")]
    pub shape: BenchShape,
    /// Requests outstanding per connection (pipelining).
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// Stop sending after this many seconds even if --requests is not reached.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Unmeasured sequential requests per connection before the run.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Load-generator threads (1 = a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print one JSON object on stdout instead of the summary (no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Also append the run's results to FILE as one CSV row (a header
    /// first when FILE is new or empty): time, target, service, load,
    /// requests, errors, throughput and latency percentiles in µs.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<std::path::PathBuf>,
    /// Also write the run's whole latency distribution to FILE (replaced)
    /// as HdrHistogram's percentile distribution text (.hgrm), in ms, the
    /// format HdrHistogram's plotter reads.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<std::path::PathBuf>,
}

/// `sum of i*i mod 1_000_000_007 for i in 0..n`, as the server computes it.
pub(crate) fn compute(n: u64) -> u64 {
    let mut acc: u64 = 0;
    for i in 0..n {
        acc = (acc + (i % MOD) * (i % MOD) % MOD) % MOD;
    }
    acc
}

#[derive(Serialize)]
struct EchoData<'a> {
    payload: &'a str,
}

#[derive(Serialize)]
struct ComputeData {
    n: u64,
}

#[derive(Serialize)]
struct Req<'a, D> {
    id: u64,
    service: &'a str,
    data: D,
}

/// A ThreadCenter-shaped request: `cmd`, a string id, arguments at top level.
#[derive(Serialize)]
struct TcEcho<'a> {
    id: &'a str,
    cmd: &'static str,
    payload: &'a str,
}

#[derive(Serialize)]
struct TcCompute<'a> {
    id: &'a str,
    cmd: &'static str,
    n: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Id<'a> {
    Num(u64),
    #[serde(borrow)]
    Str(Cow<'a, str>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Data<'a> {
    Num(u64),
    Result {
        result: u64,
    },
    Payload {
        #[serde(borrow)]
        payload: Cow<'a, str>,
    },
    #[serde(borrow)]
    Str(Cow<'a, str>),
    /// Anything else, e.g. the seeds' `data` beside an error
    /// (`{"status": "erro", "description": ...}`): read, not matched.
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct ErrBody<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Resp<'a> {
    #[serde(borrow)]
    id: Option<Id<'a>>,
    #[serde(borrow, default)]
    data: Option<Data<'a>>,
    #[serde(borrow, default)]
    result: Option<Data<'a>>,
    #[serde(borrow, default)]
    error: Option<ErrBody<'a>>,
}

/// What one run sends and expects back.
struct Job {
    codec: Codec,
    shape: BenchShape,
    cmd: BenchCmd,
    payload: String,
    n: u64,
    expected: u64,
}

impl Job {
    fn encode(&self, id: u64) -> anyhow::Result<Bytes> {
        let service = self.cmd.service();
        if self.shape == BenchShape::Threadcenter {
            let id = id.to_string();
            let body = match self.cmd {
                BenchCmd::Echo => self.codec.encode(&TcEcho {
                    id: &id,
                    cmd: service,
                    payload: &self.payload,
                }),
                BenchCmd::Compute => self.codec.encode(&TcCompute {
                    id: &id,
                    cmd: service,
                    n: self.n,
                }),
            };
            return Ok(body?);
        }
        let body = match self.cmd {
            BenchCmd::Echo => self.codec.encode(&Req {
                id,
                service,
                data: EchoData {
                    payload: &self.payload,
                },
            }),
            BenchCmd::Compute => self.codec.encode(&Req {
                id,
                service,
                data: ComputeData { n: self.n },
            }),
        };
        Ok(body?)
    }

    /// The reply's id, and whether it is the right answer.
    fn check(&self, body: &[u8]) -> (Option<u64>, Result<(), String>) {
        let r: Resp<'_> = match self.codec {
            Codec::Json => match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return (None, Err(format!("undecodable reply: {e}"))),
            },
            Codec::MsgPack => match rmp_serde::from_slice(body) {
                Ok(r) => r,
                Err(e) => return (None, Err(format!("undecodable reply: {e}"))),
            },
        };
        let id = match r.id {
            Some(Id::Num(n)) => Some(n),
            Some(Id::Str(s)) => s.parse().ok(),
            None => None,
        };
        if let Some(e) = r.error {
            return (id, Err(format!("error reply {}: {}", e.code, e.message)));
        }
        let ok = match (self.cmd, r.data.or(r.result)) {
            (BenchCmd::Echo, Some(Data::Payload { payload })) => payload == self.payload,
            (BenchCmd::Echo, Some(Data::Str(s))) => s == self.payload,
            (BenchCmd::Compute, Some(Data::Result { result })) => result == self.expected,
            (BenchCmd::Compute, Some(Data::Num(v))) => v == self.expected,
            _ => false,
        };
        if ok {
            (id, Ok(()))
        } else {
            (id, Err("unexpected reply data".into()))
        }
    }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).context("histogram bounds")
}

struct ConnResult {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

struct ConnPlan {
    addr: String,
    connector: Arc<super::tls::Connector>,
    quota: u64,
    warmup: u64,
    in_flight: usize,
    job: Arc<Job>,
    barrier: Arc<Barrier>,
    done: Arc<AtomicU64>,
    deadline_after: Option<Duration>,
}

async fn run_conn(plan: ConnPlan) -> anyhow::Result<ConnResult> {
    let mut res = ConnResult {
        hist: new_histogram()?,
        ok: 0,
        errors: 0,
        first_error: None,
    };
    let mut conn = match plan.connector.frames(plan.addr.as_str()).await {
        Ok(c) => c,
        Err(e) => {
            plan.barrier.wait().await;
            res.errors = plan.quota;
            plan.done.fetch_add(plan.quota, Ordering::Relaxed);
            res.first_error = Some(format!("connect to {}: {e}", plan.addr));
            return Ok(res);
        }
    };
    let job = &plan.job;

    // Warm-up: sequential, unmeasured, ids above the measured range.
    for w in 0..plan.warmup {
        let id = u64::MAX - w;
        if conn.send_frame(job.encode(id)?).await.is_err() {
            break;
        }
        if !matches!(conn.recv_frame().await, Ok(Some(_))) {
            break;
        }
    }
    plan.barrier.wait().await;
    let deadline = plan.deadline_after.map(|d| Instant::now() + d);

    let mut pending: HashMap<u64, Instant> = HashMap::with_capacity(plan.in_flight * 2);
    let mut sent: u64 = 0;
    let fail = |res: &mut ConnResult, n: u64, e: String| {
        res.errors += n;
        plan.done.fetch_add(n, Ordering::Relaxed);
        res.first_error.get_or_insert(e);
    };
    loop {
        let mut queued = false;
        while sent < plan.quota
            && pending.len() < plan.in_flight
            && deadline.is_none_or(|d| Instant::now() < d)
        {
            let frame = job.encode(sent)?;
            pending.insert(sent, Instant::now());
            if let Err(e) = conn.feed_frame(frame).await {
                fail(&mut res, pending.len() as u64, format!("send: {e}"));
                return Ok(res);
            }
            sent += 1;
            queued = true;
        }
        if queued {
            if let Err(e) = conn.flush().await {
                fail(&mut res, pending.len() as u64, format!("send: {e}"));
                return Ok(res);
            }
        }
        if pending.is_empty() {
            break;
        }
        // The first reply waited for, then every one already here before
        // refilling: the new requests go out together, in one flush.
        let mut next = Some(conn.recv_frame().await);
        while let Some(received) = next {
            let body = match received {
                Ok(Some(body)) => body,
                Ok(None) => {
                    fail(
                        &mut res,
                        pending.len() as u64,
                        "connection closed by server".into(),
                    );
                    return Ok(res);
                }
                Err(e) => {
                    fail(&mut res, pending.len() as u64, format!("receive: {e}"));
                    return Ok(res);
                }
            };
            let now = Instant::now();
            let (id, verdict) = job.check(&body);
            // Free the request's slot: by id, or (reply without a usable id) any one,
            // so that the loop cannot wait forever.
            let slot = match id.and_then(|id| pending.remove(&id)) {
                Some(t0) => Some(t0),
                None => {
                    let any = pending.keys().next().copied();
                    any.and_then(|k| pending.remove(&k));
                    None
                }
            };
            match (slot, verdict) {
                (Some(t0), Ok(())) => {
                    let ns = u64::try_from(now.duration_since(t0).as_nanos()).unwrap_or(u64::MAX);
                    let _ = res.hist.record(ns.clamp(1, MAX_LATENCY_NS));
                    res.ok += 1;
                    plan.done.fetch_add(1, Ordering::Relaxed);
                }
                (None, Ok(())) => fail(&mut res, 1, format!("reply to unknown id {id:?}")),
                (_, Err(e)) => fail(&mut res, 1, e),
            }
            // Receiving is cancel-safe: a reply not here yet stays queued.
            next = if pending.is_empty() {
                None
            } else {
                conn.recv_frame().now_or_never()
            };
        }
    }
    Ok(res)
}

/// The outcome of a run, as printed with `--json`.
#[derive(Debug, Serialize)]
struct Summary {
    addr: String,
    transport: String,
    cmd: &'static str,
    codec: &'static str,
    shape: &'static str,
    size: u64,
    connections: usize,
    in_flight: usize,
    threads: usize,
    requests: u64,
    ok: u64,
    errors: u64,
    elapsed_s: f64,
    rps: f64,
    latency_us: Latency,
    first_error: Option<String>,
}

/// Latency figures in µs, from a histogram of nanoseconds.
#[derive(Debug, Serialize)]
struct Latency {
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    fn of(hist: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            mean: hist.mean() / 1000.0,
            p50: us(hist.value_at_quantile(0.5)),
            p90: us(hist.value_at_quantile(0.9)),
            p99: us(hist.value_at_quantile(0.99)),
            p999: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
        }
    }

    /// The CSV fields `mean_us`, `p50_us`, `p90_us`, `p99_us`, `p999_us`,
    /// `max_us`.
    fn fields(&self) -> [String; 6] {
        [self.mean, self.p50, self.p90, self.p99, self.p999, self.max].map(|v| format!("{v:.1}"))
    }
}

/// The load generator's runtime: current-thread for 1 thread (as `wrk -t1`),
/// multi-threaded otherwise.
fn generator_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    })
}

/// Runs `corral bench rpc` on a runtime of `--threads` threads. Exit code 0
/// when every request succeeded, 2 when some failed.
pub(crate) fn run(args: BenchRpcArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.in_flight > 0, "--in-flight must be at least 1");
    anyhow::ensure!(args.threads > 0, "--threads must be at least 1");
    if let Some(d) = args.duration {
        anyhow::ensure!(d > 0.0 && d.is_finite(), "--duration must be positive");
    }
    // Before the run: an unwritable file fails now, not after the load.
    let mut csv = args
        .csv
        .as_deref()
        .map(csv::CsvFile::<Summary>::open)
        .transpose()?;
    let hgrm = args.hgrm.as_deref().map(hgrm::HgrmFile::open).transpose()?;
    let started_at = csv::rfc3339(time::OffsetDateTime::now_utc());
    let runtime = generator_runtime(args.threads)?;
    let (summary, hist) = runtime.block_on(bench(&args))?;
    if let Some(csv) = &mut csv {
        csv.append(&summary, &started_at)?;
    }
    if let Some(hgrm) = hgrm {
        hgrm.write(&hist)?;
    }
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string(&summary)?));
    } else {
        print_summary(&summary);
    }
    Ok(if summary.errors > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs the load; the summary and the latency histogram (ns).
async fn bench(args: &BenchRpcArgs) -> anyhow::Result<(Summary, Histogram<u64>)> {
    let size = usize::try_from(args.size).context("--size too large")?;
    let job = Arc::new(Job {
        shape: args.shape,
        codec: args.codec,
        cmd: args.cmd,
        payload: match args.cmd {
            BenchCmd::Echo => "x".repeat(size),
            BenchCmd::Compute => String::new(),
        },
        n: args.size,
        expected: match args.cmd {
            BenchCmd::Echo => 0,
            BenchCmd::Compute => compute(args.size),
        },
    });
    let connector = Arc::new(args.tls.connector(args.transport)?);
    let conns = args.concurrency;
    let barrier = Arc::new(Barrier::new(conns + 1));
    let done = Arc::new(AtomicU64::new(0));
    let per = args.requests / conns as u64;
    let extra = args.requests % conns as u64;
    let deadline_after = args.duration.map(Duration::from_secs_f64);
    let mut tasks = Vec::with_capacity(conns);
    for c in 0..conns {
        let quota = per + u64::from((c as u64) < extra);
        tasks.push(tokio::spawn(run_conn(ConnPlan {
            addr: args.addr.clone(),
            connector: connector.clone(),
            quota,
            warmup: args.warmup,
            in_flight: args.in_flight,
            job: job.clone(),
            barrier: barrier.clone(),
            done: done.clone(),
            deadline_after,
        })));
    }

    let bar = if args.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(
            Some(args.requests),
            ProgressDrawTarget::stderr_with_hz(10),
        );
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar
    };
    bar.set_message("warming up");
    barrier.wait().await;
    let t0 = Instant::now();
    let ticker = {
        let bar = bar.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                bar.set_position(done.load(Ordering::Relaxed));
            }
        })
    };

    let mut hist = new_histogram()?;
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut first_error = None;
    for task in tasks {
        let r = task.await.context("a connection task failed")??;
        hist.add(&r.hist).context("merging histograms")?;
        ok += r.ok;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();

    let summary = Summary {
        addr: args.addr.clone(),
        transport: connector.name().to_string(),
        cmd: args.cmd.service(),
        codec: args.codec.name(),
        shape: args.shape.name(),
        size: args.size,
        connections: conns,
        in_flight: args.in_flight,
        threads: args.threads,
        requests: args.requests,
        ok,
        errors,
        elapsed_s: elapsed,
        rps: if elapsed > 0.0 {
            ok as f64 / elapsed
        } else {
            0.0
        },
        latency_us: Latency::of(&hist),
        first_error,
    };
    Ok((summary, hist))
}

impl csv::Row for Summary {
    const HEADER: &'static [&'static str] = &[
        "timestamp_utc",
        "addr",
        "transport",
        "service",
        "codec",
        "shape",
        "size",
        "connections",
        "in_flight",
        "threads",
        "duration_s",
        "requests",
        "ok",
        "errors",
        "throughput_rps",
        "mean_us",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "max_us",
        "first_error",
    ];

    fn fields(&self, timestamp: &str) -> Vec<String> {
        let mut row = vec![
            timestamp.to_string(),
            self.addr.clone(),
            self.transport.clone(),
            self.cmd.to_string(),
            self.codec.to_string(),
            self.shape.to_string(),
            self.size.to_string(),
            self.connections.to_string(),
            self.in_flight.to_string(),
            self.threads.to_string(),
            format!("{:.3}", self.elapsed_s),
            (self.ok + self.errors).to_string(),
            self.ok.to_string(),
            self.errors.to_string(),
            format!("{:.1}", self.rps),
        ];
        row.extend(self.latency_us.fields());
        row.push(self.first_error.clone().unwrap_or_default());
        row
    }
}

fn print_summary(s: &Summary) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bench rpc {} size={} codec={} connections={} in-flight={} threads={} addr={} transport={}",
        s.cmd, s.size, s.codec, s.connections, s.in_flight, s.threads, s.addr, s.transport
    );
    let _ = writeln!(
        out,
        "  requests   {} ok, {} errors in {:.3} s",
        s.ok, s.errors, s.elapsed_s
    );
    let _ = writeln!(out, "  throughput {:.0} req/s", s.rps);
    let _ = writeln!(
        out,
        "  latency    p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  p999 {:.1} µs  max {:.1} µs  (mean {:.1} µs)",
        s.latency_us.p50,
        s.latency_us.p90,
        s.latency_us.p99,
        s.latency_us.p999,
        s.latency_us.max,
        s.latency_us.mean
    );
    if let Some(e) = &s.first_error {
        let _ = writeln!(out, "  first error: {e}");
    }
    super::print_stdout(&out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_matches_reference() {
        let reference = |n: u64| {
            let mut acc: u64 = 0;
            for i in 0..n {
                acc = (acc + (i * i) % MOD) % MOD;
            }
            acc
        };
        for n in [0, 1, 2, 10, 1000, 100_000] {
            assert_eq!(compute(n), reference(n));
        }
    }

    #[test]
    fn a_run_is_one_csv_row_under_the_header() {
        use csv::Row;
        let summary = Summary {
            addr: "127.0.0.1:7070".into(),
            transport: "tcp".into(),
            cmd: "echo",
            codec: "json",
            shape: "native",
            size: 64,
            connections: 2,
            in_flight: 4,
            threads: 1,
            requests: 10,
            ok: 9,
            errors: 1,
            elapsed_s: 0.5,
            rps: 18.0,
            latency_us: Latency {
                mean: 2.0,
                p50: 1.0,
                p90: 2.5,
                p99: 3.0,
                p999: 4.0,
                max: 5.0,
            },
            first_error: Some("error reply X: a, \"b\"".into()),
        };
        let fields = summary.fields("2024-02-29T23:59:58Z");
        assert_eq!(fields.len(), <Summary as Row>::HEADER.len());
        assert_eq!(
            fields.join("|"),
            "2024-02-29T23:59:58Z|127.0.0.1:7070|tcp|echo|json|native|64|2|4|1|0.500|10|9|1|\
             18.0|2.0|1.0|2.5|3.0|4.0|5.0|error reply X: a, \"b\""
        );
    }

    #[test]
    fn checks_replies() {
        let job = Job {
            shape: BenchShape::Native,
            codec: Codec::Json,
            cmd: BenchCmd::Echo,
            payload: "xx".into(),
            n: 0,
            expected: 0,
        };
        let (id, v) = job.check(br#"{"id":3,"service":"echo","data":{"payload":"xx"}}"#);
        assert_eq!(id, Some(3));
        assert!(v.is_ok());
        let (_, v) = job.check(br#"{"id":3,"service":"echo","data":{"payload":"xy"}}"#);
        assert!(v.is_err());
        let (id, v) =
            job.check(br#"{"id":"4","service":"echo","error":{"code":"X","message":"m"}}"#);
        assert_eq!(id, Some(4));
        assert!(v.is_err());
        // An error reply as the node sends it: the seeds' data beside it.
        let (id, v) = job.check(
            br#"{"id":5,"service":"echo","data":{"status":"erro","description":"m"},"error":{"code":"X","message":"m"}}"#,
        );
        assert_eq!(id, Some(5));
        assert_eq!(v, Err("error reply X: m".to_owned()));
        let compute_job = Job {
            shape: BenchShape::Native,
            codec: Codec::MsgPack,
            cmd: BenchCmd::Compute,
            payload: String::new(),
            n: 10,
            expected: compute(10),
        };
        for data in [
            serde_json::json!({"result": compute(10)}),
            serde_json::json!(compute(10)),
        ] {
            let body = rmp_serde::to_vec_named(&serde_json::json!({"id": 1, "data": data}))
                .expect("encode");
            let (id, v) = compute_job.check(&body);
            assert_eq!(id, Some(1));
            assert!(v.is_ok());
        }
    }
}
