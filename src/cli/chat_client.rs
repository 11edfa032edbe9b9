//! `corral client`: an interactive terminal chat client.
//!
//! Reads commands from stdin, one a line, and prints replies; pushes
//! (publications on subscribed channels, private messages) are printed as
//! they arrive by a task of their own. Keeps a Lamport clock: every request
//! carries `clock` (ticked before sending) and `timestamp`; every reply and
//! push with a `clock` advances it (`max(local, received) + 1`).
//!
//! Runs on a [`ChatSession`]: given several addresses (`--addr` repeated or
//! comma-separated), it moves to the next node when the one it is on goes
//! away, logs in again, resubscribes, retries the cut command (a publish or
//! a message keeps its client id, so it is stored once) and says so
//! (`now on node ...`). When no node answers it ends with an error.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use corral::client::{
    ChatSession, ClientError, Codec, FrameConn, IncomingPush, SessionError, SessionOptions,
    ZmqSubscriber,
};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Arguments of `corral client`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// Server address (the RPC listener); several nodes as a
    /// comma-separated list or by repeating --addr: the client starts on
    /// the first and moves to the next when its node goes away.
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "HOST:PORT[,...]")]
    pub addr: Vec<String>,
    /// Body encoding.
    #[arg(long, default_value = "json", value_parser = super::call::parse_codec)]
    pub codec: Codec,
    /// Log in as this user on start.
    #[arg(long)]
    pub user: Option<String>,
    /// Give up on a call after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub tls: super::tls::TlsArgs,
    #[command(flatten)]
    pub zmq: ZmqArgs,
}

/// `--zmq` and `--zmq-sub`: a chat tool over ZeroMQ instead of --addr.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ZmqArgs {
    /// Talk ZeroMQ instead of corral's framing: requests to this request
    /// endpoint (a node's `zmq_router` listener, or the seeds' broker port),
    /// as a DEALER. Needs --zmq-sub; --addr is then not used.
    #[arg(long, value_name = "HOST:PORT", requires = "zmq_sub")]
    pub zmq: Option<String>,
    /// With --zmq: publications from this publication endpoint (a node's
    /// `zmq_xpub` listener, or the seeds' proxy port), as a SUB socket
    /// subscribed to the channels subscribed to and to the user's name.
    #[arg(long, value_name = "HOST:PORT", requires = "zmq")]
    pub zmq_sub: Option<String>,
}

/// The SUB socket of a session over ZeroMQ: subscriptions go there, not to
/// the `subscribe` service. Set anew by each connection. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct ZmqSub(std::sync::Arc<std::sync::Mutex<Option<ZmqSubscriber>>>);

impl ZmqSub {
    fn current(&self) -> Result<ZmqSubscriber, ClientError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(ClientError::Closed)
    }

    /// Subscribes the SUB socket to `topic`.
    pub(crate) async fn subscribe(&self, topic: &str) -> Result<(), ClientError> {
        self.current()?.subscribe(topic).await
    }

    /// Cancels a subscription of the SUB socket.
    pub(crate) async fn unsubscribe(&self, topic: &str) -> Result<(), ClientError> {
        self.current()?.unsubscribe(topic).await
    }
}

/// Session options over ZeroMQ (`--zmq`, `--zmq-sub`), and the SUB socket
/// each connection sets; `None` without --zmq.
pub(crate) fn zmq_session_options(
    args: &ZmqArgs,
    codec: Codec,
    timeout: Duration,
) -> anyhow::Result<Option<(SessionOptions, ZmqSub)>> {
    let (Some(req), Some(sub)) = (&args.zmq, &args.zmq_sub) else {
        return Ok(None);
    };
    let mut opts = SessionOptions::new([req.as_str()]).context("bad --zmq")?;
    opts.codec = codec;
    opts.call_timeout = timeout;
    opts.connect_timeout = timeout;
    let slot = ZmqSub::default();
    let set = slot.clone();
    let sub = sub.clone();
    let opts = opts.connect_with(move |addr: String| {
        let (set, sub) = (set.clone(), sub.clone());
        async move {
            let (conn, subscriber) = FrameConn::connect_zmq_with_sub(&addr, &sub, codec).await?;
            *set.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(subscriber);
            Ok(conn)
        }
    });
    Ok(Some((opts, slot)))
}

