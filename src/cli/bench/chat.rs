//! `corral bench chat`: pub/sub fan-out through the chat services.
//!
//! The same experiment as `pubsub-load` in ../shared/peers (which measures
//! Redis and NATS): N subscriber connections `subscribe` to one channel, then
//! one publisher connection logs in and pipelines `publish` requests in
//! batches of at most `--batch`, never more than `--window` messages ahead of
//! the slowest subscriber. Every publish is durable: the node acknowledges it
//! after its group commit and pushes it to the subscribers after the commit.
//!
//! Each message carries the time it was sent (`@@` and 20 digits of
//! nanoseconds since the start, padded to `--size` bytes), so every delivered
//! push gives a delivery latency: publish written → push received, which
//! includes the commit. Subscribers read their sockets in large chunks and
//! check each frame cheaply instead of decoding it (its length prefix and
//! that it begins as a push on the channel), as `pubsub-load` does with
//! RESP, so that the generator costs little CPU; one push in 16 is timed
//! (the clock is read once per chunk read).
//!
//! Results: delivered pushes per second (all subscribers, first publish → last
//! delivery), acknowledged publishes per second (the durable publish rate),
//! the p50 / p99 delivery latency, and `missing` (published × subscribers −
//! delivered: pushes dropped by the slow-subscriber policy, or lost). With
//! `--subscribers 0` the window applies to acknowledgements instead, which
//! measures the durable publish rate alone.
//!
//! Several nodes (`--addr` repeated or comma-separated; a cluster): the
//! subscribers are spread over them round robin (subscriber `i` on address
//! `i mod n`), so a publication crosses nodes to reach most of them, and
//! the publisher is on the first address that accepts it. Then the run
//! survives the loss of a node: every publish carries a `client_id` (unique
//! to the run), the publisher keeps what is not acknowledged yet, and when
//! its connection is lost it moves to the next node, logs in again and
//! sends those again with their ids (the nodes' dedupe stores each once); a
//! publish answered UNAVAILABLE is sent again after a backoff. A subscriber
//! that loses its node subscribes on the next; pushes sent meanwhile are
//! `missing`. The window then follows the acknowledgements (a subscriber
//! that missed pushes never catches up), and the results add the failovers
//! and the longest time without an acknowledgement (`max_ack_gap_ms`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, Bytes, BytesMut};
use clap::Args;
use corral::client::{Codec, FrameConn, FrameSink, FrameStream};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, Notify};
use tokio_util::sync::CancellationToken;

use super::csv::{self, CsvFile};
use super::hgrm::HgrmFile;
use super::{generator_runtime, new_histogram, Latency, MAX_LATENCY_NS};
use crate::cli::call::parse_codec;

/// The marker in front of the send time in each message.
const MARK: &[u8] = b"@@";
/// Digits of the send time.
const DIGITS: usize = 20;
/// One delivered push in this many gives a latency (all are checked).
const LATENCY_SAMPLE: u64 = 16;
/// Bytes a subscriber asks the socket for at a time.
const READ_CHUNK: usize = 128 * 1024;
/// Times a subscriber asks again when its node does not know the channel
/// yet (a cluster node that has not applied its creation), 100 ms apart.
const SUBSCRIBE_ATTEMPTS: u32 = 50;
/// How long to wait for the last deliveries and acknowledgements.
const SETTLE: Duration = Duration::from_secs(10);
/// Passes over the address list before a lost node is given up for good.
const FAILOVER_ROUNDS: u32 = 5;
/// The first backoff between passes (and before publishes answered
/// UNAVAILABLE are sent again); it doubles up to `MAX_BACKOFF`.
const BACKOFF: Duration = Duration::from_millis(100);
/// The longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Arguments of `corral bench chat`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchChatArgs {
    /// Server address (an RPC listener with the chat services); several
    /// nodes as a comma-separated list or by repeating --addr: subscribers
    /// are spread over them, the publisher is on the first that answers.
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "HOST:PORT[,...]")]
    pub addr: Vec<String>,
    /// Subscriber connections.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Message bytes (at least 22: the send time is in it).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Messages to publish (stops earlier after --duration).
    #[arg(long, default_value_t = 100_000_000)]
    pub messages: u64,
    /// Stop publishing after this many seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub duration: f64,
    /// Messages the publisher may run ahead of the slowest subscriber (of
    /// the acknowledgements, with no subscribers).
    #[arg(long, default_value_t = 2000)]
    pub window: u64,
    /// Most publishes written at once.
    #[arg(long, default_value_t = 256)]
    pub batch: u64,
    /// The channel (created if missing).
    #[arg(long, default_value = "bench")]
    pub channel: String,
    /// The publisher's user name.
    #[arg(long, default_value = "bench_pub")]
    pub user: String,
    /// Body encoding (json or msgpack), for every connection.
    #[arg(long, default_value = "json", value_parser = parse_codec)]
    pub codec: Codec,
    /// Load-generator threads (1 = a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Subscribers are ZeroMQ SUB peers of this `zmq_xpub` endpoint (the
    /// seeds' proxy port) instead of RPC connections; the publisher stays
    /// on --addr.
    #[arg(long, value_name = "HOST:PORT")]
    pub sub_zmq: Option<String>,
    /// Also append the run's results to FILE as one CSV row (a header
    /// first when FILE is new or empty): time, settings, counts, rates and
    /// delivery latency percentiles in µs.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Also write the run's whole delivery latency distribution to FILE
    /// (replaced) as HdrHistogram's percentile distribution text (.hgrm),
    /// in ms, the format HdrHistogram's plotter reads.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
}

