//! kill -9 of a corral node in a cluster: three real `corral serve`
//! processes (this build) on three real nats-server processes. A client
//! session over the three addresses publishes without a pause; the node it
//! is on is killed with SIGKILL; the session moves to the next node and
//! goes on; every acknowledged publication is in the history of the nodes
//! still up, once each; the killed node, started again on its data_dir
//! after a NATS server was killed and restarted too, catches up to the same
//! history.

mod support {
    pub(crate) mod nats;
}

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corral::client::{ChatSession, Client, Codec, SessionOptions};
use serde_json::{json, Value};
use support::nats::NatsCluster;

/// A guard against a hung test, not a measurement.
const GUARD: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `corral serve` as node `name`: its RPC listener on `port`, its data in
/// `dir`, clustered on `urls`; killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, name: &str, port: u16, urls: &[String]) -> Proc {
    std::fs::create_dir_all(dir).expect("dir");
    let conf = dir.join("corral.toml");
    std::fs::write(
        &conf,
        format!(
            "[[listener]]\nname = \"rpc\"\ntransport = \"tcp\"\nprotocol = \"rpc\"\n\
             address = \"127.0.0.1\"\nport = {port}\n"
        ),
    )
    .expect("config");
    let log = std::fs::File::create(dir.join("serve.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["serve", "--config"])
        .arg(&conf)
        .env("CORRAL__NODE__NAME", name)
        .env("CORRAL__NODE__DATA_DIR", dir.join("data"))
        .env("CORRAL__CLUSTER__ENABLED", "true")
        .env("CORRAL__CLUSTER__SERVERS", urls.join(","))
        .env("CORRAL__CLUSTER__CONNECT_TIMEOUT_MS", "1000")
        // No rate limit: the session publishes as fast as it is answered.
        .env("CORRAL__CHAT__RATE_PER_SECOND", "0")
        .env("CORRAL__LOG__LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("corral serve starts");
    Proc(child)
}

/// The nodes' logs (for a failure's message).
fn logs(root: &Path) -> String {
    let mut out = String::new();
    for n in ["k1", "k2", "k3"] {
        let log = std::fs::read_to_string(root.join(n).join("serve.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        out += &format!(
            "--- {n}\n{}\n",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    out
}

/// Polls `cond` until it holds; panics after [`GUARD`].
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + GUARD;
    while tokio::time::Instant::now() < end {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting until {what}");
}

/// Every message of `channel` on the node at `addr`, oldest first, with
/// its seq (None while the node does not answer).
async fn history(addr: &str, channel: &str) -> Option<Vec<(u64, String)>> {
    let c = Client::connect(addr, Codec::Json).await.ok()?;
    let mut all = Vec::new();
    let mut before = Value::Null;
    loop {
        let h = c
            .call(
                "history",
                json!({ "channel": channel, "limit": 500, "before": before }),
            )
            .await
            .ok()?;
        let page: Vec<(u64, String)> = h["messages"]
            .as_array()?
            .iter()
            .filter_map(|e| Some((e["seq"].as_u64()?, e["message"].as_str()?.to_owned())))
            .collect();
        all.splice(0..0, page);
        before = h["next_before"].clone();
        if before.is_null() {
            return Some(all);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_acknowledged_write_and_catches_up() {
    let mut nats = NatsCluster::start(3);
    let root = tempfile::tempdir().expect("temp dir");
    let names = ["k1", "k2", "k3"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut procs: Vec<Option<Proc>> = names
        .iter()
        .zip(&ports)
        .map(|(n, p)| Some(serve(&root.path().join(n), n, *p, &nats.urls())))
        .collect();

    let session = ChatSession::new(SessionOptions::new(&addrs).expect("addresses"));
    eventually("a node takes the login", || async {
        session.login("alice").await.is_ok()
    })
    .await;
    eventually("the channel exists", || async {
        session
            .call("channel", json!({"channel": "room"}))
            .await
            .is_ok()
            || session.call("channels", json!({})).await.is_ok_and(|c| {
                c["channels"]
                    .as_array()
                    .is_some_and(|l| l.contains(&json!("room")))
            })
    })
    .await;

    let mut acked = Vec::new();
    let mut killed = None;
    for i in 0..400 {
        let text = format!("m{i}");
        let r = tokio::time::timeout(GUARD, session.publish("room", &text))
            .await
            .expect("a publish hung")
            .unwrap_or_else(|e| panic!("publish {i} failed: {e}\n{}", logs(root.path())));
        assert!(r["seq"].as_u64().is_some(), "{r}");
        acked.push(text);
        if i == 150 {
            // SIGKILL the node the session is on, mid-stream.
            let on = session.node().expect("on a node");
            let k = addrs.iter().position(|a| *a == on).expect("one of ours");
            drop(procs[k].take());
            killed = Some(k);
        }
    }
    let k = killed.expect("a node was killed");
    assert!(session.failovers() >= 1, "the session never moved");
    assert_ne!(session.node().as_deref(), Some(addrs[k].as_str()));

    // Every acknowledged publication, once, on every node still up, in
    // one order (the same seqs).
    let live: Vec<&String> = (0..3).filter(|&i| i != k).map(|i| &addrs[i]).collect();
    let mut reference = None;
    for a in &live {
        eventually(
            &format!("{a} has every acknowledged publication"),
            || async {
                history(a, "room")
                    .await
                    .is_some_and(|h| h.len() == acked.len())
            },
        )
        .await;
        let h = history(a, "room").await.expect("history");
        let texts: Vec<&String> = h.iter().map(|(_, m)| m).collect();
        let want: Vec<&String> = acked.iter().collect();
        assert_eq!(texts, want, "{a}: each acknowledged once, in order");
        match &reference {
            None => reference = Some(h),
            Some(r) => assert_eq!(&h, r, "{a} differs"),
        }
    }

    // The killed node, started again on its data_dir (and after a NATS
    // server was killed and restarted meanwhile), catches up.
    nats.kill(0);
    nats.restart(0);
    procs[k] = Some(serve(
        &root.path().join(names[k]),
        names[k],
        ports[k],
        &nats.urls(),
    ));
    let reference = reference.expect("a reference history");
    eventually(
        &format!("{} catches up after kill -9", names[k]),
        || async { history(&addrs[k], "room").await.as_ref() == Some(&reference) },
    )
    .await;
}
