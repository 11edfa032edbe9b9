//! One namespace rule for topics: a user's private stream is reachable only
//! by that user, whatever channels others create; and a user the config
//! gives a token logs in only with it.

mod support {
    pub(crate) mod chat;
    pub(crate) mod error_code;
}

use corral::client::Codec;
use corral::config::Config;
use corral::node::Node;
use serde_json::json;
use support::chat::{ok, start};
use support::error_code::code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_named_after_a_user_never_reaches_her_private_stream() {
    let n = start().await;
    let (ann, _) = n.client(Codec::Json).await;
    let (bob, mut bob_pushes) = n.client(Codec::Json).await;
    let (eve, mut eve_pushes) = n.client(Codec::MsgPack).await;
    ok(&ann, "login", json!({"user": "ann"})).await;
    ok(&bob, "login", json!({"user": "bob"})).await;
    ok(&eve, "login", json!({"user": "eve"})).await;
    ok(&ann, "channel", json!({"channel": "lobby"})).await;
    ok(&bob, "subscribe", json!({"topic": "lobby"})).await;
    ok(&eve, "subscribe", json!({"topic": "lobby"})).await;

    // Eve squats bob's name as a channel and subscribes to it; whatever the
    // node answers, nothing of bob's may reach her.
    let squat = eve.call("channel", json!({"channel": "bob"})).await;
    let _ = eve.call("subscribe", json!({"topic": "bob"})).await;
    ok(&ann, "message", json!({"dst": "bob", "message": "secret"})).await;
    // A publication on the squatted channel must not land in bob's stream.
    let _ = eve
        .call("publish", json!({"channel": "bob", "message": "spoof"}))
        .await;
    // A marker on a channel both follow: it is pushed after the above, so
    // it is the next push each gets when nothing leaked.
    ok(
        &ann,
        "publish",
        json!({"channel": "lobby", "message": "marker"}),
    )
    .await;

    let first = eve_pushes.recv().await.expect("a push for eve");
    assert_eq!(first.data["message"], "marker", "eve got {first:?}");
    let private = bob_pushes.recv().await.expect("a push for bob");
    assert_eq!(private.topic, "bob");
    assert_eq!(private.data["message"], "secret");
    assert_eq!(private.data["kind"], "message");
    let next = bob_pushes.recv().await.expect("a push for bob");
    assert_eq!(next.data["message"], "marker", "bob got {next:?}");

    // The rule: a name is a user's or a channel's, never both.
    assert_eq!(code(squat), "CONFLICT");
    assert_eq!(
        code(eve.call("subscribe", json!({"topic": "bob"})).await),
        "NOT_FOUND"
    );
    assert_eq!(
        code(ann.call("login", json!({"user": "lobby"})).await),
        "CONFLICT"
    );
    // Her own name is still eve's private stream.
    let own = ok(&eve, "subscribe", json!({"topic": "eve"})).await;
    assert_eq!(own["subscribed"], false);
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_a_configured_token_logs_in_only_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("node.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &file,
        format!(
            "[node]\ndata_dir = {data:?}\n\n\
             [[listener]]\nname = \"rpc\"\nprotocol = \"rpc\"\nport = 0\n\n\
             [chat.users]\nann = \"s3cret-token\"\n"
        ),
    )
    .expect("write config");
    let config = Config::load(Some(&file), None).expect("the config loads");
    let node = Node::start(config).await.expect("the node starts");
    let addr = node.local_addr("rpc").expect("bound");
    let c = corral::client::Client::connect(addr, Codec::Json)
        .await
        .expect("connects");
    assert_eq!(
        code(c.call("login", json!({"user": "ann"})).await),
        "BAD_REQUEST"
    );
    assert_eq!(
        code(
            c.call("login", json!({"user": "ann", "token": "guess"}))
                .await
        ),
        "BAD_REQUEST"
    );
    // Refused logins leave nobody logged in.
    assert_eq!(code(c.call("logout", json!({})).await), "BAD_REQUEST");
    let r = ok(&c, "login", json!({"user": "ann", "token": "s3cret-token"})).await;
    assert_eq!(r["user"], "ann");
    // A user without a token logs in as before.
    ok(&c, "login", json!({"user": "bob"})).await;
    // A configured user's name is hers even before her first login.
    assert_eq!(
        code(c.call("channel", json!({"channel": "ann"})).await),
        "CONFLICT"
    );
    node.shutdown().await;
}