/// State shared by the publisher and the subscribers.
struct Shared {
    t0: Instant,
    counts: Vec<AtomicU64>,
    progress: Notify,
    cancel: CancellationToken,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    last_delivery_ns: AtomicU64,
    /// Connections (publisher's or subscribers') moved to another node.
    failovers: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn min_count(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    fn fail(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(e);
        }
        self.progress.notify_waiters();
    }
}

/// The outcome of a run, as printed with `--json`.
#[derive(Debug, Serialize)]
struct Summary {
    addr: String,
    /// The `zmq_xpub` endpoint the subscribers are on, if not --addr.
    sub_zmq: Option<String>,
    codec: &'static str,
    subscribers: usize,
    size: usize,
    window: u64,
    batch: u64,
    threads: usize,
    published: u64,
    acked: u64,
    delivered: u64,
    missing: u64,
    errors: u64,
    elapsed_s: f64,
    delivered_per_s: f64,
    published_per_s: f64,
    acked_per_s: f64,
    latency_us: Latency,
    /// Times a connection moved to another node (several addresses only).
    failovers: u64,
    /// The longest time between two acknowledgements, in ms.
    max_ack_gap_ms: f64,
    first_error: Option<String>,
}

/// Runs `corral bench chat`. Exit code 0 when every publish was acknowledged
/// and every push delivered, 2 otherwise.
pub(crate) fn run(args: BenchChatArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.threads > 0, "--threads must be at least 1");
    anyhow::ensure!(args.window > 0, "--window must be at least 1");
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(
        args.size >= MARK.len() + DIGITS,
        "--size must be at least {}",
        MARK.len() + DIGITS
    );
    anyhow::ensure!(
        args.duration > 0.0 && args.duration.is_finite(),
        "--duration must be positive"
    );
    let addrs = corral::client::parse_addrs(&args.addr).context("bad --addr")?;
    // Before the run: an unwritable file fails now, not after the load.
    let mut csv = args
        .csv
        .as_deref()
        .map(CsvFile::<Summary>::open)
        .transpose()?;
    let hgrm = args.hgrm.as_deref().map(HgrmFile::open).transpose()?;
    let started_at = csv::rfc3339(time::OffsetDateTime::now_utc());
    let runtime = generator_runtime(args.threads)?;
    let (summary, hist) = runtime.block_on(bench(&args, addrs))?;
    if let Some(csv) = &mut csv {
        csv.append(&summary, &started_at)?;
    }
    if let Some(hgrm) = hgrm {
        hgrm.write(&hist)?;
    }
    if args.json {
        super::super::print_stdout(&format!("{}\n", serde_json::to_string(&summary)?));
    } else {
        print_summary(&summary);
    }
    Ok(if summary.errors > 0 || summary.missing > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// One request, as the client library would send it.
fn request(codec: Codec, id: u64, service: &str, data: Value) -> anyhow::Result<Bytes> {
    Ok(codec.encode(&json!({"id": id, "service": service, "data": data}))?)
}

/// Sends a request and returns the reply's `data`, or its error as a failure.
async fn call(
    conn: &mut FrameConn,
    codec: Codec,
    service: &str,
    data: Value,
) -> anyhow::Result<Value> {
    conn.send_frame(request(codec, 0, service, data)?).await?;
    let body = conn
        .recv_frame()
        .await?
        .context("connection closed by the server")?;
    let mut reply: Value = codec.decode(&body)?;
    if let Some(e) = reply.get("error") {
        bail!("{service}: {e}");
    }
    Ok(reply
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Null))
}

