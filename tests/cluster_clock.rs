//! Berkeley clock synchronisation on a real three-server NATS JetStream
//! cluster: a member started with its clock 5 s ahead is brought in step
//! with the others (corrections on the wall clock, not the OS clock; the
//! offsets show in the registrations and the metrics), the chat stamps its
//! timestamps with the corrected clock, and garbage on the clock subjects,
//! requests or answers, is ignored with a log line.

mod support {
    pub(crate) mod cluster_member;
    pub(crate) mod log_lines;
    pub(crate) mod nats;
    pub(crate) mod wait;
}

use std::time::Duration;

use async_nats::jetstream;
use corral::chat::{Chat, ChatSettings};
use corral::clock::now_ms;
use corral::cluster::NodeFacts;
use corral::rpc::{push_channel, CallContext, Request};
use futures::StreamExt;
use serde_json::{json, Value};
use support::cluster_member::{settings, start, Member};
use support::log_lines::{logged, record};
use support::nats::NatsCluster;
use support::wait::wait_until;

/// How far apart the synchronised clocks may read (a correctness bound:
/// the error of a reading is within half its round trip on loopback).
const TOLERANCE_MS: i64 = 250;

/// The largest difference between the members' wall clocks, read together.
fn spread(ms: &[&Member]) -> i64 {
    let t: Vec<i64> = ms.iter().map(|m| m.wall.now_ms() as i64).collect();
    t.iter().max().unwrap_or(&0) - t.iter().min().unwrap_or(&0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berkeley_brings_a_skewed_clock_in_step() {
    record();
    let nats = NatsCluster::start(3);
    let a = start(&nats.url(0), &settings(nats.urls(), 0), "ca")
        .await
        .expect("ca");
    wait_until("ca registered", || a.members.is_primary()).await;
    let b = start(&nats.url(1), &settings(nats.urls(), 0), "cb")
        .await
        .expect("cb");
    let c = start(&nats.url(2), &settings(nats.urls(), 5_000), "cc")
        .await
        .expect("cc");
    wait_until("all three members", || a.members.len() == 3).await;
    // cc's clock runs 5 s ahead until a round corrects it (it cannot have
    // been corrected yet: its skew is set when clock_sync starts, so read
    // the skew rather than the time).
    assert_eq!(c.wall.skew_ms(), 5_000);
    let os = now_ms() as i64;
    assert!((c.wall.now_ms() as i64 - c.wall.correction_ms() - os - 5_000).abs() < 1_000);

    wait_until("the clocks agree", || {
        spread(&[&a, &b, &c]) <= TOLERANCE_MS && c.wall.correction_ms() < -3_000
    })
    .await;
    // Berkeley moves everyone to the average: cc back by about two thirds
    // of its skew, the others forward by about one third.
    let (ca, cb, cc) = (
        a.wall.correction_ms(),
        b.wall.correction_ms(),
        c.wall.correction_ms(),
    );
    assert!((cc - -3_333).abs() <= TOLERANCE_MS, "cc corrected by {cc}");
    assert!((ca - 1_667).abs() <= TOLERANCE_MS, "ca corrected by {ca}");
    assert!((cb - 1_667).abs() <= TOLERANCE_MS, "cb corrected by {cb}");
    // The OS clock is untouched: only the wall clock is corrected.
    assert_eq!(b.wall.skew_ms(), 0);
    // Further rounds keep them together.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = spread(&[&a, &b, &c]);
        assert!(s <= TOLERANCE_MS, "clocks {s} ms apart after converging");
    }
    // The offsets are in the registrations (everyone's view) and metrics.
    wait_until("cc's offset registered", || {
        a.members.member("cc").is_some_and(|m| m.offset_ms < -3_000)
    })
    .await;
    assert!(c.metrics.cluster_clock_offset.get() < -3.0);
    assert!(a.metrics.cluster_clock_offset.get() > 1.0);
    for m in [a, b, c] {
        drop((m.facts, m.client));
        m.sup.stop().await;
    }
}

/// Answers `subject` with `answer` to every request, forever.
async fn answer_with(client: async_nats::Client, subject: String, answer: &'static str) {
    let Ok(mut sub) = client.subscribe(subject).await else {
        return;
    };
    while let Some(msg) = sub.next().await {
        if let Some(to) = msg.reply {
            let _ = client.publish(to, answer.into()).await;
        }
    }
}

/// One request, tried again while nobody answers yet (the subscription
/// may not have reached every server of the cluster).
async fn ask(client: &async_nats::Client, subject: &str, body: String) -> Value {
    for _ in 0..200 {
        let reply = tokio::time::timeout(
            Duration::from_secs(20),
            client.request(subject.to_string(), body.clone().into()),
        )
        .await
        .expect("an answer within the guard");
        match reply {
            Ok(r) => return serde_json::from_slice(&r.payload).expect("a JSON answer"),
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("request to {subject}: {e}"),
        }
    }
    panic!("nobody answers on {subject}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_clock_subjects_is_ignored() {
    record();
    let mut nats = NatsCluster::start(3);
    let s = settings(nats.urls(), 0);
    let a = start(&nats.url(0), &s, "xa").await.expect("xa");
    wait_until("xa is primary", || a.members.is_primary()).await;
    let b = start(&nats.url(1), &s, "xb").await.expect("xb");
    wait_until("xa sees xb", || a.members.len() == 2).await;

    // Hostile requests on xb's clock subject: each refused with an error
    // answer and a log line; the clock does not move.
    let subject = "corral.cluster.corral_members.clock.xb";
    let before = b.wall.correction_ms();
    for (body, why) in [
        ("not json".to_string(), "not JSON"),
        (json!({"op": "explode"}).to_string(), "no known `op`"),
        (
            json!({"op": "adjust", "from": "mallory", "delta_ms": 100_000}).to_string(),
            "not the primary",
        ),
        (
            json!({"op": "adjust", "from": "xa", "delta_ms": "lots"}).to_string(),
            "integer `delta_ms`",
        ),
        (
            json!({"op": "adjust", "from": "xa", "delta_ms": 864_000_000_i64}).to_string(),
            "more than a day",
        ),
        (" ".repeat(5000), "more than a clock request"),
    ] {
        let v = ask(&a.client, subject, body.clone()).await;
        let err = v["error"].as_str().unwrap_or_default();
        assert!(err.contains(why), "{body:.40}: {v}");
    }
    assert!(logged(&[
        "message=ignoring a bad clock request",
        "node=xb",
        "why=not JSON"
    ]));
    assert!(
        (b.wall.correction_ms() - before).abs() < 1_000,
        "the clock moved"
    );
    // xb still answers.
    let v = ask(&a.client, subject, json!({"op": "read"}).to_string()).await;
    assert_eq!(v["node"], "xb");
    assert!(v["now_ms"].as_u64().is_some());

    // A member whose clock answers garbage: the primary leaves it out of
    // its rounds, with a log line, and goes on syncing the others.
    let fake = NodeFacts::new("xf");
    let kv = jetstream::new(a.client.clone())
        .get_key_value("corral_members")
        .await
        .expect("bucket");
    let client = a.client.clone();
    tokio::spawn(answer_with(
        client.clone(),
        "corral.cluster.corral_members.clock.xf".into(),
        "{\"node\": \"xf\", \"now_ms\": \"soon\"}",
    ));
    let renew = tokio::spawn(async move {
        loop {
            let reg = json!({"name": fake.name, "rank": 99, "rpc": null, "http": null,
                "started_ms": fake.started_ms, "heartbeat_ms": now_ms(), "offset_ms": 0,
                "instance": fake.instance});
            let _ = kv.put("xf", reg.to_string().into()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    wait_until("xf's garbage left out", || {
        logged(&[
            "message=clock reading left out",
            "node=xa",
            "member=xf",
            "why=answer without an integer now_ms",
        ])
    })
    .await;
    // Both actors still run; xb is still in step with xa.
    for m in [&a, &b] {
        assert_eq!(m.sup.which_children().await.expect("children").len(), 2);
    }
    wait_until("xa and xb agree", || spread(&[&a, &b]) <= TOLERANCE_MS).await;
    assert!(b.metrics.cluster_clock_offset.get().abs() < 1.0);
    // A NATS server (neither's) dies and comes back: with an expiry this
    // short, a leader election of the bucket may expire both (they then
    // register again); either way membership and clock sync recover.
    nats.kill(2);
    tokio::task::block_in_place(|| nats.restart(2));
    wait_until("both members again, one primary", || {
        a.members.len() == 3 && b.members.len() == 3 && a.members.primary() == b.members.primary()
    })
    .await;
    let v = ask(
        &b.client,
        "corral.cluster.corral_members.clock.xa",
        json!({"op": "read"}).to_string(),
    )
    .await;
    assert_eq!(v["node"], "xa");
    wait_until("xa and xb agree again", || {
        spread(&[&a, &b]) <= TOLERANCE_MS
    })
    .await;
    renew.abort();
    for m in [a, b] {
        drop(m.facts);
        m.sup.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_stamps_with_the_corrected_wall_clock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let chat = Chat::open(&ChatSettings::default(), dir.path(), None).expect("chat");
    // A correction of a day ahead, as clock synchronisation applies it.
    const DAY: i64 = 86_400_000;
    chat.wall_clock().adjust_ms(DAY);
    let (tx, _rx) = push_channel(8);
    let cx = CallContext::new(1, None, tx);
    let services = chat.services();
    let call = |service: &'static str, data: Value| {
        let s = services.get(service).expect("a chat service").clone();
        let cx = cx.clone();
        async move {
            s.call(Request::new(service, data), &cx)
                .await
                .expect(service)
        }
    };
    let login = call("login", json!({"user": "ann"})).await;
    call("channel", json!({"channel": "news"})).await;
    let publish = call("publish", json!({"channel": "news", "message": "hi"})).await;
    let history = call("history", json!({"channel": "news"})).await;
    let os = now_ms() as i64;
    let ahead = |v: &Value, what: &str| {
        let t = v.as_i64().unwrap_or_else(|| panic!("{what}: {v}"));
        assert!(
            (t - os - DAY).abs() < 60_000,
            "{what} {t} is not a day ahead of {os}"
        );
    };
    ahead(&login["timestamp"], "login reply");
    ahead(&login["created"], "user created");
    ahead(&publish["timestamp"], "publish reply");
    ahead(&history["messages"][0]["timestamp"], "stored event");
}
