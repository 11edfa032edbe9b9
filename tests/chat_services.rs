//! Every chat service and its errors, over a real connection, in JSON and in
//! MessagePack.

mod support {
    pub(crate) mod chat;
    pub(crate) mod error_code;
}

use corral::client::Codec;
use corral::supervisor::{ChildState, Supervisor};
use serde_json::json;
use support::chat::{ok, start, start_with};
use support::error_code::code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_sup_is_in_the_root_tree() {
    let n = start().await;
    let root = n.node.root();
    let children = root.which_children().await.expect("root answers");
    let chat = children
        .into_iter()
        .find(|c| c.id.as_deref() == Some("chat_sup"))
        .expect("chat_sup under the root");
    let ChildState::Running(cell) = chat.state else {
        panic!("chat_sup is not running")
    };
    let sup = Supervisor::from_cell(cell).expect("a supervisor");
    let ids: Vec<String> = sup
        .which_children()
        .await
        .expect("chat_sup answers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    assert_eq!(ids, ["chat_store", "chat_hub"]);
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_chat_has_no_services() {
    let n = start_with(|c| c.chat.enabled = false).await;
    let (c, _) = n.client(Codec::Json).await;
    assert_eq!(
        code(c.call("login", json!({"user": "ann"})).await),
        "UNKNOWN_SERVICE"
    );
    n.node.shutdown().await;
}

async fn every_service(codec: Codec) {
    let n = start().await;
    let (a, _pa) = n.client(codec).await;
    let (b, _pb) = n.client(codec).await;

    // Before login.
    assert_eq!(
        code(
            a.call("publish", json!({"channel": "room", "message": "hi"}))
                .await
        ),
        "BAD_REQUEST"
    );
    assert_eq!(code(a.call("logout", json!({})).await), "BAD_REQUEST");

    // login: names are checked; timestamps are kept.
    for bad in ["", "has space", "ü", "x".repeat(33).as_str(), "a/b"] {
        assert_eq!(
            code(a.call("login", json!({ "user": bad })).await),
            "BAD_REQUEST",
            "{bad:?}"
        );
    }
    assert_eq!(code(a.call("login", json!({})).await), "BAD_REQUEST");
    assert_eq!(
        code(a.call("login", json!({"user": 7})).await),
        "BAD_REQUEST"
    );
    let r = ok(&a, "login", json!({"user": "ann"})).await;
    assert_eq!(r["user"], "ann");
    assert_eq!(r["logins"].as_array().map(Vec::len), Some(1));
    assert!(r["timestamp"].as_u64().is_some_and(|t| t > 0));
    assert!(r["clock"].as_u64().is_some());
    let r = ok(&a, "logout", json!({})).await;
    assert_eq!(r["user"], "ann");
    let r = ok(&a, "login", json!({"user": "ann"})).await;
    assert_eq!(r["logins"].as_array().map(Vec::len), Some(2));
    ok(&b, "login", json!({"user": "bob"})).await;

    // users
    let r = ok(&a, "users", json!({})).await;
    assert_eq!(r["users"], json!(["ann", "bob"]));
    assert_eq!(r["status"], "OK");
    let details = r["details"].as_array().expect("details");
    assert_eq!(details.len(), 2);
    assert_eq!(details[0]["user"], "ann");
    assert_eq!(details[0]["online"], true);
    assert!(details[0]["last_login"].as_u64().is_some());
    assert_eq!(details[1]["user"], "bob");

    // channel / channels
    let r = ok(&a, "channel", json!({"channel": "room"})).await;
    assert_eq!(r["channel"], "room");
    assert_eq!(r["creator"], "ann");
    assert_eq!(
        code(b.call("channel", json!({"channel": "room"})).await),
        "CONFLICT"
    );
    assert_eq!(
        code(b.call("channel", json!({"channel": "r m"})).await),
        "BAD_REQUEST"
    );
    ok(&b, "channel", json!({"channel": "lobby"})).await;
    let r = ok(&b, "channels", json!({})).await;
    assert_eq!(r["channels"], json!(["lobby", "room"]));
    assert_eq!(r["details"][0]["channel"], "lobby");
    assert_eq!(r["details"][0]["creator"], "bob");
    assert_eq!(r["details"][1]["creator"], "ann");

    // subscribe / unsubscribe
    let r = ok(&b, "subscribe", json!({"topic": "room"})).await;
    assert_eq!(r["subscribed"], true);
    let r = ok(&b, "subscribe", json!({"topic": "room"})).await;
    assert_eq!(r["subscribed"], false);
    assert_eq!(
        code(b.call("subscribe", json!({"topic": "nowhere"})).await),
        "NOT_FOUND"
    );
    assert_eq!(code(b.call("subscribe", json!({})).await), "BAD_REQUEST");
    let r = ok(&b, "unsubscribe", json!({"topic": "room"})).await;
    assert_eq!(r["unsubscribed"], true);
    let r = ok(&b, "unsubscribe", json!({"topic": "room"})).await;
    assert_eq!(r["unsubscribed"], false);

    // publish
    let r = ok(
        &a,
        "publish",
        json!({"user": "ann", "channel": "room", "message": "hello"}),
    )
    .await;
    assert!(r["seq"].as_u64().is_some());
    assert_eq!(r["duplicate"], false);
    assert_eq!(
        code(
            a.call(
                "publish",
                json!({"user": "bob", "channel": "room", "message": "x"})
            )
            .await
        ),
        "BAD_REQUEST"
    );
    assert_eq!(
        code(
            a.call("publish", json!({"channel": "nowhere", "message": "x"}))
                .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            a.call(
                "publish",
                json!({"channel": "room", "message": "x".repeat(4097)})
            )
            .await
        ),
        "BAD_REQUEST"
    );
    assert_eq!(
        code(a.call("publish", json!({"channel": "room"})).await),
        "BAD_REQUEST"
    );

    // message
    let r = ok(
        &a,
        "message",
        json!({"src": "ann", "dst": "bob", "message": "psst"}),
    )
    .await;
    assert_eq!(r["dst"], "bob");
    assert_eq!(
        code(
            a.call("message", json!({"dst": "nobody", "message": "x"}))
                .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            a.call(
                "message",
                json!({"src": "bob", "dst": "bob", "message": "x"})
            )
            .await
        ),
        "BAD_REQUEST"
    );

    // history
    let r = ok(&b, "history", json!({"channel": "room"})).await;
    assert_eq!(r["messages"][0]["message"], "hello");
    assert_eq!(r["messages"][0]["user"], "ann");
    let r = ok(&b, "history", json!({"user": "bob"})).await;
    assert_eq!(r["messages"][0]["message"], "psst");
    assert_eq!(r["messages"][0]["src"], "ann");
    assert_eq!(
        code(b.call("history", json!({"user": "ann"})).await),
        "BAD_REQUEST"
    );
    assert_eq!(
        code(b.call("history", json!({"channel": "nowhere"})).await),
        "NOT_FOUND"
    );
    assert_eq!(code(b.call("history", json!({})).await), "BAD_REQUEST");
    assert_eq!(
        code(
            b.call("history", json!({"channel": "room", "limit": 0}))
                .await
        ),
        "BAD_REQUEST"
    );
    assert_eq!(
        code(
            b.call("history", json!({"channel": "room", "before": "x"}))
                .await
        ),
        "BAD_REQUEST"
    );
    assert_eq!(
        code(b.call("users", json!({"clock": -1})).await),
        "BAD_REQUEST"
    );
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_json() {
    every_service(Codec::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_msgpack() {
    every_service(Codec::MsgPack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_overloaded() {
    // A bucket of 3 that refills about once in ~3 hours: the 4th call is over.
    let n = start_with(|c| {
        c.chat.rate_per_second = 0.0001;
        c.chat.rate_burst = 3.0;
    })
    .await;
    let (a, _) = n.client(Codec::Json).await;
    for _ in 0..3 {
        ok(&a, "channels", json!({})).await;
    }
    assert_eq!(code(a.call("channels", json!({})).await), "OVERLOADED");
    // Another connection has a bucket of its own.
    let (b, _) = n.client(Codec::Json).await;
    ok(&b, "channels", json!({})).await;
    n.node.shutdown().await;
}

#[test]
fn chat_config_is_checked_and_names_the_key() {
    let mut c = corral::config::Config::embedded_default();
    assert!(c.chat.enabled);
    c.chat.rate_burst = 0.0;
    let e = c.validate().expect_err("refused");
    assert_eq!(e.key(), Some("chat.rate_burst"));
    let mut c = corral::config::Config::embedded_default();
    c.chat.history_default_limit = c.chat.history_max_limit + 1;
    let e = c.validate().expect_err("refused");
    assert_eq!(e.key(), Some("chat.history_default_limit"));
    let mut c = corral::config::Config::embedded_default();
    c.chat.max_message_bytes = 0;
    assert_eq!(
        c.validate().expect_err("refused").key(),
        Some("chat.max_message_bytes")
    );
}