/// The send time carried by a push body, if it has one. The marker may
/// overlap an encoding's own bytes (a MessagePack string of 64 bytes has
/// the length byte `@`), so the first match followed by digits counts.
fn send_time(body: &[u8]) -> Option<u64> {
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(body.get(from..)?, MARK) {
        let start = from + i + MARK.len();
        let parsed = body.get(start..start + DIGITS).and_then(|digits| {
            digits.iter().try_fold(0u64, |acc, d| {
                d.is_ascii_digit()
                    .then(|| acc.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
            })
        });
        if parsed.is_some() {
            return parsed;
        }
        from += i + 1;
    }
    None
}

/// How a push on `channel` begins in `codec`: `{"topic":"<channel>",` or
/// its MessagePack form (a map of two, the key "topic", the channel).
fn push_prefix(codec: Codec, channel: &str) -> anyhow::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Probe<'a> {
        topic: &'a str,
        data: (),
    }
    let probe = codec.encode(&Probe {
        topic: channel,
        data: (),
    })?;
    let data_key = match codec {
        Codec::Json => &b"\"data\""[..],
        Codec::MsgPack => &b"\xa4data"[..],
    };
    let at = memchr::memmem::find(&probe, data_key).context("push prefix")?;
    Ok(probe[..at].to_vec())
}

/// Whether a reply body is an error reply (checked without decoding it).
fn is_error_reply(codec: Codec, body: &[u8]) -> bool {
    match codec {
        Codec::Json => memchr::memmem::find(body, b"\"error\"").is_some(),
        // "error" as a MessagePack fixstr key.
        Codec::MsgPack => memchr::memmem::find(body, b"\xa5error").is_some(),
    }
}

/// Largest frame a subscriber accepts.
const MAX_FRAME: usize = 16 << 20;

/// The first complete frame at `buf[*pos..]`: its body, `pos` moved past it.
fn next_frame<'a>(buf: &'a [u8], pos: &mut usize) -> anyhow::Result<Option<&'a [u8]>> {
    let rest = &buf[*pos..];
    let Some(head) = rest.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    anyhow::ensure!(len <= MAX_FRAME, "frame of {len} bytes");
    let Some(body) = rest.get(4..4 + len) else {
        return Ok(None);
    };
    *pos += 4 + len;
    Ok(Some(body))
}

/// The body of the first complete ZeroMQ message `[topic, body]` at
/// `buf[*pos..]`, `pos` moved past it; the topic must be `channel`.
fn next_zmq_message<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    channel: &[u8],
) -> anyhow::Result<Option<&'a [u8]>> {
    let mut at = *pos;
    let mut parts = [&[][..]; 2];
    for (n, part) in parts.iter_mut().enumerate() {
        let Some(&flags) = buf.get(at) else {
            return Ok(None);
        };
        anyhow::ensure!(flags & 0x04 == 0, "a ZMTP command among the publications");
        let (head, len) = if flags & 0x02 != 0 {
            let Some(size) = buf.get(at + 1..at + 9) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(size);
            (9, u64::from_be_bytes(b) as usize)
        } else {
            let Some(&size) = buf.get(at + 1) else {
                return Ok(None);
            };
            (2, usize::from(size))
        };
        anyhow::ensure!(len <= MAX_FRAME, "ZMTP frame of {len} bytes");
        let Some(body) = buf.get(at + head..at + head + len) else {
            return Ok(None);
        };
        let more = flags & 0x01 != 0;
        anyhow::ensure!(more == (n == 0), "a publication of other than two frames");
        *part = body;
        at += head + len;
    }
    anyhow::ensure!(
        parts[0] == channel,
        "a publication on {:?}",
        String::from_utf8_lossy(parts[0])
    );
    *pos = at;
    Ok(Some(parts[1]))
}

/// A subscriber's socket: its reading side (and, for ZeroMQ, the
/// subscription that keeps the writing side open).
struct SubSocket {
    read: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
    _zmq: Option<corral::client::ZmqSubscriber>,
}

impl From<TcpStream> for SubSocket {
    fn from(s: TcpStream) -> Self {
        SubSocket {
            read: Box::new(s),
            _zmq: None,
        }
    }
}

/// Connects a ZeroMQ SUB peer to `addr` and subscribes it to the channel;
/// what came after the handshake is in `buf`.
async fn subscribe_zmq(
    addr: &str,
    args: &BenchChatArgs,
    buf: &mut BytesMut,
) -> anyhow::Result<SubSocket> {
    let (sub, read, leftover) = corral::client::ZmqSubscriber::connect_raw(addr)
        .await
        .with_context(|| format!("ZeroMQ SUB to {addr}"))?;
    sub.subscribe(&args.channel).await?;
    buf.extend_from_slice(&leftover);
    Ok(SubSocket {
        read: Box::new(read),
        _zmq: Some(sub),
    })
}

/// Reads into `buf`; false at end of stream or once `stop` is cancelled.
async fn read_more<R: tokio::io::AsyncRead + Unpin>(
    sock: &mut R,
    buf: &mut BytesMut,
    stop: &CancellationToken,
) -> anyhow::Result<bool> {
    if buf.capacity() - buf.len() < READ_CHUNK {
        buf.reserve(READ_CHUNK);
    }
    tokio::select! {
        r = sock.read_buf(buf) => Ok(r? > 0),
        () = stop.cancelled() => Ok(false),
    }
}