/// The help text (also printed for an unknown command).
pub(crate) const HELP: &str = "\
commands:
  login <name>                 log in (your name is also your private topic)
  logout                       log out
  users                        list users
  channels                     list channels
  create <channel>             create a channel
  sub <topic>                  subscribe to a channel (or user) topic
  unsub <topic>                unsubscribe
  pub <channel> <message...>   publish on a channel
  msg <user> <message...>      send a private message
  history <channel|@user> [limit] [before]
                               past events, oldest first
  clock                        show the local Lamport clock
  help                         this text
  quit                         leave";

/// The session options the tool arguments ask for: the addresses, the
/// codec, the call timeout, the transport (TLS with its trust settings).
pub(crate) fn session_options(
    addrs: &[String],
    codec: Codec,
    timeout: Duration,
    connector: &super::tls::Connector,
) -> anyhow::Result<SessionOptions> {
    let mut opts = SessionOptions::new(addrs).context("bad --addr")?;
    opts.codec = codec;
    opts.call_timeout = timeout;
    opts.connect_timeout = timeout;
    let connector = connector.clone();
    Ok(opts.connect_with(move |addr: String| {
        let connector = connector.clone();
        async move { connector.frames(&addr).await }
    }))
}

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `login <name>`
    Login(String),
    /// `logout`
    Logout,
    /// `users`
    Users,
    /// `channels`
    Channels,
    /// `create <channel>`
    Create(String),
    /// `sub <topic>`
    Sub(String),
    /// `unsub <topic>`
    Unsub(String),
    /// `pub <channel> <message...>`
    Pub(String, String),
    /// `msg <user> <message...>`
    Msg(String, String),
    /// `history <target> [limit] [before]`
    History(String, Option<u64>, Option<u64>),
    /// `clock`
    Clock,
    /// `help`
    Help,
    /// `quit`
    Quit,
    /// An empty line.
    Nothing,
}

/// Parses one line; `Err` says what is wrong.
pub(crate) fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim();
    let (cmd, rest) = match line.split_once(char::is_whitespace) {
        Some((c, r)) => (c, r.trim()),
        None => (line, ""),
    };
    let mut words = rest.split_whitespace();
    let one = |what: &str| -> Result<String, String> {
        let mut w = rest.split_whitespace();
        match (w.next(), w.next()) {
            (Some(x), None) => Ok(x.to_string()),
            _ => Err(format!("usage: {cmd} <{what}>")),
        }
    };
    let with_text = |what: &str| -> Result<(String, String), String> {
        match rest.split_once(char::is_whitespace) {
            Some((t, m)) if !m.trim().is_empty() => Ok((t.to_string(), m.trim().to_string())),
            _ => Err(format!("usage: {cmd} <{what}> <message...>")),
        }
    };
    Ok(match cmd.to_ascii_lowercase().as_str() {
        "" => Command::Nothing,
        "login" => Command::Login(one("name")?),
        "logout" => Command::Logout,
        "users" => Command::Users,
        "channels" => Command::Channels,
        "create" | "channel" => Command::Create(one("channel")?),
        "sub" | "subscribe" => Command::Sub(one("topic")?),
        "unsub" | "unsubscribe" => Command::Unsub(one("topic")?),
        "pub" | "publish" => {
            let (c, m) = with_text("channel")?;
            Command::Pub(c, m)
        }
        "msg" | "message" => {
            let (u, m) = with_text("user")?;
            Command::Msg(u, m)
        }
        "history" => {
            let usage = || "usage: history <channel|@user> [limit] [before]".to_string();
            let target = words.next().ok_or_else(usage)?.to_string();
            let num = |w: Option<&str>| -> Result<Option<u64>, String> {
                w.map(|w| w.parse::<u64>().map_err(|_| usage())).transpose()
            };
            let limit = num(words.next())?;
            let before = num(words.next())?;
            if words.next().is_some() {
                return Err(usage());
            }
            Command::History(target, limit, before)
        }
        "clock" => Command::Clock,
        "help" | "?" => Command::Help,
        "quit" | "exit" | "q" => Command::Quit,
        other => return Err(format!("unknown command {other:?}")),
    })
}

