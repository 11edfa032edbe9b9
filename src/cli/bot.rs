//! `corral bot --count N`: chat bots, as in the seed.
//!
//! Each bot has a connection of its own and a random name `bot_` followed by five digits; it
//! logs in, then loops: list the channels, pick one at random (creating
//! `general` when there is none), publish a batch of messages on it, wait,
//! repeat. Stops on Ctrl-C or after `--duration`, then prints a summary.
//! A failed call is counted and the bot carries on after the pause.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use corral::client::Codec;
use corral::clock::LamportClock;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::chat_client::ChatConn;

/// Arguments of `corral bot`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BotArgs {
    /// How many bots.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub count: usize,
    /// Server address (the RPC listener).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub addr: String,
    /// Body encoding.
    #[arg(long, default_value = "json", value_parser = super::call::parse_codec)]
    pub codec: Codec,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Messages per batch.
    #[arg(long, default_value_t = 10)]
    pub messages: u32,
    /// Seconds between batches.
    #[arg(long, default_value_t = 2.0)]
    pub pause: f64,
    #[command(flatten)]
    pub tls: super::tls::TlsArgs,
}

/// A random number (std's randomly keyed hasher; no extra crate needed).
fn random(n: u64) -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one((COUNTER.fetch_add(1, Ordering::Relaxed), n))
}

/// A random bot name: `bot_` and five digits.
pub(crate) fn bot_name() -> String {
    format!("bot_{:05}", random(0) % 100_000)
}

/// What one bot did.
#[derive(Debug, Default, Clone)]
pub(crate) struct BotStats {
    /// The bot's name.
    pub name: String,
    /// Messages acknowledged by the server.
    pub sent: u64,
    /// Failed calls (connect, login, channels, publish).
    pub errors: u64,
    /// The last error seen.
    pub last_error: Option<String>,
}

impl BotStats {
    fn error(&mut self, what: &str, e: impl std::fmt::Display) {
        self.errors += 1;
        self.last_error = Some(format!("{what}: {e}"));
    }
}

async fn run_bot(
    args: Arc<BotArgs>,
    connector: Arc<super::tls::Connector>,
    stop: CancellationToken,
) -> BotStats {
    let mut stats = BotStats {
        name: bot_name(),
        ..BotStats::default()
    };
    let pause = Duration::from_secs_f64(args.pause.max(0.0));
    let timeout = Duration::from_secs(10);
    let client = tokio::select! {
        c = tokio::time::timeout(timeout, connector.client(args.addr.as_str(), args.codec)) => c,
        _ = stop.cancelled() => return stats,
    };
    let client = match client {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            stats.error("connect", e);
            return stats;
        }
        Err(_) => {
            stats.error("connect", "timed out");
            return stats;
        }
    };
    let conn = ChatConn {
        client,
        clock: Arc::new(LamportClock::new()),
        timeout,
    };
    let mut logged_in = false;
    while !stop.is_cancelled() {
        let round = async {
            if !logged_in {
                match conn.call("login", json!({ "user": stats.name })).await {
                    Ok(_) => logged_in = true,
                    Err(e) => {
                        stats.error("login", e);
                        return;
                    }
                }
            }
            let channels = match conn.call("channels", json!({})).await {
                Ok(r) => names(&r),
                Err(e) => {
                    stats.error("channels", e);
                    return;
                }
            };
            let channel = if channels.is_empty() {
                // Another bot may create it first: CONFLICT is fine.
                if let Err(e) = conn.call("channel", json!({"channel": "general"})).await {
                    if !e.to_string().starts_with("CONFLICT") {
                        stats.error("create", e);
                        return;
                    }
                }
                "general".to_string()
            } else {
                let i = usize::try_from(random(1) % channels.len() as u64).unwrap_or(0);
                channels[i].clone()
            };
            for i in 0..args.messages {
                let message = format!("hello {i} from {}", stats.name);
                match conn
                    .call(
                        "publish",
                        json!({"user": stats.name, "channel": channel, "message": message}),
                    )
                    .await
                {
                    Ok(_) => stats.sent += 1,
                    Err(e) => stats.error("publish", e),
                }
            }
        };
        tokio::select! {
            _ = round => {}
            _ = stop.cancelled() => break,
        }
        if conn.client.is_closed() {
            stats.error("connection", "closed by the server");
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => break,
        }
    }
    if logged_in && !conn.client.is_closed() {
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.call("logout", json!({}))).await;
    }
    stats
}

fn names(reply: &Value) -> Vec<String> {
    reply
        .get("channels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| match c {
                    Value::String(s) => Some(s.clone()),
                    other => other
                        .get("name")
                        .or_else(|| other.get("channel"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `corral bot`: exit 0 once stopped (failures are in the summary),
/// 1 if no message at all could be sent.
pub(crate) async fn run(args: BotArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    let duration = args
        .duration
        .map(Duration::try_from_secs_f64)
        .transpose()
        .context("bad --duration")?;
    Duration::try_from_secs_f64(args.pause).context("bad --pause")?;
    let connector = Arc::new(args.tls.connector(corral::transport::Transport::Tcp)?);
    let stop = CancellationToken::new();
    let args = Arc::new(args);
    let started = Instant::now();
    let bots: Vec<_> = (0..args.count)
        .map(|_| tokio::spawn(run_bot(args.clone(), connector.clone(), stop.clone())))
        .collect();
    eprintln!(
        "{} bot(s) on {}; stop with Ctrl-C{}",
        args.count,
        args.addr,
        duration.map_or(String::new(), |d| format!(" (or after {d:?})"))
    );
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            let limit = async {
                match duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = limit => {}
            }
            stop.cancel();
        });
    }
    let mut all = Vec::new();
    for b in bots {
        match b.await {
            Ok(s) => all.push(s),
            Err(e) => eprintln!("error: a bot failed: {e}"),
        }
    }
    let elapsed = started.elapsed();
    let sent: u64 = all.iter().map(|s| s.sent).sum();
    let errors: u64 = all.iter().map(|s| s.errors).sum();
    let mut out = String::new();
    out.push_str("bot        sent  errors  last error\n");
    for s in &all {
        out.push_str(&format!(
            "{:<10} {:>5} {:>7}  {}\n",
            s.name,
            s.sent,
            s.errors,
            s.last_error.as_deref().unwrap_or("-")
        ));
    }
    let rate = sent as f64 / elapsed.as_secs_f64().max(1e-9);
    out.push_str(&format!(
        "total: {sent} messages sent, {errors} errors, {} bots, {:.1} s, {rate:.1} msg/s\n",
        all.len(),
        elapsed.as_secs_f64()
    ));
    super::print_stdout(&out);
    Ok(if sent > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_right() {
        let a = bot_name();
        assert!(a.starts_with("bot_") && a.len() == 9, "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_digit()));
        let many: std::collections::HashSet<String> = (0..50).map(|_| bot_name()).collect();
        assert!(many.len() > 40, "names repeat too often");
    }

    #[test]
    fn channel_names_from_replies() {
        assert_eq!(
            names(&json!({"channels": ["a", {"name": "b"}, 3]})),
            ["a", "b"]
        );
        assert!(names(&json!({})).is_empty());
    }
}