/// Connects to `addr` and subscribes to the channel; what comes after the
/// reply stays in `buf`.
async fn subscribe_at(
    addr: &str,
    args: &BenchChatArgs,
    shared: &Shared,
    buf: &mut BytesMut,
) -> anyhow::Result<TcpStream> {
    let mut sock = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    sock.set_nodelay(true)?;
    let body = request(args.codec, 0, "subscribe", json!({ "topic": args.channel }))?;
    let len = u32::try_from(body.len())?;
    // In a cluster the channel reaches this node a little after its
    // creation on the publisher's: NOT_FOUND is retried a while.
    let mut attempts = 0;
    'subscribe: loop {
        sock.write_all(&len.to_be_bytes()).await?;
        sock.write_all(&body).await?;
        loop {
            let mut pos = 0;
            if let Some(reply) = next_frame(buf, &mut pos)? {
                let refused = is_error_reply(args.codec, reply);
                let not_found = refused && memchr::memmem::find(reply, b"NOT_FOUND").is_some();
                if not_found && attempts < SUBSCRIBE_ATTEMPTS {
                    attempts += 1;
                    buf.advance(pos);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'subscribe;
                }
                anyhow::ensure!(!refused, "subscribe: {}", String::from_utf8_lossy(reply));
                buf.advance(pos);
                break 'subscribe;
            }
            anyhow::ensure!(
                read_more(&mut sock, buf, &shared.cancel).await?,
                "connection closed by the server"
            );
        }
    }
    Ok(sock)
}

/// A subscriber that lost its node: subscribes on the next ones in turn,
/// passes over the list with a backoff between them; `None` when none
/// takes it (the failure is recorded).
async fn resubscribe(
    i: usize,
    lost: usize,
    args: &BenchChatArgs,
    addrs: &[String],
    shared: &Shared,
    buf: &mut BytesMut,
) -> Option<(usize, TcpStream)> {
    let mut last = String::new();
    for round in 0..FAILOVER_ROUNDS {
        if round > 0 {
            tokio::time::sleep(backoff(round - 1)).await;
        }
        for k in 1..=addrs.len() {
            if shared.cancel.is_cancelled() {
                return None;
            }
            let node = (lost + k) % addrs.len();
            buf.clear();
            match subscribe_at(&addrs[node], args, shared, buf).await {
                Ok(sock) => {
                    shared.failovers.fetch_add(1, Ordering::Relaxed);
                    return Some((node, sock));
                }
                Err(e) => last = format!("{}: {e:#}", addrs[node]),
            }
        }
    }
    shared.fail(format!(
        "subscriber {i}: no node takes it again (last: {last})"
    ));
    None
}

/// The backoff after `n` failed passes (0-based).
fn backoff(n: u32) -> Duration {
    BACKOFF.saturating_mul(1 << n.min(16)).min(MAX_BACKOFF)
}

/// One subscriber: a raw socket read in large chunks, every frame checked
/// for its send time, one clock reading per chunk read.
async fn subscriber(
    i: usize,
    args: Arc<BenchChatArgs>,
    addrs: Arc<Vec<String>>,
    shared: Arc<Shared>,
    ready: Arc<Barrier>,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = new_histogram()?;
    let mut buf = BytesMut::with_capacity(READ_CHUNK * 2);
    let setup = match &args.sub_zmq {
        Some(zmq) => subscribe_zmq(zmq, &args, &mut buf).await,
        None => subscribe_at(&addrs[i % addrs.len()], &args, &shared, &mut buf)
            .await
            .map(SubSocket::from),
    };
    ready.wait().await;
    let mut sock = match setup {
        Ok(s) => s,
        Err(e) => {
            shared.fail(format!("subscriber {i}: {e:#}"));
            return Ok(hist);
        }
    };
    let counter = &shared.counts[i];
    let push_prefix = push_prefix(args.codec, &args.channel)?;
    let mut got = 0u64;
    let mut node = i % addrs.len();
    loop {
        let now = shared.now_ns();
        let mut pos = 0;
        let before = got;
        loop {
            let next = match &args.sub_zmq {
                Some(_) => next_zmq_message(&buf, &mut pos, args.channel.as_bytes()),
                None => next_frame(&buf, &mut pos),
            };
            let frame = match next {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    shared.fail(format!("subscriber {i}: {e:#}"));
                    return Ok(hist);
                }
            };
            // Every frame must be a push on the channel; every
            // LATENCY_SAMPLE-th gives a latency (and must carry a time).
            let sampled = got % LATENCY_SAMPLE == 0;
            let sent = if sampled { send_time(frame) } else { Some(0) };
            let shaped = args.sub_zmq.is_some() || frame.starts_with(&push_prefix);
            let (Some(sent), true) = (sent, shaped) else {
                shared.fail(format!(
                    "subscriber {i}: unexpected frame {:?}",
                    String::from_utf8_lossy(&frame[..frame.len().min(120)])
                ));
                return Ok(hist);
            };
            if sampled {
                let _ = hist.record(now.saturating_sub(sent).clamp(1, MAX_LATENCY_NS));
            }
            got += 1;
        }
        buf.advance(pos);
        if got > before {
            counter.store(got, Ordering::Relaxed);
            shared.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
            shared.progress.notify_one();
        }
        let why = match read_more(&mut sock.read, &mut buf, &shared.cancel).await {
            Ok(true) => continue,
            Ok(false) => "connection closed by the server".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if shared.cancel.is_cancelled() {
            break;
        }
        if addrs.len() < 2 {
            shared.fail(format!("subscriber {i}: {why}"));
            break;
        }
        eprintln!(
            "warning: subscriber {i}: {} lost ({why}); moving to the next node",
            addrs[node]
        );
        match resubscribe(i, node, &args, &addrs, &shared, &mut buf).await {
            Some((n, s)) => (node, sock) = (n, s.into()),
            None => break,
        }
    }
    Ok(hist)
}

