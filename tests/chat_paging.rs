//! Every list reply stays below the frame limit: `users` and `channels`
//! page with `limit` / `after` / `next`, `history` pages by `next_before`
//! even when its events are large.

mod support {
    pub(crate) mod chat;
}

use std::collections::BTreeSet;

use corral::chat::{ChannelRecord, Event, EventKind};
use corral::client::Codec;
use serde_json::{json, Value};
use support::chat::{ok, start, start_with};

/// Follows `next` from page to page, returning every entry of `field`.
async fn all_pages(c: &corral::client::Client, service: &str, field: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<Value> = None;
    for _ in 0..1000 {
        let mut q = json!({});
        if let Some(a) = &after {
            q["after"] = a.clone();
        }
        let page = ok(c, service, q).await;
        let entries = page[field].as_array().expect("a list").clone();
        assert!(!entries.is_empty() || page["next"].is_null());
        out.extend(entries);
        match &page["next"] {
            Value::Null => return out,
            next => after = Some(next.clone()),
        }
    }
    panic!("{service}: no end of pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_users_and_channels_page_below_the_frame_limit() {
    const N: usize = 10_000;
    // The test config's frame limit (config/test.toml).
    let n = start_with(|c| c.rpc.max_frame_bytes = 65536).await;
    let chat = n.node.chat().expect("chat").clone();
    let mut tasks = Vec::new();
    for i in 0..N {
        let store = chat.store().clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("user_{i:05}_with_a_long_name_");
            store.login(&name, 1).await.expect("login");
            store
                .create_channel(ChannelRecord {
                    channel: format!("chan_{i:05}_with_a_long_name_"),
                    creator: Some(name),
                    created: 1,
                    clock: 1,
                })
                .await
                .expect("channel");
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    for codec in [Codec::Json, Codec::MsgPack] {
        let (c, _) = n.client(codec).await;
        let users = all_pages(&c, "users", "users").await;
        let names: BTreeSet<&str> = users.iter().filter_map(Value::as_str).collect();
        assert_eq!(names.len(), N, "{codec:?}");
        assert_eq!(users.len(), N, "{codec:?}");
        // The details beside the names: one per name, in the same order.
        let details = all_pages(&c, "users", "details").await;
        let detailed: Vec<&Value> = details.iter().map(|d| &d["user"]).collect();
        assert_eq!(detailed, users.iter().collect::<Vec<_>>(), "{codec:?}");
        let channels = all_pages(&c, "channels", "channels").await;
        let names: BTreeSet<&str> = channels.iter().filter_map(Value::as_str).collect();
        assert_eq!(names.len(), N, "{codec:?}");
        let details = all_pages(&c, "channels", "details").await;
        let detailed: Vec<&Value> = details.iter().map(|d| &d["channel"]).collect();
        assert_eq!(detailed, channels.iter().collect::<Vec<_>>(), "{codec:?}");
        // A small page, by `limit`.
        let page = ok(&c, "users", json!({"limit": 3})).await;
        assert_eq!(page["users"].as_array().map(Vec::len), Some(3));
        assert_eq!(page["details"].as_array().map(Vec::len), Some(3));
        assert_eq!(page["next"], page["users"][2]);
        assert_eq!(page["next"], page["details"][2]["user"]);
    }
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_of_large_messages_pages_below_the_frame_limit() {
    const N: usize = 400;
    let n = start().await;
    let chat = n.node.chat().expect("chat").clone();
    chat.store().login("ann", 1).await.expect("login");
    chat.store()
        .create_channel(ChannelRecord {
            channel: "room".into(),
            creator: None,
            created: 1,
            clock: 1,
        })
        .await
        .expect("channel");
    // Each message at the 4096-byte limit, and escaped in JSON.
    let text = "\"".repeat(4096);
    for i in 0..N {
        chat.store()
            .append(Event {
                seq: 0,
                kind: EventKind::Publish,
                user: "ann".into(),
                target: "room".into(),
                message: text.clone(),
                timestamp: 1,
                clock: 1,
                client_id: Some(format!("m{i}")),
            })
            .await
            .expect("append");
    }
    for codec in [Codec::Json, Codec::MsgPack] {
        let (c, _) = n.client(codec).await;
        let mut seen = Vec::new();
        let mut before: Option<u64> = None;
        for _ in 0..N {
            let mut q = json!({"channel": "room", "limit": 500});
            if let Some(b) = before {
                q["before"] = json!(b);
            }
            let page = ok(&c, "history", q).await;
            let msgs = page["messages"].as_array().expect("messages");
            for m in msgs.iter().rev() {
                seen.push(m["seq"].as_u64().expect("seq"));
            }
            match page["next_before"].as_u64() {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        seen.reverse();
        assert_eq!(seen.len(), N, "{codec:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }
    n.node.shutdown().await;
}
