//! Everything acknowledged survives kill -9 of a real `corral serve`.

mod support {
    pub(crate) mod serve;
}

use std::path::Path;
use std::sync::Arc;
use support::serve::Serve;

use corral::client::{Client, Codec};
use serde_json::json;

fn serve(data_dir: &Path) -> Serve {
    let dir = data_dir.to_str().expect("a UTF-8 temporary path");
    Serve::start(&[("CORRAL__NODE__DATA_DIR", dir)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publications_survive_kill_9() {
    const N: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = serve(dir.path());
    let addr = node.listening("rpc");
    let c = Arc::new(Client::connect(addr, Codec::Json).await.expect("connects"));
    c.call("login", json!({"user": "ann"}))
        .await
        .expect("login");
    c.call("channel", json!({"channel": "room"}))
        .await
        .expect("channel");
    // Concurrent publishes (pipelined on one connection, and a second one):
    // group commit serves many at once.
    let c2 = Arc::new(
        Client::connect(addr, Codec::MsgPack)
            .await
            .expect("connects"),
    );
    c2.call("login", json!({"user": "bob"}))
        .await
        .expect("login");
    let mut tasks = Vec::new();
    for i in 0..N {
        let c = if i % 2 == 0 { c.clone() } else { c2.clone() };
        tasks.push(tokio::spawn(async move {
            c.call(
                "publish",
                json!({"channel": "room", "message": format!("m{i}"), "client_id": format!("id{i}")}),
            )
            .await
        }));
    }
    for t in tasks {
        let r = t.await.expect("join").expect("acknowledged");
        assert_eq!(r["duplicate"], false);
    }
    // A private message too.
    c.call("message", json!({"dst": "bob", "message": "pm"}))
        .await
        .expect("message");
    // kill -9, right after the last acknowledgement.
    node.child.kill().expect("SIGKILL");
    node.child.wait().expect("reaped");
    drop(c);
    drop(c2);

    let node = serve(dir.path());
    let addr = node.listening("rpc");
    let c = Client::connect(addr, Codec::Json).await.expect("connects");
    let h = c
        .call("history", json!({"channel": "room", "limit": 500}))
        .await
        .expect("history");
    let msgs = h["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), N);
    let mut texts: Vec<String> = msgs
        .iter()
        .filter_map(|m| m["message"].as_str().map(str::to_owned))
        .collect();
    texts.sort();
    let mut want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(texts, want);
    let seqs: Vec<u64> = msgs.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    // Users, channels and private messages are there too; a retry after the
    // restart is still recognised.
    let users = c.call("users", json!({})).await.expect("users");
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2));
    let chans = c.call("channels", json!({})).await.expect("channels");
    assert_eq!(chans["channels"], json!(["room"]));
    c.call("login", json!({"user": "bob"}))
        .await
        .expect("login");
    let pm = c
        .call("history", json!({"user": "bob"}))
        .await
        .expect("history");
    assert_eq!(pm["messages"][0]["message"], "pm");
    let retry = c
        .call(
            "publish",
            json!({"channel": "room", "message": "m1", "client_id": "id1"}),
        )
        .await
        .expect("retry");
    assert_eq!(retry["duplicate"], true);
}
