//! `corral client` and `corral bot` as a user runs them, stdin piped, against
//! a node in this process. Two kinds of node: one with only the built-in
//! services (what a node without chat answers: UNKNOWN_SERVICE, printed
//! clearly), and one with the real chat services over a store in a
//! temporary data_dir, to drive the client's and the bots' whole flow.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use tokio::io::AsyncWriteExt;

const GUARD: Duration = Duration::from_secs(60);

fn config() -> Config {
    let mut c = Config::embedded_default();
    // No chat unless a test asks for it, with its own data_dir: no store
    // under ./data shared by tests.
    c.chat.enabled = false;
    let mut l = ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c
}

/// A node without the chat services.
async fn node() -> (Node, SocketAddr) {
    let node = Node::builder(config()).start().await.expect("node starts");
    let addr = node.local_addr("rpc").expect("rpc address");
    (node, addr)
}

/// A node with the real chat services, storing under `data_dir`.
async fn real_chat_node(data_dir: &Path) -> (Node, SocketAddr) {
    let mut c = config();
    c.chat.enabled = true;
    c.node.data_dir = data_dir.to_path_buf();
    let node = Node::builder(c).start().await.expect("node starts");
    let addr = node.local_addr("rpc").expect("rpc address");
    (node, addr)
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `corral <args>` with `input` on stdin (then closed unless `keep_open`
/// is set, in which case it stays open until the process exits).
async fn run(args: &[&str], input: &str) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn corral");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("write stdin");
    drop(stdin);
    let out = tokio::time::timeout(GUARD, child.wait_with_output())
        .await
        .expect("corral exits in time")
        .expect("wait");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn quit_help_and_unknown_commands() {
    let (node, addr) = node().await;
    let addr = addr.to_string();
    let out = run(
        &["client", "--addr", &addr],
        "help\nfrobnicate now\npub general\n\nclock\nquit\nusers\n",
    )
    .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("connected to"), "{}", out.stdout);
    assert!(out.stdout.contains("login <name>"), "help: {}", out.stdout);
    assert!(
        out.stderr.contains("unknown command \"frobnicate\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("usage: pub <channel> <message...>"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("clock 0"), "{}", out.stdout);
    assert!(out.stdout.trim_end().ends_with("bye"), "{}", out.stdout);
    // Nothing after quit ran.
    assert!(!out.stderr.contains("UNKNOWN_SERVICE"), "{}", out.stderr);

    // End of input is a quit too.
    let out = run(&["client", "--addr", &addr], "help\n").await;
    assert_eq!(out.code, Some(0));
    node.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_printed() {
    let (node, addr) = node().await;
    let addr = addr.to_string();
    for codec in ["json", "msgpack"] {
        let out = run(
            &["client", "--addr", &addr, "--codec", codec],
            "login bob\nusers\npub general hi\nmsg alice hi\nquit\n",
        )
        .await;
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("error: UNKNOWN_SERVICE"),
            "{}",
            out.stderr
        );
        assert_eq!(
            out.stderr.matches("UNKNOWN_SERVICE").count(),
            2,
            "{}",
            out.stderr
        );
        assert_eq!(
            out.stderr.matches("log in first").count(),
            2,
            "{}",
            out.stderr
        );
        assert!(!out.stdout.contains("logged in"), "{}", out.stdout);
    }
    node.shutdown().await;
}

#[tokio::test]
async fn cannot_connect_is_an_error() {
    // A port nobody listens on (bound, then released).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    let out = run(&["client", "--addr", &addr], "quit\n").await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("connecting to"), "{}", out.stderr);
}

#[tokio::test]
async fn whole_flow_with_pushes_against_the_real_chat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, addr) = real_chat_node(dir.path()).await;
    let addr = addr.to_string();
    // alice subscribes to general and stays a while; bob publishes and
    // sends alice a private message.
    let alice = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral"))
                .args(["client", "--addr", &addr, "--user", "alice"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(b"create general\nsub general\n")
                .await
                .expect("write");
            // Stay subscribed until both pushes can have arrived.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            stdin.write_all(b"clock\nquit\n").await.expect("write");
            drop(stdin);
            tokio::time::timeout(GUARD, child.wait_with_output())
                .await
                .expect("in time")
                .expect("wait")
        })
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let bob = run(
        &["client", "--addr", &addr, "--codec", "msgpack"],
        "login bob\nusers\nchannels\npub general hello everyone\nmsg alice psst\ncreate general\nhistory general 5\nquit\n",
    )
    .await;
    assert_eq!(bob.code, Some(0), "{}{}", bob.stdout, bob.stderr);
    assert!(bob.stdout.contains("logged in as bob"), "{}", bob.stdout);
    assert!(
        bob.stdout.contains("users (2): alice, bob"),
        "{}",
        bob.stdout
    );
    assert!(
        bob.stdout.contains("channels (1): general"),
        "{}",
        bob.stdout
    );
    assert!(bob.stdout.contains("published (seq="), "{}", bob.stdout);
    assert!(bob.stdout.contains("sent (seq="), "{}", bob.stdout);
    assert!(
        bob.stderr.contains("error: CONFLICT") && bob.stderr.contains("general"),
        "{}",
        bob.stderr
    );
    assert!(
        bob.stdout.contains("hello everyone"),
        "history: {}",
        bob.stdout
    );

    let alice = alice.await.expect("alice task");
    let stdout = String::from_utf8_lossy(&alice.stdout);
    assert_eq!(alice.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("logged in as alice"), "{stdout}");
    assert!(stdout.contains("created channel general"), "{stdout}");
    assert!(stdout.contains("subscribed to general"), "{stdout}");
    assert!(
        stdout.contains("<< [#general] bob: hello everyone"),
        "{stdout}"
    );
    assert!(stdout.contains("<< [@alice] bob: psst"), "{stdout}");
    // Alice's clock saw the server's clock in pushes: past bob's sends.
    let clock: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("clock "))
        .and_then(|c| c.trim().parse().ok())
        .expect("a clock line");
    assert!(clock > 6, "alice's clock {clock}\n{stdout}");
    node.shutdown().await;
}

