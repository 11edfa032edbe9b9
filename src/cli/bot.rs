//! `corral bot --count N`: chat bots, as in the seed.
//!
//! Each bot has a connection of its own and a random name `bot_` followed by five digits; it
//! logs in, then loops: list the channels, pick one at random (creating
//! `general` when there is none), subscribe to it (once; the publications
//! it receives there are read and dropped), publish a batch of messages on
//! it, each one of the seeds' texts ([`SEED_TEXTS`]) at random, wait,
//! repeat. Stops on Ctrl-C or after `--duration`, then prints a summary.
//! A failed call is counted and the bot carries on after the pause.
//!
//! Each bot runs on a [`ChatSession`]: with several addresses (`--addr`
//! repeated or comma-separated) the bots start spread over the nodes (bot
//! `i` on address `i mod n`), and a bot whose node goes away moves to the
//! next, logs in again and retries its cut publish with the same client id
//! (stored once); a publish answered UNAVAILABLE is retried after a backoff,
//! never counted as lost. A bot stops when no node answers.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use corral::client::{ChatSession, Codec, SessionError};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Arguments of `corral bot`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BotArgs {
    /// How many bots.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub count: usize,
    /// Server address (the RPC listener); several nodes as a
    /// comma-separated list or by repeating --addr: the bots are spread
    /// over them and move to the next when theirs goes away.
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "HOST:PORT[,...]")]
    pub addr: Vec<String>,
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
    #[command(flatten)]
    pub zmq: super::chat_client::ZmqArgs,
}

/// The seeds' bot messages, verbatim: each published message is one of
/// them, chosen at random.
pub(crate) const SEED_TEXTS: [&str; 10] = [
    "Olá, sou um bot!",
    "Mensagem automática",
    "Testando o sistema",
    "Bot em ação",
    "Mensagem de teste",
    "Sistema funcionando",
    "Publicação automática",
    "Bot ativo",
    "Teste de carga",
    "Mensagem gerada automaticamente",
];

/// One of [`SEED_TEXTS`] at random.
pub(crate) fn seed_text() -> &'static str {
    let i = usize::try_from(random(2) % SEED_TEXTS.len() as u64).unwrap_or(0);
    SEED_TEXTS.get(i).copied().unwrap_or(SEED_TEXTS[0])
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
    /// Failed calls (connect, login, channels, subscribe, publish).
    pub errors: u64,
    /// The last error seen.
    pub last_error: Option<String>,
    /// Times the bot's node went away and it moved to the next.
    pub failovers: u64,
}

impl BotStats {
    fn error(&mut self, what: &str, e: impl std::fmt::Display) {
        self.errors += 1;
        self.last_error = Some(format!("{what}: {e}"));
    }
}