/// The message for a publish sent at `ns`: the marker, the time, padding.
fn message(ns: u64, size: usize) -> String {
    let mut m = String::with_capacity(size);
    m.push_str("@@");
    let _ = write!(m, "{ns:020}");
    while m.len() < size {
        m.push('m');
    }
    m
}

/// A connection to the first of `addrs` that accepts one, and its index.
async fn first_reachable(addrs: &[String]) -> anyhow::Result<(usize, FrameConn)> {
    let mut failures = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        match FrameConn::connect(addr.as_str()).await {
            Ok(c) => return Ok((i, c)),
            Err(e) => {
                eprintln!("warning: {addr}: {e}; trying the next address");
                failures.push(format!("{addr}: {e}"));
            }
        }
    }
    bail!("connect: no address reachable ({})", failures.join("; "))
}

/// The publisher's acknowledgements, shared with the task that reads them.
struct Acks {
    acked: AtomicU64,
    last_ack_ns: AtomicU64,
    max_gap_ns: AtomicU64,
    /// With several addresses: every publish not acknowledged yet, by
    /// request id, to be sent again on the next node.
    pending: Mutex<BTreeMap<u64, Bytes>>,
    /// Request ids answered UNAVAILABLE, to be sent again after a backoff.
    refused: Mutex<Vec<u64>>,
    /// The publisher's connection is lost.
    lost: AtomicBool,
}