#[tokio::test]
async fn bots_without_chat_services_report_errors() {
    let (node, addr) = node().await;
    let addr = addr.to_string();
    let out = bots(&addr, 2, "0.6", "0.1").await;
    // Nothing could be sent: exit 1, and the summary says why.
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("total: 0 messages sent"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("login: UNKNOWN_SERVICE"),
        "{}",
        out.stdout
    );
    node.shutdown().await;
}

/// The bots and the interactive client against the real chat services (a
/// store in a temporary data_dir): every message the bots report sent is in
/// the channel's history.
#[tokio::test]
async fn bots_and_client_against_the_real_chat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, addr) = real_chat_node(dir.path()).await;
    let addr = addr.to_string();
    // While the bots run: how many connections follow `general` (the bots
    // subscribe to the channel they talk in, as the seeds' bots do).
    let hub = node.chat().expect("chat").hub().clone();
    let watching = tokio::spawn(async move {
        let mut most = 0;
        for _ in 0..40 {
            most = most.max(hub.subscribers("general"));
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        most
    });
    let out = bots(&addr, 2, "1.5", "0.2").await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        watching.await.expect("watcher"),
        2,
        "subscribers of general"
    );
    let sent = summary_count(&out.stdout, ", 0 errors, 2 bots");
    assert!(sent >= 20, "{}", out.stdout);
    // One summary line per bot, named bot_XXXXX.
    let bots = out.stdout.lines().filter(|l| l.starts_with("bot_")).count();
    assert_eq!(bots, 2, "{}", out.stdout);
    let client = corral::client::Client::connect(addr.as_str(), corral::client::Codec::Json)
        .await
        .expect("connects");
    let h = client
        .call(
            "history",
            serde_json::json!({"channel": "general", "limit": 500}),
        )
        .await
        .expect("history");
    let stored = h["messages"].as_array().map_or(0, Vec::len) as u64;
    // Every message is one of the seeds' texts, verbatim.
    const SEED_TEXTS: [&str; 10] = [
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
    for m in h["messages"].as_array().into_iter().flatten() {
        let text = m["message"].as_str().unwrap_or_default();
        assert!(SEED_TEXTS.contains(&text), "not a seed text: {m}");
    }
    // Nothing acknowledged is lost; one publish per bot may have been stored
    // without its acknowledgement being counted when the duration ended.
    assert!(
        sent <= stored && stored <= sent + 2,
        "sent {sent}, stored {stored}"
    );

    // The interactive client sees the same channel.
    let out = run(
        &["client", "--addr", &addr, "--user", "ada"],
        "channels\nhistory general 3\nquit\n",
    )
    .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("general"), "{}", out.stdout);
    node.shutdown().await;
}

/// Runs `corral bot` with `count` bots for `duration` seconds, pausing
/// `pause` seconds between rounds.
async fn bots(addr: &str, count: u32, duration: &str, pause: &str) -> Output {
    let count = count.to_string();
    run(
        &[
            "bot",
            "--count",
            &count,
            "--addr",
            addr,
            "--duration",
            duration,
            "--pause",
            pause,
        ],
        "",
    )
    .await
}

/// The count in the bots' summary line (`total: N messages sent, ...`),
/// which must end as `tail` says.
fn summary_count(stdout: &str, tail: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("total: "))
        .unwrap_or_else(|| panic!("a summary line in {stdout}"));
    assert!(line.contains(tail), "{line}");
    line.trim_start_matches("total: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {line}"))
}
