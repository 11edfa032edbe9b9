//! The engine the cluster is built on, as this build's client sees it: a
//! real three-server NATS JetStream cluster (Debian's nats-server 2.9) and
//! async-nats 0.33 (the version that speaks to it): a replicated file
//! stream that goes on with one server killed, Nats-Msg-Id dedupe, and a KV bucket whose entries expire.

mod support {
    pub(crate) mod nats;
}

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use support::nats::NatsCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_stream_dedupes_by_message_id_and_kv_entries_expire() {
    let mut nats = NatsCluster::start(3);
    let addrs: Vec<async_nats::ServerAddr> = nats
        .urls()
        .iter()
        .map(|u| u.parse().expect("url"))
        .collect();
    let client = async_nats::connect(addrs).await.expect("connect");
    let js = jetstream::new(client);
    let s = js
        .get_or_create_stream(stream::Config {
            name: "ENGINE".into(),
            subjects: vec!["engine.log".into()],
            storage: stream::StorageType::File,
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .expect("an R3 stream");
    assert_eq!(s.cached_info().config.num_replicas, 3);

    // A new R3 stream answers once its leader is elected: until then a
    // publish is refused (StreamNotFound), which a retry with the same id
    // rides out.
    let publish = |id: &'static str| {
        let js = js.clone();
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let acked = js
                    .send_publish(
                        "engine.log",
                        jetstream::context::Publish::build()
                            .payload("hello".into())
                            .message_id(id),
                    )
                    .await
                    .expect("published")
                    .await;
                match acked {
                    Ok(ack) => break ack,
                    Err(e) if tokio::time::Instant::now() < deadline => {
                        eprintln!("publish {id}: {e}; again");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("publish {id} not acknowledged: {e}"),
                }
            }
        }
    };
    let first = publish("a").await;
    let again = publish("a").await;
    let other = publish("b").await;
    // One server of three down: a quorum remains, publishing goes on.
    nats.kill(2);
    let during = publish("c").await;
    nats.restart(2);
    assert!(!first.duplicate);
    assert!(!during.duplicate);
    assert!(again.duplicate, "same Nats-Msg-Id: a duplicate");
    assert_eq!(
        again.sequence, first.sequence,
        "acked with the first's sequence"
    );
    assert_eq!(other.sequence, first.sequence + 1);
    assert_eq!(during.sequence, other.sequence + 1);

    let bucket = js
        .create_key_value(kv::Config {
            bucket: "engine_members".into(),
            max_age: Duration::from_secs(1),
            num_replicas: 3,
            history: 1,
            ..Default::default()
        })
        .await
        .expect("a KV bucket on 2.9");
    bucket.put("n1", "hi".into()).await.expect("put");
    assert!(bucket.get("n1").await.expect("get").is_some());
    // Expired entries are gone (the guard is generous: a loaded machine).
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if bucket.get("n1").await.expect("get").is_none() {
            gone = true;
            break;
        }
    }
    assert!(gone, "a KV entry outlived its bucket's max_age by 9 s");
}
