//! `corral bench idle`: many idle connections, for the memory a server pays
//! per connection that does nothing.
//!
//! Opens `--connections` connections to one server, each after one
//! exchange of its `--kind`, then holds them open and idle:
//!
//! - `rpc`: one `ping`, answered;
//! - `http`: one keep-alive `GET` (HTTP/1.1), answered in full;
//! - `chat`: `login` as a user of its own, then `subscribe` to `--channel`
//!   (created first, once), both answered: an idle chat subscriber.
//!
//! When all are open it prints one line, `ready connections=N failed=F
//! elapsed_s=S`, and holds them until SIGINT or SIGTERM, or for `--hold`
//! seconds at most. Then it counts how many the server closed meanwhile
//! (a nonblocking read that finds the end of the stream), prints
//! `done open=N closed_by_server=C` and exits: status 0 if every
//! connection opened and stayed open, 2 otherwise.
//!
//! The measuring is the caller's (scripts/bench-memory.sh reads the
//! server's resident memory before and after). Beyond about 28,000
//! connections to one address and port, the client runs out of local
//! ports on one source address: `--sources K` spreads the connections over
//! the loopback addresses 127.0.0.1 to 127.0.0.K.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Largest reply (RPC frame, or HTTP response) the generator reads.
const MAX_REPLY: usize = 1 << 20;

/// What each connection does before it idles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IdleKind {
    /// One RPC `ping`.
    Rpc,
    /// One HTTP/1.1 keep-alive GET of `--path`.
    Http,
    /// Chat `login` as its own user, then `subscribe` to `--channel`.
    Chat,
}

/// Arguments of `corral bench idle`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchIdleArgs {
    /// Server address (an RPC listener for rpc and chat, an HTTP one for http).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub addr: String,
    /// What each connection does before it idles.
    #[arg(long, value_enum, default_value = "rpc")]
    pub kind: IdleKind,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    pub parallel: usize,
    /// Spread the connections over this many loopback source addresses,
    /// 127.0.0.1 to 127.0.0.K (each has about 28,000 local ports); 0: the
    /// system's choice.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub sources: u8,
    /// The path each HTTP connection gets.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// The channel chat subscribers subscribe to (created if missing).
    #[arg(long, default_value = "idle")]
    pub channel: String,
    /// Prefix of the chat subscribers' user names (`<prefix><i>`).
    #[arg(long, default_value = "idle")]
    pub user_prefix: String,
    /// Longest time the connections are held, in seconds, if no signal
    /// comes first.
    #[arg(long, default_value_t = 600.0, value_name = "SECS")]
    pub hold: f64,
}

/// Runs `corral bench idle` (see the module docs).
pub(crate) fn run(args: BenchIdleArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.parallel > 0, "--parallel must be at least 1");
    anyhow::ensure!(
        args.hold >= 0.0 && args.hold.is_finite(),
        "--hold must be a number of seconds"
    );
    anyhow::ensure!(
        args.kind != IdleKind::Http || args.path.starts_with('/'),
        "--path must start with /"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(idle(args))
}

