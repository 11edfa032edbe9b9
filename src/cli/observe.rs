//! `corral observe`: a node's supervision tree in the terminal, from its
//! observer's JSON API (`GET /observer/api/tree` on its HTTP listener),
//! printed once or, with `--watch`, redrawn every `--interval` seconds.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use corral::observer::TreeView;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// Largest answer read.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Arguments of `corral observe`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ObserveArgs {
    /// The node's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Redraw the tree until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between redraws with --watch.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// Print the JSON as the node sends it instead of drawing it.
    #[arg(long)]
    pub json: bool,
    /// Give up on a request after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
}

/// `GET path` on `addr` (HTTP/1.1, one request per connection); the body
/// of a 200, else an error with the status and body.
async fn get(addr: &str, path: &str) -> anyhow::Result<Bytes> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    let driver = tokio::spawn(conn);
    let req = Request::get(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await.context("HTTP request")?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        bail!(
            "{addr}{path} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(body)
}

/// The tree as text (or the JSON, with `--json`).
async fn tree_text(args: &ObserveArgs, timeout: Duration) -> anyhow::Result<String> {
    let body = tokio::time::timeout(timeout, get(&args.addr, "/observer/api/tree"))
        .await
        .context("timed out")??;
    if args.json {
        return Ok(String::from_utf8_lossy(&body).into_owned());
    }
    let tree: TreeView =
        serde_json::from_slice(&body).context("the answer is not an observer tree")?;
    Ok(tree.to_string())
}

/// Runs `corral observe`.
pub(crate) async fn run(args: ObserveArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::try_from_secs_f64(args.timeout).context("bad --timeout")?;
    let interval = Duration::try_from_secs_f64(args.interval).context("bad --interval")?;
    if !args.watch {
        print!("{}", tree_text(&args, timeout).await?);
        return Ok(ExitCode::SUCCESS);
    }
    if interval < Duration::from_millis(100) {
        bail!("--interval must be at least 0.1 s");
    }
    loop {
        let text = match tree_text(&args, timeout).await {
            Ok(t) => t,
            Err(e) => format!("error: {e:#}\n"),
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Clear the screen, then the tree and when it was read.
        let mut out = std::io::stdout().lock();
        write!(
            out,
            "\x1b[2J\x1b[H{} (every {:.1}s, unix time {stamp})\n\n{text}",
            args.addr,
            interval.as_secs_f64()
        )?;
        out.flush()?;
        drop(out);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}