fn str_field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| v.get(*n).and_then(Value::as_str))
}

/// One line for a publication or private message (a push's data or a
/// history event); whatever is not recognised is shown as JSON.
pub(crate) fn format_event(topic: Option<&str>, data: &Value) -> String {
    let from = str_field(data, &["user", "src"]);
    let message = str_field(data, &["message"]);
    let channel = str_field(data, &["channel"]);
    let dst = str_field(data, &["dst"]);
    match (from, message) {
        (Some(from), Some(message)) => {
            let place = match (channel, dst) {
                (Some(c), _) => format!("#{c}"),
                (None, Some(d)) => format!("@{d}"),
                (None, None) => topic.map_or_else(String::new, |t| t.to_string()),
            };
            let seq = data
                .get("seq")
                .map(|s| format!(" seq={s}"))
                .unwrap_or_default();
            let clock = data
                .get("clock")
                .map(|c| format!(" clock={c}"))
                .unwrap_or_default();
            format!("[{place}] {from}: {message}  ({}{seq}{clock})", ts(data))
        }
        _ => match topic {
            Some(t) => format!("[{t}] {data}"),
            None => data.to_string(),
        },
    }
}

fn ts(data: &Value) -> String {
    match data.get("timestamp") {
        Some(Value::Number(n)) => format!("t={n}"),
        Some(Value::String(s)) => format!("t={s}"),
        _ => "t=?".into(),
    }
}

fn list(reply: &Value, key: &str) -> String {
    match reply.get(key).and_then(Value::as_array) {
        Some(items) if items.is_empty() => format!("no {key}"),
        Some(items) => {
            let names: Vec<String> = items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => str_field(other, &["name", "user", "channel"])
                        .map_or_else(|| other.to_string(), str::to_string),
                })
                .collect();
            format!("{key} ({}): {}", names.len(), names.join(", "))
        }
        None => reply.to_string(),
    }
}

/// What the client prints for `push`.
pub(crate) fn format_push(push: &IncomingPush) -> String {
    format!("<< {}", format_event(Some(&push.topic), &push.data))
}