impl Acks {
    fn ack(&self, now: u64) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        let prev = self.last_ack_ns.swap(now, Ordering::Relaxed);
        if prev > 0 {
            self.max_gap_ns
                .fetch_max(now.saturating_sub(prev), Ordering::Relaxed);
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Bytes>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_refused(&self) -> Vec<u64> {
        std::mem::take(&mut *self.refused.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Reads the publisher's replies. With `track` (several addresses) each is
/// decoded to match it to its publish; otherwise only errors are.
fn read_acks(
    mut replies: FrameStream,
    codec: Codec,
    shared: Arc<Shared>,
    acks: Arc<Acks>,
    track: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(r) = replies.next().await {
            let body = match r {
                Ok(body) => body,
                Err(e) => {
                    if track {
                        break;
                    }
                    if !shared.cancel.is_cancelled() {
                        shared.fail(format!("publisher: {e}"));
                    }
                    return;
                }
            };
            if track {
                let reply: Value = match codec.decode(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        shared.fail(format!("publish: undecodable reply: {e}"));
                        continue;
                    }
                };
                let id = reply.get("id").and_then(Value::as_u64);
                if let Some(err) = reply.get("error") {
                    match (err.get("code").and_then(Value::as_str), id) {
                        (Some("UNAVAILABLE"), Some(id)) => {
                            acks.refused
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(id);
                            shared.progress.notify_one();
                        }
                        _ => shared.fail(format!("publish: {err}")),
                    }
                    continue;
                }
                // A reply to a publish already acknowledged counts once.
                if id.is_none_or(|id| acks.pending().remove(&id).is_none()) {
                    continue;
                }
            } else if is_error_reply(codec, &body) {
                let e: Value = codec.decode(&body).unwrap_or(Value::Null);
                shared.fail(format!("publish: {}", e.get("error").unwrap_or(&e)));
                continue;
            }
            acks.ack(shared.now_ns());
            shared.progress.notify_one();
        }
        if track {
            acks.lost.store(true, Ordering::SeqCst);
            shared.progress.notify_one();
        }
    })
}

/// The publisher's connection to node `node`, logged in, its replies read
/// by `reader`.
struct PubConn {
    node: usize,
    sink: FrameSink,
    reader: tokio::task::JoinHandle<()>,
}

/// Moves the publisher from node `lost` to the next that takes it (passes
/// over the list with a backoff between them), logs in there, and sends
/// every unacknowledged publish again, with its `client_id`.
async fn move_publisher(
    lost: usize,
    args: &BenchChatArgs,
    addrs: &[String],
    shared: &Arc<Shared>,
    acks: &Arc<Acks>,
) -> anyhow::Result<PubConn> {
    let mut last = String::new();
    for round in 0..FAILOVER_ROUNDS {
        if round > 0 {
            tokio::time::sleep(backoff(round - 1)).await;
        }
        for k in 1..=addrs.len() {
            let node = (lost + k) % addrs.len();
            let attempt = async {
                let mut conn = FrameConn::connect(addrs[node].as_str()).await?;
                call(&mut conn, args.codec, "login", json!({ "user": args.user })).await?;
                anyhow::Ok(conn)
            };
            let conn = match attempt.await {
                Ok(c) => c,
                Err(e) => {
                    last = format!("{}: {e:#}", addrs[node]);
                    continue;
                }
            };
            acks.lost.store(false, Ordering::SeqCst);
            let (mut sink, replies) = conn.into_parts();
            let reader = read_acks(replies, args.codec, shared.clone(), acks.clone(), true);
            let again: Vec<Bytes> = acks.pending().values().cloned().collect();
            for body in again {
                sink.feed(body).await?;
            }
            sink.flush().await?;
            shared.failovers.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "warning: publisher: {} lost; now on {}",
                addrs[lost], addrs[node]
            );
            return Ok(PubConn { node, sink, reader });
        }
    }
    bail!("publisher: no node takes it again (last: {last})")
}

/// With several addresses: moves a lost publisher and sends refused
/// publishes again (after a backoff). False when the run cannot go on.
async fn keep_publishing(
    conn: &mut PubConn,
    args: &BenchChatArgs,
    addrs: &[String],
    shared: &Arc<Shared>,
    acks: &Arc<Acks>,
) -> bool {
    if acks.lost.load(Ordering::SeqCst) {
        conn.reader.abort();
        match move_publisher(conn.node, args, addrs, shared, acks).await {
            Ok(c) => *conn = c,
            Err(e) => {
                shared.fail(format!("{e:#}"));
                return false;
            }
        }
    }
    let refused = acks.take_refused();
    if !refused.is_empty() {
        tokio::time::sleep(BACKOFF).await;
        let bodies: Vec<Bytes> = {
            let pending = acks.pending();
            refused
                .iter()
                .filter_map(|id| pending.get(id).cloned())
                .collect()
        };
        let mut sent = Ok(());
        for body in bodies {
            sent = conn.sink.feed(body).await;
            if sent.is_err() {
                break;
            }
        }
        if sent.is_ok() {
            sent = conn.sink.flush().await;
        }
        if sent.is_err() {
            acks.lost.store(true, Ordering::SeqCst);
        }
    }
    true
}

