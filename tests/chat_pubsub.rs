//! Pushes to several subscribers, the slow-subscriber policy, private
//! messages, clean-up of closed connections.

mod support {
    pub(crate) mod chat;
}

use corral::client::Codec;
use serde_json::json;
use support::chat::{ok, start, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_reaches_every_subscriber_in_order() {
    let n = start().await;
    let (publisher, _) = n.client(Codec::Json).await;
    ok(&publisher, "login", json!({"user": "pub"})).await;
    ok(&publisher, "channel", json!({"channel": "room"})).await;
    let mut subs = Vec::new();
    for i in 0..5 {
        let codec = if i % 2 == 0 {
            Codec::Json
        } else {
            Codec::MsgPack
        };
        let (c, p) = n.client(codec).await;
        ok(&c, "subscribe", json!({"topic": "room"})).await;
        subs.push((c, p));
    }
    let (other, mut other_pushes) = n.client(Codec::Json).await;
    ok(&other, "channel", json!({"channel": "elsewhere"})).await;
    ok(&other, "subscribe", json!({"topic": "elsewhere"})).await;
    let mut seqs = Vec::new();
    for i in 0..10 {
        let r = ok(
            &publisher,
            "publish",
            json!({"user": "pub", "channel": "room", "message": format!("m{i}")}),
        )
        .await;
        seqs.push(r["seq"].as_u64().expect("seq"));
    }
    for (_, p) in &mut subs {
        for (i, seq) in seqs.iter().enumerate() {
            let push = p.recv().await.expect("a push");
            assert_eq!(push.topic, "room");
            assert_eq!(push.data["kind"], "publish");
            assert_eq!(push.data["message"], format!("m{i}"));
            assert_eq!(push.data["seq"].as_u64(), Some(*seq));
            assert_eq!(push.data["user"], "pub");
            assert!(push.data["clock"].as_u64() > push.data["event_clock"].as_u64());
            assert!(push.data["timestamp"].as_u64().is_some());
        }
    }
    // A marker on the other channel: its subscriber got nothing from "room".
    ok(&other, "login", json!({"user": "oth"})).await;
    ok(
        &other,
        "publish",
        json!({"channel": "elsewhere", "message": "marker"}),
    )
    .await;
    let first = other_pushes.recv().await.expect("push");
    assert_eq!(first.topic, "elsewhere");
    assert_eq!(first.data["message"], "marker");
    // After unsubscribe, nothing more (checked with a marker on a topic still held).
    let (c0, p0) = &mut subs[0];
    ok(c0, "unsubscribe", json!({"topic": "room"})).await;
    ok(c0, "subscribe", json!({"topic": "elsewhere"})).await;
    ok(
        &publisher,
        "publish",
        json!({"channel": "room", "message": "after"}),
    )
    .await;
    ok(
        &other,
        "publish",
        json!({"channel": "elsewhere", "message": "marker2"}),
    )
    .await;
    let got = p0.recv().await.expect("push");
    assert_eq!(got.data["message"], "marker2");
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_go_to_the_recipients_connections() {
    let n = start().await;
    let (ann, mut ann_p) = n.client(Codec::Json).await;
    let (bob1, mut bob1_p) = n.client(Codec::Json).await;
    let (bob2, mut bob2_p) = n.client(Codec::MsgPack).await;
    ok(&ann, "login", json!({"user": "ann"})).await;
    ok(&bob1, "login", json!({"user": "bob"})).await;
    ok(&bob2, "login", json!({"user": "bob"})).await;
    let r = ok(
        &ann,
        "message",
        json!({"src": "ann", "dst": "bob", "message": "hi bob"}),
    )
    .await;
    let seq = r["seq"].as_u64();
    for p in [&mut bob1_p, &mut bob2_p] {
        let push = p.recv().await.expect("push");
        assert_eq!(push.topic, "bob");
        assert_eq!(push.data["kind"], "message");
        assert_eq!(push.data["src"], "ann");
        assert_eq!(push.data["dst"], "bob");
        assert_eq!(push.data["message"], "hi bob");
        assert_eq!(push.data["seq"].as_u64(), seq);
    }
    // A reply the other way: ann gets it, and nothing came to ann before.
    ok(&bob1, "message", json!({"dst": "ann", "message": "hi ann"})).await;
    let push = ann_p.recv().await.expect("push");
    assert_eq!(push.data["message"], "hi ann");
    // After logout, bob1 no longer gets bob's messages; bob2 does.
    ok(&bob1, "logout", json!({})).await;
    ok(&ann, "message", json!({"dst": "bob", "message": "two"})).await;
    assert_eq!(bob2_p.recv().await.expect("push").data["message"], "two");
    ok(&bob1, "login", json!({"user": "bob"})).await;
    ok(&ann, "message", json!({"dst": "bob", "message": "three"})).await;
    assert_eq!(bob1_p.recv().await.expect("push").data["message"], "three");
    n.node.shutdown().await;
}

/// A subscriber that never reads fills its queue; pushes beyond it are
/// dropped for it and counted, while a reading subscriber and the publisher
/// carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_drops_and_never_blocks_others() {
    let n = start().await;
    let hub = n.node.chat().expect("chat").hub().clone();
    let metrics = n.node.metrics().clone();
    let (publisher, _) = n.client(Codec::Json).await;
    ok(&publisher, "login", json!({"user": "pub"})).await;
    ok(&publisher, "channel", json!({"channel": "room"})).await;
    // The slow subscriber: a queue of 4 that is never read.
    let (slow_tx, slow_rx) = corral::rpc::push_channel(4);
    hub.subscribe(u64::MAX, &slow_tx, "room");
    let (fast, mut fast_p) = n.client(Codec::Json).await;
    ok(&fast, "subscribe", json!({"topic": "room"})).await;
    let total = 200;
    let dropped_before = metrics.chat_pushes_dropped.get();
    for i in 0..total {
        ok(
            &publisher,
            "publish",
            json!({"channel": "room", "message": format!("{i}")}),
        )
        .await;
        // The fast subscriber reads as it goes and misses nothing.
        let p = fast_p.recv().await.expect("push");
        assert_eq!(p.data["message"], format!("{i}"));
    }
    assert_eq!(slow_rx.len(), 4);
    assert_eq!(
        metrics.chat_pushes_dropped.get() - dropped_before,
        (total - 4) as u64
    );
    assert!(metrics
        .render()
        .contains("corral_chat_pushes_dropped_total"));
    assert!(metrics
        .render()
        .contains("corral_chat_messages_total{kind=\"publish\"} 200"));
    // A closed subscriber is removed from its topics.
    drop(slow_rx);
    ok(
        &publisher,
        "publish",
        json!({"channel": "room", "message": "last"}),
    )
    .await;
    fast_p.recv().await.expect("push");
    assert_eq!(hub.subscribers("room"), 1);
    drop(fast);
    drop(fast_p);
    n.node.shutdown().await;
}

/// Publishes pipelined from several connections share group commits; every
/// subscriber still gets every acknowledged publication once, in `seq` order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_publishes_are_pushed_once_each_in_seq_order() {
    let n = start_with(|c| c.chat.rate_per_second = 0.0).await;
    let (admin, _) = n.client(Codec::Json).await;
    ok(&admin, "login", json!({"user": "admin"})).await;
    ok(&admin, "channel", json!({"channel": "busy"})).await;
    let mut subs = Vec::new();
    for codec in [Codec::Json, Codec::MsgPack] {
        let (c, p) = n.client(codec).await;
        ok(&c, "subscribe", json!({"topic": "busy"})).await;
        subs.push((c, p));
    }
    let (per_conn, conns) = (100usize, 4usize);
    let mut publishers = Vec::new();
    for i in 0..conns {
        let (c, _) = n.client(Codec::Json).await;
        ok(&c, "login", json!({"user": format!("pub{i}")})).await;
        publishers.push(std::sync::Arc::new(c));
    }
    let calls = publishers.iter().enumerate().flat_map(|(i, c)| {
        (0..per_conn).map(move |j| {
            let c = c.clone();
            async move {
                let data = json!({"channel": "busy", "message": format!("{i}-{j}")});
                ok(&c, "publish", data).await["seq"].as_u64().expect("seq")
            }
        })
    });
    let mut acked: Vec<u64> = futures::future::join_all(calls).await;
    acked.sort_unstable();
    let total = per_conn * conns;
    assert_eq!(acked.len(), total);
    assert!(
        n.node.chat().expect("chat").store().commits() < total as u64,
        "publishes share commits"
    );
    for (_, p) in &mut subs {
        let mut seen = Vec::with_capacity(total);
        for _ in 0..total {
            let push = tokio::time::timeout(std::time::Duration::from_secs(10), p.recv())
                .await
                .expect("a push within 10 s")
                .expect("a push");
            seen.push(push.data["seq"].as_u64().expect("seq"));
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in seq order");
        assert_eq!(seen, acked);
    }
    n.node.shutdown().await;
}