/// Runs `corral client` until `quit` or end of input.
pub(crate) async fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::try_from_secs_f64(args.timeout).context("bad --timeout")?;
    let connector = args.tls.connector(super::tls::ClientTransport::Plain(
        corral::transport::Transport::Tcp,
    ))?;
    let (opts, zmq) = match zmq_session_options(&args.zmq, args.codec, timeout)? {
        Some((opts, sub)) => (opts, Some(sub)),
        None => (
            session_options(&args.addr, args.codec, timeout, &connector)?,
            None,
        ),
    };
    let session = ChatSession::new(opts);
    let node = session
        .connect()
        .await
        .with_context(|| format!("connecting to {}", session.addrs().join(",")))?;
    if let Some(mut pushes) = session.pushes() {
        tokio::spawn(async move {
            while let Some(p) = pushes.recv().await {
                println!("{}", format_push(&p));
            }
        });
    }
    println!(
        "connected to {node} ({}); type `help` for commands",
        args.codec
    );
    {
        // Says where the session went when its node goes away (at once,
        // not at the next command: pushes keep coming from the next node).
        let mut watch = session.watch_node();
        let session = session.clone();
        let mut on = Some(node);
        tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                let now = watch.borrow_and_update().clone();
                if let Some(now) = now.filter(|n| Some(n) != on.as_ref()) {
                    println!("now on node {now} (failover {})", session.failovers());
                    on = Some(now);
                }
            }
        });
    }
    let mut me: Option<String> = None;
    if let Some(user) = args.user.clone() {
        if !execute(&session, zmq.as_ref(), &mut me, Command::Login(user)).await {
            return Ok(ExitCode::FAILURE);
        }
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                eprintln!("error: reading stdin: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        match parse(&line) {
            Ok(Command::Quit) => break,
            Ok(cmd) => {
                if !execute(&session, zmq.as_ref(), &mut me, cmd).await {
                    return Ok(ExitCode::FAILURE);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                println!("{HELP}");
            }
        }
    }
    if me.is_some() {
        let _ = tokio::time::timeout(timeout, session.call("logout", json!({}))).await;
    }
    println!("bye");
    Ok(ExitCode::SUCCESS)
}

/// Prints a failed call; false when the session cannot go on (no node).
fn report(e: &SessionError) -> bool {
    eprintln!("error: {e}");
    !matches!(e, SessionError::AllNodesDown { .. })
}

/// Runs one command and prints its outcome; false when no node answers.
/// Over ZeroMQ (`zmq`), subscriptions go to the SUB socket, and a login
/// subscribes it to the user's name too, as the seeds' clients do.
async fn execute(
    session: &ChatSession,
    zmq: Option<&ZmqSub>,
    me: &mut Option<String>,
    cmd: Command,
) -> bool {
    if let Some(sub) = zmq {
        let done = match &cmd {
            Command::Sub(t) => Some((sub.subscribe(t).await, format!("subscribed to {t}"))),
            Command::Unsub(t) => Some((sub.unsubscribe(t).await, format!("unsubscribed from {t}"))),
            _ => None,
        };
        if let Some((result, said)) = done {
            match result {
                Ok(()) => println!("{said}"),
                Err(e) => eprintln!("error: {e}"),
            }
            return true;
        }
    }
    let need_login = |me: &Option<String>| -> Option<String> {
        if me.is_none() {
            eprintln!("error: log in first (login <name>)");
        }
        me.clone()
    };
    let (service, data, show): (&str, Value, fn(&Value) -> String) = match cmd {
        Command::Nothing => return true,
        Command::Quit => return true,
        Command::Help => {
            println!("{HELP}");
            return true;
        }
        Command::Clock => {
            println!("clock {}", session.clock().now());
            return true;
        }
        Command::Login(user) => {
            return match session.login(&user).await {
                Ok(_) => {
                    if let Some(sub) = zmq {
                        if let Err(e) = sub.subscribe(&user).await {
                            eprintln!("error: subscribing to {user}: {e}");
                        }
                    }
                    println!("logged in as {user}");
                    *me = Some(user);
                    true
                }
                Err(e) => report(&e),
            };
        }
        Command::Logout => {
            return match session.call("logout", json!({})).await {
                Ok(_) => {
                    println!("logged out");
                    *me = None;
                    true
                }
                Err(e) => report(&e),
            };
        }
        Command::Users => ("users", json!({}), |r| list(r, "users")),
        Command::Channels => ("channels", json!({}), |r| list(r, "channels")),
        Command::Create(c) => ("channel", json!({ "channel": c }), |r| {
            format!(
                "created channel {}",
                str_field(r, &["channel"]).unwrap_or("(ok)")
            )
        }),
        Command::Sub(t) => ("subscribe", json!({ "topic": t }), |r| {
            format!(
                "subscribed to {}",
                str_field(r, &["topic"]).unwrap_or("(ok)")
            )
        }),
        Command::Unsub(t) => ("unsubscribe", json!({ "topic": t }), |r| {
            format!(
                "unsubscribed from {}",
                str_field(r, &["topic"]).unwrap_or("(ok)")
            )
        }),
        Command::Pub(c, m) => {
            let Some(user) = need_login(me) else {
                return true;
            };
            (
                "publish",
                json!({"user": user, "channel": c, "message": m}),
                |r| format!("published {}", stamp(r)),
            )
        }
        Command::Msg(u, m) => {
            let Some(src) = need_login(me) else {
                return true;
            };
            (
                "message",
                json!({"src": src, "dst": u, "message": m}),
                |r| format!("sent {}", stamp(r)),
            )
        }
        Command::History(target, limit, before) => {
            let mut data = Map::new();
            // A channel or a user: which one is the server's to say, so the
            // name goes in as a channel unless it starts with '@'.
            match target.strip_prefix('@') {
                Some(user) => data.insert("user".into(), json!(user)),
                None => data.insert("channel".into(), json!(target)),
            };
            if let Some(l) = limit {
                data.insert("limit".into(), json!(l));
            }
            if let Some(b) = before {
                data.insert("before".into(), json!(b));
            }
            ("history", Value::Object(data), show_history)
        }
    };
    match session.call(service, data).await {
        Ok(reply) => {
            println!("{}", show(&reply));
            true
        }
        Err(e) => report(&e),
    }
}

