//! The Lamport clock rule (never backwards: no wrap, none across restarts),
//! history order and pagination, idempotent retries.

mod support {
    pub(crate) mod chat;
    pub(crate) mod error_code;
    pub(crate) mod serve;
}

use corral::client::{Client, Codec};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use serde_json::{json, Value};
use support::chat::{ok, start};
use support::error_code::code;
use support::serve::Serve;

fn clock(v: &Value) -> u64 {
    v["clock"].as_u64().expect("clock in data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_rule() {
    let n = start().await;
    let (c, _) = n.client(Codec::Json).await;
    // Without a clock: each reply's clock is later than the previous one.
    let a = clock(&ok(&c, "channels", json!({})).await);
    let b = clock(&ok(&c, "channels", json!({})).await);
    assert!(b > a);
    // A request from the future: reply clock = max(local, received) + 1 (receive)
    // + 1 (send), with no concurrent traffic on this node.
    let r = ok(&c, "channels", json!({"clock": 1000})).await;
    assert_eq!(clock(&r), 1002);
    // A request from the past does not move the clock back.
    let r = ok(&c, "channels", json!({"clock": 5})).await;
    assert_eq!(clock(&r), 1004);
    assert_eq!(n.node.chat().expect("chat").clock().now(), 1004);
    // The event keeps its receive clock; the push carries a later send clock.
    let (s, mut sp) = n.client(Codec::Json).await;
    ok(&c, "login", json!({"user": "ann", "clock": 2000})).await; // 2001, 2002
    ok(&c, "channel", json!({"channel": "room"})).await; // 2003, 2004
    ok(&s, "subscribe", json!({"topic": "room"})).await; // 2005, 2006
    let r = ok(
        &c,
        "publish",
        json!({"channel": "room", "message": "x", "clock": 3000}),
    )
    .await;
    let push = sp.recv().await.expect("push");
    assert_eq!(push.data["event_clock"].as_u64(), Some(3001));
    assert_eq!(push.data["clock"].as_u64(), Some(3002));
    assert_eq!(clock(&r), 3003);
    let h = ok(&s, "history", json!({"channel": "room"})).await;
    assert_eq!(h["messages"][0]["clock"].as_u64(), Some(3001));
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_ordered_and_paginated_by_seq() {
    let n = start().await;
    let (c, _) = n.client(Codec::MsgPack).await;
    ok(&c, "login", json!({"user": "ann"})).await;
    ok(&c, "channel", json!({"channel": "room"})).await;
    ok(&c, "channel", json!({"channel": "other"})).await;
    let mut seqs = Vec::new();
    for i in 0..25 {
        let r = ok(
            &c,
            "publish",
            json!({"channel": "room", "message": format!("m{i}")}),
        )
        .await;
        seqs.push(r["seq"].as_u64().expect("seq"));
        // Interleaved events of another channel do not show in "room".
        ok(
            &c,
            "publish",
            json!({"channel": "other", "message": "noise"}),
        )
        .await;
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    // Pages of 10 from the newest back: 15..25, 5..15, 0..5.
    let mut got = Vec::new();
    let mut before: Option<u64> = None;
    let mut pages = 0;
    loop {
        let mut q = json!({"channel": "room", "limit": 10});
        if let Some(b) = before {
            q["before"] = json!(b);
        }
        let page = ok(&c, "history", q).await;
        pages += 1;
        let msgs = page["messages"].as_array().expect("messages").clone();
        let page_seqs: Vec<u64> = msgs.iter().filter_map(|m| m["seq"].as_u64()).collect();
        assert!(
            page_seqs.windows(2).all(|w| w[0] < w[1]),
            "ascending in a page"
        );
        for m in msgs.iter().rev() {
            got.push(m["message"].as_str().expect("text").to_owned());
        }
        match page["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    got.reverse();
    let want: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    assert_eq!(pages, 3);
    // The default limit applies when none is given; a large one is capped.
    let all = ok(
        &c,
        "history",
        json!({"channel": "room", "limit": 1_000_000}),
    )
    .await;
    assert_eq!(all["messages"].as_array().map(Vec::len), Some(25));
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_writes_are_stored_once() {
    let n = start().await;
    let (c, _) = n.client(Codec::Json).await;
    let (s, mut sp) = n.client(Codec::Json).await;
    ok(&c, "login", json!({"user": "ann"})).await;
    ok(&s, "login", json!({"user": "bob"})).await;
    ok(&c, "channel", json!({"channel": "room"})).await;
    ok(&s, "subscribe", json!({"topic": "room"})).await;
    let first = ok(
        &c,
        "publish",
        json!({"channel": "room", "message": "once", "client_id": "c-1"}),
    )
    .await;
    let again = ok(
        &c,
        "publish",
        json!({"channel": "room", "message": "once", "client_id": "c-1"}),
    )
    .await;
    assert_eq!(first["seq"], again["seq"]);
    assert_eq!(first["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    // msg_id is the same thing; numbers are accepted.
    let m1 = ok(
        &c,
        "message",
        json!({"dst": "bob", "message": "pm", "msg_id": 42}),
    )
    .await;
    let m2 = ok(
        &c,
        "message",
        json!({"dst": "bob", "message": "pm", "msg_id": 42}),
    )
    .await;
    assert_eq!(m1["seq"], m2["seq"]);
    assert_eq!(m2["duplicate"], true);
    // Another sender may use the same id.
    let other = ok(
        &s,
        "message",
        json!({"dst": "ann", "message": "pm", "msg_id": 42}),
    )
    .await;
    assert_ne!(other["seq"], m1["seq"]);
    assert_eq!(
        code(
            c.call(
                "publish",
                json!({"channel": "room", "message": "x", "client_id": ""})
            )
            .await
        ),
        "BAD_REQUEST"
    );
    assert_eq!(
        code(
            c.call(
                "publish",
                json!({"channel": "room", "message": "x", "client_id": [1]})
            )
            .await
        ),
        "BAD_REQUEST"
    );
    let h = ok(&s, "history", json!({"channel": "room"})).await;
    assert_eq!(h["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(h["messages"][0]["client_id"], "c-1");
    let h = ok(&s, "history", json!({"user": "bob"})).await;
    assert_eq!(h["messages"].as_array().map(Vec::len), Some(2));
    // The subscriber got the publication once: the next push is a later one.
    assert_eq!(sp.recv().await.expect("push").data["message"], "once");
    assert_eq!(sp.recv().await.expect("push").data["message"], "pm");
    ok(&c, "publish", json!({"channel": "room", "message": "next"})).await;
    assert_eq!(sp.recv().await.expect("push").data["message"], "next");
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_clock_is_refused_and_the_clock_never_wraps() {
    let n = start().await;
    let (c, _) = n.client(Codec::MsgPack).await;
    let before = clock(&ok(&c, "channels", json!({})).await);
    let r = c.call("channels", json!({"clock": u64::MAX})).await;
    // Whatever the answer, no later reply goes back in time.
    let high = match &r {
        Ok(v) => clock(v),
        Err(_) => before,
    };
    let after = clock(&ok(&c, "channels", json!({})).await);
    assert!(after > high, "{after} after {high}");
    assert_eq!(code(r), "BAD_REQUEST");
    // The bound: 2^53 - 1 (the largest integer JavaScript holds exactly).
    assert_eq!(
        code(c.call("channels", json!({"clock": 1u64 << 53})).await),
        "BAD_REQUEST"
    );
    let max = (1u64 << 53) - 1;
    let r = ok(&c, "channels", json!({"clock": max})).await;
    assert_eq!(clock(&r), max + 2);
    // A client echoing the node's own clock is not refused.
    let echo = ok(&c, "channels", json!({"clock": max + 2})).await;
    assert_eq!(clock(&echo), max + 4);
    n.node.shutdown().await;
}

fn config_on(dir: &std::path::Path) -> Config {
    let mut c = Config::embedded_default();
    let mut l = ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c.node.data_dir = dir.to_path_buf();
    c
}

/// Starts a node on `dir`, retrying while the previous one lets go of the
/// store (a guard, not a measurement).
async fn node_on(dir: &std::path::Path) -> Node {
    for _ in 0..600 {
        if let Ok(n) = Node::start(config_on(dir)).await {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the node did not start on {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_resumes_above_what_it_gave_after_a_clean_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node_on(dir.path()).await;
    let addr = node.local_addr("rpc").expect("bound");
    let c = Client::connect(addr, Codec::Json).await.expect("connects");
    ok(&c, "login", json!({"user": "ann"})).await;
    ok(&c, "channel", json!({"channel": "room"})).await;
    let p = ok(
        &c,
        "publish",
        json!({"channel": "room", "message": "x", "clock": 600}),
    )
    .await;
    // Requests that store nothing still advance the clock.
    let mut last = clock(&p);
    for _ in 0..5 {
        last = clock(&ok(&c, "channels", json!({})).await);
    }
    drop(c);
    node.shutdown().await;

    let node = node_on(dir.path()).await;
    let addr = node.local_addr("rpc").expect("bound");
    let c = Client::connect(addr, Codec::Json).await.expect("connects");
    let r = ok(&c, "channels", json!({})).await;
    assert!(clock(&r) > last, "{} after {last}", clock(&r));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_resumes_above_the_stored_events_after_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("a UTF-8 temporary path");
    let stored = {
        let node = Serve::start(&[("CORRAL__NODE__DATA_DIR", data)]);
        let addr = node.listening("rpc");
        let c = Client::connect(addr, Codec::Json).await.expect("connects");
        ok(&c, "login", json!({"user": "ann"})).await;
        ok(&c, "channel", json!({"channel": "room"})).await;
        for i in 0..3 {
            ok(
                &c,
                "publish",
                json!({"channel": "room", "message": format!("m{i}"), "clock": 600}),
            )
            .await;
        }
        let h = ok(&c, "history", json!({"channel": "room"})).await;
        h["messages"][2]["clock"].as_u64().expect("clock")
        // Dropping the node kills it (SIGKILL).
    };
    let node = Serve::start(&[("CORRAL__NODE__DATA_DIR", data)]);
    let addr = node.listening("rpc");
    let c = Client::connect(addr, Codec::Json).await.expect("connects");
    ok(&c, "login", json!({"user": "ann"})).await;
    ok(
        &c,
        "publish",
        json!({"channel": "room", "message": "after"}),
    )
    .await;
    let h = ok(&c, "history", json!({"channel": "room"})).await;
    let after = h["messages"][3]["clock"].as_u64().expect("clock");
    assert!(after > stored, "event clock {after} after {stored}");
}