/// Runs the load; the summary and the delivery latency histogram (ns).
async fn bench(
    args: &BenchChatArgs,
    addrs: Vec<String>,
) -> anyhow::Result<(Summary, Histogram<u64>)> {
    if args.sub_zmq.is_some() && addrs.len() > 1 {
        bail!("--sub-zmq measures one node: give one --addr");
    }
    let args = Arc::new(args.clone());
    let addrs = Arc::new(addrs);
    let n = args.subscribers;
    let codec = args.codec;

    // The publisher logs in and makes sure the channel exists (on the
    // first node; in a cluster every node sees it).
    let (first_node, mut publisher) = first_reachable(&addrs).await?;
    call(&mut publisher, codec, "login", json!({ "user": args.user })).await?;
    if let Err(e) = call(
        &mut publisher,
        codec,
        "channel",
        json!({ "channel": args.channel }),
    )
    .await
    {
        if !format!("{e:#}").contains("CONFLICT") {
            return Err(e);
        }
    }

    let shared = Arc::new(Shared {
        t0: Instant::now(),
        counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
        progress: Notify::new(),
        cancel: CancellationToken::new(),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        last_delivery_ns: AtomicU64::new(0),
        failovers: AtomicU64::new(0),
    });
    let ready = Arc::new(Barrier::new(n + 1));
    let subs: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(subscriber(
                i,
                args.clone(),
                addrs.clone(),
                shared.clone(),
                ready.clone(),
            ))
        })
        .collect();
    ready.wait().await;

    // Acknowledgements, counted as they come.
    let track = addrs.len() > 1;
    let acks = Arc::new(Acks {
        acked: AtomicU64::new(0),
        last_ack_ns: AtomicU64::new(0),
        max_gap_ns: AtomicU64::new(0),
        pending: Mutex::new(BTreeMap::new()),
        refused: Mutex::new(Vec::new()),
        lost: AtomicBool::new(false),
    });
    let (sink, replies) = publisher.into_parts();
    let mut conn = PubConn {
        node: first_node,
        sink,
        reader: read_acks(replies, codec, shared.clone(), acks.clone(), track),
    };
    // Client ids unique to this run: a store keeps them.
    let run_id = {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
            & 0xffff_ffff_ffff
    };

    // Publish, paced by the slowest subscriber (or by the acknowledgements).
    let start_ns = shared.now_ns();
    let deadline =
        shared.t0 + Duration::from_nanos(start_ns) + Duration::from_secs_f64(args.duration);
    let done_so_far = |shared: &Shared| {
        if n == 0 || track {
            acks.acked.load(Ordering::Relaxed)
        } else {
            shared.min_count()
        }
    };
    let mut published = 0u64;
    while published < args.messages
        && Instant::now() < deadline
        && shared.errors.load(Ordering::Relaxed) == 0
    {
        let notified = shared.progress.notified();
        if track && !keep_publishing(&mut conn, &args, &addrs, &shared, &acks).await {
            break;
        }
        let room = (done_so_far(&shared) + args.window).saturating_sub(published);
        if room == 0 {
            let _ = tokio::time::timeout(Duration::from_millis(1), notified).await;
            continue;
        }
        let k = room.min(args.batch).min(args.messages - published);
        let mut sent = Ok(());
        for j in 0..k {
            let id = published + j + 1;
            let mut data = json!({
                "channel": args.channel,
                "message": message(shared.now_ns(), args.size),
            });
            if track {
                data["client_id"] = json!(format!("{run_id:x}-{id}"));
            }
            let body = request(codec, id, "publish", data)?;
            if track {
                acks.pending().insert(id, body.clone());
            }
            sent = conn.sink.feed(body).await;
            if sent.is_err() {
                break;
            }
        }
        if sent.is_ok() {
            sent = conn.sink.flush().await;
        }
        match sent {
            Ok(()) => {}
            // Kept in `pending`: sent again on the next node.
            Err(_) if track => acks.lost.store(true, Ordering::SeqCst),
            Err(e) => return Err(e).context("publish"),
        }
        published += k;
    }
    let publish_end_ns = shared.now_ns();

    // Let the last deliveries and acknowledgements arrive.
    let settle = Instant::now() + SETTLE;
    while (shared.min_count() < published || acks.acked.load(Ordering::Relaxed) < published)
        && Instant::now() < settle
        && shared.errors.load(Ordering::Relaxed) == 0
    {
        let notified = shared.progress.notified();
        if track && !keep_publishing(&mut conn, &args, &addrs, &shared, &acks).await {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(10), notified).await;
    }
    shared.cancel.cancel();
    let _ = conn.sink.close().await;
    let mut hist = new_histogram()?;
    for s in subs {
        let h = s.await.context("a subscriber task failed")??;
        hist.add(&h).context("merging histograms")?;
    }
    conn.reader.abort();

    let delivered: u64 = shared
        .counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    let acked = acks.acked.load(Ordering::Relaxed);
    let secs = |ns: u64| ns.saturating_sub(start_ns) as f64 / 1e9;
    let delivery_s = secs(shared.last_delivery_ns.load(Ordering::Relaxed));
    let ack_s = secs(acks.last_ack_ns.load(Ordering::Relaxed));
    let rate = |count: u64, s: f64| if s > 0.0 { count as f64 / s } else { 0.0 };
    let first_error = shared.first_error.lock().ok().and_then(|e| e.clone());
    let summary = Summary {
        addr: addrs.join(","),
        sub_zmq: args.sub_zmq.clone(),
        codec: codec.name(),
        subscribers: n,
        size: args.size,
        window: args.window,
        batch: args.batch,
        threads: args.threads,
        published,
        acked,
        delivered,
        missing: (published * n as u64).saturating_sub(delivered),
        errors: shared.errors.load(Ordering::Relaxed) + published.saturating_sub(acked),
        elapsed_s: secs(publish_end_ns),
        delivered_per_s: rate(delivered, delivery_s),
        published_per_s: rate(published, secs(publish_end_ns)),
        acked_per_s: rate(acked, ack_s),
        latency_us: Latency::of(&hist),
        failovers: shared.failovers.load(Ordering::Relaxed),
        max_ack_gap_ms: acks.max_gap_ns.load(Ordering::Relaxed) as f64 / 1e6,
        first_error,
    };
    Ok((summary, hist))
}