async fn idle(args: BenchIdleArgs) -> anyhow::Result<ExitCode> {
    let addr = tokio::net::lookup_host(&args.addr)
        .await
        .with_context(|| format!("cannot resolve {}", args.addr))?
        .next()
        .with_context(|| format!("no address for {}", args.addr))?;
    if args.sources > 0 && !addr.ip().is_loopback() {
        bail!("--sources spreads over loopback addresses: --addr must be a loopback one");
    }
    if args.kind == IdleKind::Chat {
        let mut setup = connect(addr, None).await?;
        call(
            &mut setup,
            "login",
            json!({"user": format!("{}-setup", args.user_prefix)}),
        )
        .await?;
        if let Err(e) = call(&mut setup, "channel", json!({"channel": args.channel})).await {
            if !format!("{e:#}").contains("CONFLICT") {
                return Err(e);
            }
        }
    }
    // Our signals, taken before the first connection: a signal while they
    // open ends the run too.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let started = Instant::now();
    let opened: Vec<anyhow::Result<TcpStream>> = futures::stream::iter(0..args.connections)
        .map(|i| open(i, addr, &args))
        .buffer_unordered(args.parallel)
        .collect()
        .await;
    let mut first_error = None;
    let mut streams = Vec::with_capacity(opened.len());
    for r in opened {
        match r {
            Ok(s) => streams.push(s),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let failed = args.connections - streams.len();
    super::super::print_stdout(&format!(
        "ready connections={} failed={failed} elapsed_s={:.2}\n",
        streams.len(),
        started.elapsed().as_secs_f64()
    ));
    if let Some(e) = &first_error {
        eprintln!("first failure: {e:#}");
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        () = tokio::time::sleep(Duration::from_secs_f64(args.hold)) => {}
    }
    let closed = streams.iter().filter(|s| closed_by_peer(s)).count();
    super::super::print_stdout(&format!(
        "done open={} closed_by_server={closed}\n",
        streams.len() - closed
    ));
    Ok(if failed == 0 && closed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// True if the peer has closed `s` (or reset it); nothing unread is
/// expected on an idle connection.
fn closed_by_peer(s: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match s.try_read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Connection `i`: connected (from its source address) and through its
/// exchange.
async fn open(i: usize, addr: SocketAddr, args: &BenchIdleArgs) -> anyhow::Result<TcpStream> {
    let source = (args.sources > 0).then(|| {
        let k = u8::try_from(i % usize::from(args.sources)).unwrap_or(0);
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, k + 1))
    });
    let mut s = connect(addr, source).await?;
    match args.kind {
        IdleKind::Rpc => {
            call(&mut s, "ping", json!({})).await?;
        }
        IdleKind::Http => get(&mut s, &args.path, addr).await?,
        IdleKind::Chat => {
            let user = format!("{}{i}", args.user_prefix);
            call(&mut s, "login", json!({ "user": user })).await?;
            call(&mut s, "subscribe", json!({ "topic": args.channel })).await?;
        }
    }
    Ok(s)
}

async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        // Ports of earlier runs' connections may wait in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("cannot bind {ip}"))?;
    }
    let s = socket
        .connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One RPC request (JSON, length-prefixed) and its reply's `data`; an
/// error reply is a failure.
async fn call(s: &mut TcpStream, service: &str, data: Value) -> anyhow::Result<Value> {
    let body = serde_json::to_vec(&json!({"id": 1, "service": service, "data": data}))?;
    let len = u32::try_from(body.len()).context("request too large")?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    s.write_all(&frame).await?;
    let len = s.read_u32().await.context("no reply")? as usize;
    anyhow::ensure!(len <= MAX_REPLY, "{service}: reply of {len} bytes");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.context("reply cut short")?;
    let mut reply: Value = serde_json::from_slice(&body).context("reply is not JSON")?;
    if let Some(e) = reply.get("error") {
        bail!("{service}: {e}");
    }
    Ok(reply
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Null))
}

/// One keep-alive GET of `path`, its response read in full (a 200 with a
/// Content-Length, and that many bytes of body).
async fn get(s: &mut TcpStream, path: &str, addr: SocketAddr) -> anyhow::Result<()> {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: corral-bench-idle\r\n\r\n");
    s.write_all(request.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let (status, head, body_len) = loop {
        if s.read_buf(&mut buf).await? == 0 {
            bail!("connection closed before the response's head");
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf).context("bad response head")? {
            httparse::Status::Complete(head) => {
                let len = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .context("a response without Content-Length")?;
                break (resp.code.unwrap_or(0), head, len);
            }
            httparse::Status::Partial if buf.len() > MAX_REPLY => bail!("response head too long"),
            httparse::Status::Partial => {}
        }
    };
    anyhow::ensure!(status == 200, "GET {path}: status {status}");
    anyhow::ensure!(
        body_len <= MAX_REPLY,
        "GET {path}: body of {body_len} bytes"
    );
    buf.advance(head);
    while buf.len() < body_len {
        if s.read_buf(&mut buf).await? == 0 {
            bail!("connection closed in the response's body");
        }
    }
    anyhow::ensure!(buf.len() == body_len, "bytes after the response");
    Ok(())
}