fn stamp(r: &Value) -> String {
    let mut parts = Vec::new();
    for k in ["seq", "clock", "timestamp"] {
        if let Some(v) = r.get(k) {
            parts.push(format!("{k}={v}"));
        }
    }
    format!("({})", parts.join(" "))
}

fn show_history(r: &Value) -> String {
    let Some(events) = r
        .get("messages")
        .or_else(|| r.get("events"))
        .and_then(Value::as_array)
    else {
        return r.to_string();
    };
    if events.is_empty() {
        return "no events".into();
    }
    let mut out: Vec<String> = events.iter().map(|e| format_event(None, e)).collect();
    let rest: Map<String, Value> = r
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "messages" | "events" | "clock" | "timestamp")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if !rest.is_empty() {
        out.push(format!("({})", Value::Object(rest)));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("login bob"), Ok(Command::Login("bob".into())));
        assert_eq!(
            parse("pub general hello  world "),
            Ok(Command::Pub("general".into(), "hello  world".into()))
        );
        assert_eq!(
            parse("msg alice hi"),
            Ok(Command::Msg("alice".into(), "hi".into()))
        );
        assert_eq!(
            parse("history general 5"),
            Ok(Command::History("general".into(), Some(5), None))
        );
        assert!(parse("history general x").is_err());
        assert!(parse("login").is_err());
        assert!(parse("login a b").is_err());
        assert!(parse("pub general").is_err());
        assert!(parse("frobnicate").is_err());
        assert_eq!(parse("   "), Ok(Command::Nothing));
        assert_eq!(parse("QUIT"), Ok(Command::Quit));
    }

    #[test]
    fn formats_events_leniently() {
        let line = format_event(
            Some("general"),
            &json!({"user": "bob", "channel": "general", "message": "hi", "seq": 3, "clock": 9, "timestamp": 1}),
        );
        assert!(line.contains("[#general] bob: hi"), "{line}");
        assert!(line.contains("seq=3") && line.contains("clock=9"), "{line}");
        let line = format_event(None, &json!({"src": "a", "dst": "b", "message": "yo"}));
        assert!(line.contains("[@b] a: yo"), "{line}");
        let line = format_event(Some("t"), &json!({"weird": true}));
        assert_eq!(line, r#"[t] {"weird":true}"#);
        assert_eq!(
            list(&json!({"users": ["a", "b"]}), "users"),
            "users (2): a, b"
        );
        assert_eq!(list(&json!({"channels": []}), "channels"), "no channels");
    }
}