impl csv::Row for Summary {
    const HEADER: &'static [&'static str] = &[
        "timestamp_utc",
        "addr",
        "sub_zmq",
        "codec",
        "subscribers",
        "size",
        "window",
        "batch",
        "threads",
        "duration_s",
        "published",
        "acked",
        "delivered",
        "missing",
        "errors",
        "delivered_per_s",
        "published_per_s",
        "acked_per_s",
        "mean_us",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "max_us",
        "failovers",
        "max_ack_gap_ms",
        "first_error",
    ];

    fn fields(&self, timestamp: &str) -> Vec<String> {
        let mut row = vec![
            timestamp.to_string(),
            self.addr.clone(),
            self.sub_zmq.clone().unwrap_or_default(),
            self.codec.to_string(),
            self.subscribers.to_string(),
            self.size.to_string(),
            self.window.to_string(),
            self.batch.to_string(),
            self.threads.to_string(),
            format!("{:.3}", self.elapsed_s),
            self.published.to_string(),
            self.acked.to_string(),
            self.delivered.to_string(),
            self.missing.to_string(),
            self.errors.to_string(),
            format!("{:.1}", self.delivered_per_s),
            format!("{:.1}", self.published_per_s),
            format!("{:.1}", self.acked_per_s),
        ];
        row.extend(self.latency_us.fields());
        row.extend([
            self.failovers.to_string(),
            format!("{:.1}", self.max_ack_gap_ms),
            self.first_error.clone().unwrap_or_default(),
        ]);
        row
    }
}

fn print_summary(s: &Summary) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bench chat subscribers={} size={} codec={} window={} threads={} addr={}",
        s.subscribers, s.size, s.codec, s.window, s.threads, s.addr
    );
    let _ = writeln!(
        out,
        "  published  {} in {:.3} s, {} acknowledged ({:.0}/s durable)",
        s.published, s.elapsed_s, s.acked, s.acked_per_s
    );
    let _ = writeln!(
        out,
        "  delivered  {} pushes ({:.0}/s), {} missing",
        s.delivered, s.delivered_per_s, s.missing
    );
    let _ = writeln!(
        out,
        "  latency    p50 {:.1} µs  p99 {:.1} µs  p999 {:.1} µs  max {:.1} µs (publish written → push read)",
        s.latency_us.p50, s.latency_us.p99, s.latency_us.p999, s.latency_us.max
    );
    if s.addr.contains(',') {
        let _ = writeln!(
            out,
            "  failover   {} connection(s) moved; longest time without an acknowledgement {:.1} ms",
            s.failovers, s.max_ack_gap_ms
        );
    }
    if let Some(e) = &s.first_error {
        let _ = writeln!(out, "  first error: {e}");
    }
    super::super::print_stdout(&out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_time_round_trips_through_json_and_msgpack() {
        let m = message(1_234_567_890, 64);
        assert_eq!(m.len(), 64);
        for codec in [Codec::Json, Codec::MsgPack] {
            let body = codec
                .encode(&json!({"topic": "bench", "data": {"message": m, "seq": 7}}))
                .unwrap_or_default();
            assert_eq!(send_time(&body), Some(1_234_567_890), "{codec}");
        }
        assert_eq!(send_time(b"{\"topic\":\"bench\"}"), None);
        assert_eq!(send_time(b"@@12345"), None);
        assert_eq!(send_time(b"@@1234567890123456789x"), None);
    }

    #[test]
    fn pushes_are_recognised_by_their_prefix() {
        for codec in [Codec::Json, Codec::MsgPack] {
            let prefix = push_prefix(codec, "bench").unwrap_or_default();
            // Pushes as the server encodes them.
            let push = codec
                .encode(&corral::rpc::Push::new("bench", json!({"seq": 1})))
                .unwrap_or_default();
            let other = codec
                .encode(&corral::rpc::Push::new("benchx", json!({"seq": 1})))
                .unwrap_or_default();
            assert!(prefix.len() > 12, "{codec}: {prefix:?}");
            assert!(push.starts_with(&prefix), "{codec}");
            assert!(!other.starts_with(&prefix), "{codec}");
        }
    }

    #[test]
    fn error_replies_are_recognised_in_both_encodings() {
        for codec in [Codec::Json, Codec::MsgPack] {
            let err = codec
                .encode(&json!({"id": 1, "error": {"code": "BAD_REQUEST", "message": "x"}}))
                .unwrap_or_default();
            let ok = codec
                .encode(&json!({"id": 1, "data": {"seq": 1}}))
                .unwrap_or_default();
            assert!(is_error_reply(codec, &err), "{codec}");
            assert!(!is_error_reply(codec, &ok), "{codec}");
        }
    }
}