async fn run_bot(
    args: Arc<BotArgs>,
    session: ChatSession,
    zmq: Option<super::chat_client::ZmqSub>,
    stop: CancellationToken,
) -> BotStats {
    let mut stats = BotStats {
        name: bot_name(),
        ..BotStats::default()
    };
    let pause = Duration::from_secs_f64(args.pause.max(0.0));
    let connected = tokio::select! {
        c = session.connect() => c,
        _ = stop.cancelled() => return stats,
    };
    if let Err(e) = connected {
        stats.error("connect", e);
        return stats;
    }
    // The publications of the channels the bot is subscribed to: read and
    // dropped, so that the session's buffer never fills.
    let drain = session
        .pushes()
        .map(|mut rx| tokio::spawn(async move { while rx.recv().await.is_some() {} }));
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut logged_in = false;
    let mut gone = false;
    while !stop.is_cancelled() && !gone {
        let round = async {
            // Records an error; false when no node answers any more.
            let mut failed = |stats: &mut BotStats, what: &str, e: SessionError| {
                gone |= matches!(e, SessionError::AllNodesDown { .. });
                stats.error(what, e);
            };
            if !logged_in {
                match session.login(&stats.name).await {
                    Ok(_) => logged_in = true,
                    Err(e) => {
                        failed(&mut stats, "login", e);
                        return;
                    }
                }
            }
            let channels = match session.call("channels", json!({})).await {
                Ok(r) => names(&r),
                Err(e) => {
                    failed(&mut stats, "channels", e);
                    return;
                }
            };
            let channel = if channels.is_empty() {
                // Another bot may create it first: CONFLICT is fine.
                if let Err(e) = session.call("channel", json!({"channel": "general"})).await {
                    if e.code() != Some("CONFLICT") {
                        failed(&mut stats, "create", e);
                        return;
                    }
                }
                "general".to_string()
            } else {
                let i = usize::try_from(random(1) % channels.len() as u64).unwrap_or(0);
                channels[i].clone()
            };
            // The seeds' bots subscribe to the channel they talk in (the
            // session subscribes again after a failover).
            if !subscribed.contains(&channel) {
                // Over ZeroMQ, on the SUB socket.
                let done = match &zmq {
                    Some(sub) => sub.subscribe(&channel).await.map_err(SessionError::Client),
                    None => session.subscribe(&channel).await.map(drop),
                };
                match done {
                    Ok(()) => {
                        subscribed.insert(channel.clone());
                    }
                    Err(e) => {
                        failed(&mut stats, "subscribe", e);
                        return;
                    }
                }
            }
            for _ in 0..args.messages {
                let message = seed_text();
                match session
                    .call(
                        "publish",
                        json!({"user": stats.name, "channel": channel, "message": message}),
                    )
                    .await
                {
                    Ok(_) => stats.sent += 1,
                    Err(e) => {
                        let stop_now = matches!(e, SessionError::AllNodesDown { .. });
                        failed(&mut stats, "publish", e);
                        if stop_now {
                            return;
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = round => {}
            _ = stop.cancelled() => break,
        }
        if gone {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => break,
        }
    }
    if logged_in && !gone {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), session.call("logout", json!({}))).await;
    }
    if let Some(d) = drain {
        d.abort();
    }
    stats.failovers = session.failovers();
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
    let connector = args.tls.connector(super::tls::ClientTransport::Plain(
        corral::transport::Transport::Tcp,
    ))?;
    let addrs = corral::client::parse_addrs(&args.addr).context("bad --addr")?;
    let timeout = Duration::from_secs(10);
    let stop = CancellationToken::new();
    let args = Arc::new(args);
    let started = Instant::now();
    let mut bots = Vec::new();
    for i in 0..args.count {
        // Bot i starts on address i mod n, then goes round from there.
        let mut mine = addrs.clone();
        mine.rotate_left(i % addrs.len());
        let (opts, zmq) =
            match super::chat_client::zmq_session_options(&args.zmq, args.codec, timeout)? {
                Some((opts, sub)) => (opts, Some(sub)),
                None => (
                    super::chat_client::session_options(&mine, args.codec, timeout, &connector)?,
                    None,
                ),
            };
        let session = ChatSession::new(opts);
        bots.push(tokio::spawn(run_bot(
            args.clone(),
            session,
            zmq,
            stop.clone(),
        )));
    }
    eprintln!(
        "{} bot(s) on {}; stop with Ctrl-C{}",
        args.count,
        addrs.join(","),
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
    let failovers: u64 = all.iter().map(|s| s.failovers).sum();
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
        "total: {sent} messages sent, {errors} errors, {} bots, {:.1} s, {rate:.1} msg/s, \
         {failovers} failovers\n",
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
    fn messages_are_the_seeds_texts() {
        let seen: HashSet<&str> = (0..500).map(|_| seed_text()).collect();
        assert!(seen.iter().all(|t| SEED_TEXTS.contains(t)), "{seen:?}");
        // Random, not always the same one: 500 draws of 10 miss one with
        // a chance of about 10 * 0.9^500.
        assert_eq!(seen.len(), SEED_TEXTS.len(), "{seen:?}");
        assert_eq!(SEED_TEXTS[0], "Olá, sou um bot!");
        assert_eq!(SEED_TEXTS[9], "Mensagem gerada automaticamente");
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
