//! `chat_hub`: topics -> subscribed connections, and each connection's chat
//! session (logged-in user, rate limit bucket).
//!
//! A subscriber is a connection's push sender (from
//! [`CallContext::pushes`](crate::rpc::CallContext::pushes)), which feeds the
//! connection's bounded push queue (`[rpc] push_queue`, 8192 pushes
//! by default).
//!
//! # Overflow policy
//!
//! Fan-out never waits: each push is offered with `try_send`. When a
//! subscriber's queue is full, the push is dropped for that subscriber only
//! and counted in `corral_chat_pushes_dropped_total`; the subscriber can
//! catch up with `history` (every event has a `seq`, so a gap is visible).
//! Other subscribers and the publisher are never slowed. A subscriber whose
//! connection has closed is removed, with its session, as soon as the
//! connection goes (a watcher task waits for its push channel to close).
//!
//! # Topics
//!
//! A [`Topic`] is a channel's publications or a user's private stream, and
//! the two never mix, even under one name: subscribing to the channel
//! `bob` never reaches the private stream of the user `bob`, and a
//! publication on it never lands there. Only `login` subscribes a
//! connection to its user's private stream. On the wire a push's `topic`
//! stays the bare name (the seeds' shape); its `kind` tells a publication
//! from a private message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::metrics::Metrics;
use crate::rpc::{Push, PushError, PushSender, Pushes};

/// What a connection subscribes to: a channel, or a user's private stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// The publications on a channel.
    Channel(String),
    /// The private messages to a user.
    Private(String),
}

impl Topic {
    /// The name, as the push's `topic` on the wire.
    pub fn name(&self) -> &str {
        match self {
            Topic::Channel(n) | Topic::Private(n) => n,
        }
    }
}

/// One connection's chat session.
#[derive(Debug)]
struct Session {
    pushes: PushSender,
    user: Option<String>,
    topics: BTreeSet<Topic>,
    /// Prefix subscriptions (ZeroMQ SUB peers), each with its count.
    prefixes: BTreeMap<Vec<u8>, u32>,
    tokens: f64,
    refilled: Instant,
}

#[derive(Debug, Default)]
struct State {
    topics: HashMap<Topic, HashMap<u64, PushSender>>,
    /// Prefix -> connections subscribed by that prefix (see
    /// [`Hub::subscribe_prefix`]); empty unless ZeroMQ SUB peers are
    /// connected, and then looked up once per prefix of a topic's name.
    prefixes: HashMap<Vec<u8>, HashMap<u64, PrefixSub>>,
    sessions: HashMap<u64, Session>,
}

/// A connection subscribed by prefix.
#[derive(Debug, Clone)]
struct PrefixSub {
    pushes: PushSender,
    /// Whether users' private streams reach it too, not only channels.
    private: bool,
}

/// Most distinct prefixes one connection may subscribe by.
#[cfg_attr(not(feature = "zmq"), allow(dead_code))]
pub(crate) const MAX_PREFIXES: usize = 1024;

/// What a fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Subscribers the push was queued for.
    pub delivered: usize,
    /// Subscribers whose queue was full (the push was dropped for them).
    pub dropped: usize,
}

/// The hub's figures at one moment ([`Hub::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Connections with a chat session.
    pub sessions: usize,
    /// Users logged in on at least one connection.
    pub users_online: usize,
    /// Topics with at least one subscriber.
    pub topics: usize,
    /// Subscriptions: (connection, topic) pairs and prefix subscriptions.
    pub subscriptions: usize,
    /// Pushes queued for all sessions together.
    pub queued_total: usize,
    /// The deepest push queues, deepest first.
    pub deepest: Vec<QueueDepth>,
    /// The topics with the most subscribers, and how many, most first.
    pub busiest: Vec<(Topic, usize)>,
}

/// One session's push queue ([`HubStats::deepest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueDepth {
    /// The connection's number in the hub.
    pub connection: u64,
    /// Its logged-in user, if any.
    pub user: Option<String>,
    /// Pushes waiting in its queue.
    pub queued: usize,
    /// The most its queue holds.
    pub limit: usize,
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    state: Arc<Mutex<State>>,
    metrics: Option<Arc<Metrics>>,
    rate_per_second: f64,
    burst: f64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub whose connections may each make `rate_per_second` requests a
    /// second on average, in bursts of up to `burst` (0 disables the limit).
    pub fn new(metrics: Option<Arc<Metrics>>, rate_per_second: f64, burst: f64) -> Hub {
        Hub {
            state: Arc::new(Mutex::new(State::default())),
            metrics,
            rate_per_second,
            burst,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session of connection `conn`, created on first use (with a task
    /// that removes it when the connection's push channel closes).
    fn session<'a>(&self, st: &'a mut State, conn: u64, pushes: &PushSender) -> &'a mut Session {
        st.sessions.entry(conn).or_insert_with(|| {
            let hub = self.clone();
            let watched = pushes.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    watched.closed().await;
                    hub.remove_connection(conn);
                });
            }
            Session {
                pushes: pushes.clone(),
                user: None,
                topics: BTreeSet::new(),
                prefixes: BTreeMap::new(),
                tokens: self.burst,
                refilled: Instant::now(),
            }
        })
    }

    /// Takes one token from connection `conn`'s bucket; false when it is
    /// over its rate limit.
    pub fn admit(&self, conn: u64, pushes: &PushSender) -> bool {
        if self.rate_per_second <= 0.0 {
            return true;
        }
        let (rate, burst) = (self.rate_per_second, self.burst.max(1.0));
        let mut st = self.lock();
        let s = self.session(&mut st, conn, pushes);
        let now = Instant::now();
        let elapsed = now.duration_since(s.refilled).as_secs_f64();
        s.refilled = now;
        s.tokens = (s.tokens + elapsed * rate).min(burst);
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The user logged in on connection `conn`.
    pub fn user_of(&self, conn: u64) -> Option<String> {
        self.lock().sessions.get(&conn).and_then(|s| s.user.clone())
    }

    /// Logs `user` in on connection `conn` and subscribes the connection to
    /// the user's own topic (private messages). A previous user of the
    /// connection is logged out first.
    pub fn login(&self, conn: u64, pushes: &PushSender, user: &str) {
        let previous = self.user_of(conn);
        if let Some(p) = previous {
            self.logout(conn, &p);
        }
        let mut st = self.lock();
        let s = self.session(&mut st, conn, pushes);
        s.user = Some(user.to_owned());
        let topic = Topic::Private(user.to_owned());
        s.topics.insert(topic.clone());
        let tx = s.pushes.clone();
        st.topics.entry(topic).or_default().insert(conn, tx);
    }

    /// Logs the user of connection `conn` out; returns who it was.
    pub fn logout_conn(&self, conn: u64) -> Option<String> {
        let user = self.user_of(conn)?;
        self.logout(conn, &user);
        Some(user)
    }

    fn logout(&self, conn: u64, user: &str) {
        let mut st = self.lock();
        let topic = Topic::Private(user.to_owned());
        if let Some(s) = st.sessions.get_mut(&conn) {
            s.user = None;
            s.topics.remove(&topic);
        }
        remove_sub(&mut st, &topic, conn);
    }

    /// The hub's figures now (one pass under its lock): sessions, users,
    /// subscriptions, the `deepest` push queues and the `deepest` busiest
    /// topics.
    pub fn stats(&self, deepest: usize) -> HubStats {
        let st = self.lock();
        let mut queues: Vec<QueueDepth> = st
            .sessions
            .iter()
            .map(|(conn, s)| QueueDepth {
                connection: *conn,
                user: s.user.clone(),
                queued: s.pushes.queued(),
                limit: s.pushes.limit(),
            })
            .collect();
        let online: BTreeSet<&str> = st
            .sessions
            .values()
            .filter_map(|s| s.user.as_deref())
            .collect();
        let subscriptions = st.sessions.values().map(|s| s.topics.len()).sum::<usize>()
            + st.prefixes.values().map(HashMap::len).sum::<usize>();
        let queued_total = queues.iter().map(|q| q.queued).sum();
        queues.sort_by(|a, b| {
            b.queued
                .cmp(&a.queued)
                .then(a.connection.cmp(&b.connection))
        });
        queues.truncate(deepest);
        let mut busiest: Vec<(Topic, usize)> = st
            .topics
            .iter()
            .map(|(t, subs)| (t.clone(), subs.len()))
            .collect();
        busiest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        busiest.truncate(deepest);
        HubStats {
            sessions: st.sessions.len(),
            users_online: online.len(),
            topics: st.topics.len(),
            subscriptions,
            queued_total,
            deepest: queues,
            busiest,
        }
    }

    /// Users logged in on at least one connection.
    pub fn online(&self) -> BTreeSet<String> {
        self.lock()
            .sessions
            .values()
            .filter_map(|s| s.user.clone())
            .collect()
    }

    /// Subscribes connection `conn` to channel `channel`; false if it
    /// already was.
    pub fn subscribe(&self, conn: u64, pushes: &PushSender, channel: &str) -> bool {
        self.subscribe_to(conn, pushes, Topic::Channel(channel.to_owned()))
    }

    /// Subscribes connection `conn` to `topic`; false if it already was.
    /// (The service lets a connection reach a private stream only through
    /// `login`.)
    pub fn subscribe_to(&self, conn: u64, pushes: &PushSender, topic: Topic) -> bool {
        let mut st = self.lock();
        let s = self.session(&mut st, conn, pushes);
        let new = s.topics.insert(topic.clone());
        let tx = s.pushes.clone();
        st.topics.entry(topic).or_default().insert(conn, tx);
        new
    }

    /// Unsubscribes connection `conn` from channel `channel`; false if it
    /// was not subscribed.
    pub fn unsubscribe(&self, conn: u64, channel: &str) -> bool {
        self.unsubscribe_from(conn, &Topic::Channel(channel.to_owned()))
    }

    /// Unsubscribes connection `conn` from `topic`; false if it was not.
    pub fn unsubscribe_from(&self, conn: u64, topic: &Topic) -> bool {
        let mut st = self.lock();
        let was = st
            .sessions
            .get_mut(&conn)
            .map(|s| s.topics.remove(topic))
            .unwrap_or(false);
        remove_sub(&mut st, topic, conn);
        was
    }

    /// Subscribes connection `conn` to every topic whose name starts with
    /// `prefix`, as a ZeroMQ SUB socket subscribes (the empty prefix is
    /// everything): channels' publications, and users' private messages
    /// too when `private`. Subscriptions are counted, as ZeroMQ counts
    /// them: a prefix subscribed twice needs two cancels. A connection's
    /// pushes come once however many of its prefixes match. A prefix
    /// longer than any name is accepted and never matches (nothing is
    /// kept for it). False, and nothing changed, when the connection holds
    /// [`MAX_PREFIXES`] distinct prefixes already.
    #[cfg_attr(not(feature = "zmq"), allow(dead_code))]
    pub(crate) fn subscribe_prefix(
        &self,
        conn: u64,
        pushes: &PushSender,
        prefix: &[u8],
        private: bool,
    ) -> bool {
        if prefix.len() > super::services::MAX_NAME_LEN {
            return true;
        }
        let mut st = self.lock();
        let s = self.session(&mut st, conn, pushes);
        if !s.prefixes.contains_key(prefix) && s.prefixes.len() >= MAX_PREFIXES {
            return false;
        }
        *s.prefixes.entry(prefix.to_vec()).or_insert(0) += 1;
        let sub = PrefixSub {
            pushes: s.pushes.clone(),
            private,
        };
        st.prefixes
            .entry(prefix.to_vec())
            .or_default()
            .insert(conn, sub);
        true
    }

    /// Cancels one subscription of connection `conn` by `prefix` (see
    /// [`Hub::subscribe_prefix`]); false if it had none.
    #[cfg_attr(not(feature = "zmq"), allow(dead_code))]
    pub(crate) fn unsubscribe_prefix(&self, conn: u64, prefix: &[u8]) -> bool {
        let mut st = self.lock();
        let Some(s) = st.sessions.get_mut(&conn) else {
            return false;
        };
        let Some(n) = s.prefixes.get_mut(prefix) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            s.prefixes.remove(prefix);
            remove_prefix_sub(&mut st, prefix, conn);
        }
        true
    }

    /// Topics connection `conn` is subscribed to.
    pub fn topics_of(&self, conn: u64) -> Vec<Topic> {
        self.lock()
            .sessions
            .get(&conn)
            .map(|s| s.topics.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of connections subscribed to channel `channel`.
    pub fn subscribers(&self, channel: &str) -> usize {
        self.subscribers_of(&Topic::Channel(channel.to_owned()))
    }

    /// Number of connections subscribed to `topic`.
    pub fn subscribers_of(&self, topic: &Topic) -> usize {
        self.lock().topics.get(topic).map_or(0, HashMap::len)
    }

    /// Forgets connection `conn`: its session and subscriptions.
    pub fn remove_connection(&self, conn: u64) {
        let mut st = self.lock();
        if let Some(s) = st.sessions.remove(&conn) {
            for t in &s.topics {
                remove_sub(&mut st, t, conn);
            }
            for p in s.prefixes.keys() {
                remove_prefix_sub(&mut st, p, conn);
            }
        }
    }

    /// Offers `push` to every subscriber of the channel its topic names,
    /// without waiting (see the module's overflow policy).
    pub fn publish(&self, push: Push) -> Delivery {
        self.publish_batch(vec![push])
    }

    /// Offers each push to the subscribers of the channel its topic names
    /// (see [`Hub::publish_to`]).
    pub fn publish_batch(&self, pushes: Vec<Push>) -> Delivery {
        self.publish_to(
            pushes
                .into_iter()
                .map(|p| (Topic::Channel(p.topic().to_owned()), p))
                .collect(),
        )
    }

    /// Offers each push to the subscribers of its topic without waiting,
    /// in order. A subscriber gets all of its pushes of the batch in one
    /// queue operation, or, when its queue has no room for them all, none.
    pub fn publish_to(&self, pushes: Vec<(Topic, Push)>) -> Delivery {
        // Group by topic, keeping the order within each topic.
        let mut by_topic: HashMap<Topic, Vec<Push>> = HashMap::new();
        for (t, p) in pushes {
            by_topic.entry(t).or_default().push(p);
        }
        let mut d = Delivery::default();
        let mut closed = Vec::new();
        {
            // try_send never waits, so offering under the lock is cheap and
            // saves cloning every sender.
            let st = self.lock();
            // Prefix subscribers (ZeroMQ) get the same batches; kept aside
            // only when there are any.
            let mut by_prefix = Vec::new();
            for (topic, batch) in by_topic {
                if !st.prefixes.is_empty() {
                    by_prefix.push((topic.clone(), batch.clone()));
                }
                let Some(subs) = st.topics.get(&topic) else {
                    continue;
                };
                let n = batch.len();
                let batch = if n == 1 {
                    batch.into_iter().next().map(Pushes::from)
                } else {
                    Some(Pushes::batch(batch.into()))
                };
                let Some(batch) = batch else { continue };
                for (conn, tx) in subs {
                    offer(tx, &batch, n, *conn, &mut d, &mut closed);
                }
            }
            if !st.prefixes.is_empty() {
                for (topic, batch) in &by_prefix {
                    deliver_by_prefix(&st, topic, batch, &mut d, &mut closed);
                }
            }
        }
        for conn in closed {
            self.remove_connection(conn);
        }
        if let Some(m) = &self.metrics {
            m.chat_pushes_delivered.inc_by(d.delivered as u64);
            m.chat_pushes_dropped.inc_by(d.dropped as u64);
        }
        d
    }
}

/// Offers `batch` (of `n` pushes) to one subscriber.
fn offer(
    tx: &PushSender,
    batch: &Pushes,
    n: usize,
    conn: u64,
    d: &mut Delivery,
    closed: &mut Vec<u64>,
) {
    match tx.try_send(batch.clone()) {
        Ok(()) => d.delivered += n,
        Err(PushError::Full) => d.dropped += n,
        Err(PushError::Closed) => closed.push(conn),
    }
}

/// Offers `batch`, the pushes on `topic`, to the connections subscribed
/// by a prefix of its name, once each.
fn deliver_by_prefix(
    st: &State,
    topic: &Topic,
    batch: &[Push],
    d: &mut Delivery,
    closed: &mut Vec<u64>,
) {
    let name = topic.name().as_bytes();
    let private = matches!(topic, Topic::Private(_));
    let mut seen: Vec<u64> = Vec::new();
    let mut pushes: Option<Pushes> = None;
    for end in 0..=name.len() {
        let Some(subs) = st.prefixes.get(&name[..end]) else {
            continue;
        };
        for (conn, sub) in subs {
            if (private && !sub.private) || seen.contains(conn) {
                continue;
            }
            seen.push(*conn);
            let p = pushes.get_or_insert_with(|| match batch {
                [one] => Pushes::from(one.clone()),
                many => Pushes::batch(many.into()),
            });
            offer(&sub.pushes, p, batch.len(), *conn, d, closed);
        }
    }
}

fn remove_prefix_sub(st: &mut State, prefix: &[u8], conn: u64) {
    if let Some(m) = st.prefixes.get_mut(prefix) {
        m.remove(&conn);
        if m.is_empty() {
            st.prefixes.remove(prefix);
        }
    }
}

fn remove_sub(st: &mut State, topic: &Topic, conn: u64) {
    if let Some(m) = st.topics.get_mut(topic) {
        m.remove(&conn);
        if m.is_empty() {
            st.topics.remove(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn full_queue_drops_for_that_subscriber_only() {
        let hub = Hub::new(None, 0.0, 0.0);
        let (slow_tx, mut slow_rx) = crate::rpc::push::channel(1);
        let (fast_tx, mut fast_rx) = crate::rpc::push::channel(16);
        hub.subscribe(1, &slow_tx, "room");
        hub.subscribe(2, &fast_tx, "room");
        for i in 0..3 {
            hub.publish(Push::new("room", json!({ "i": i })));
        }
        for i in 0..3 {
            assert_eq!(first_data(fast_rx.recv().await), Some(json!({ "i": i })));
        }
        assert_eq!(first_data(slow_rx.recv().await), Some(json!({ "i": 0 })));
        assert!(slow_rx.is_empty());
        drop(slow_rx);
        let d = hub.publish(Push::new("room", json!({})));
        assert_eq!(d.delivered, 1);
        assert_eq!(hub.subscribers("room"), 1);
    }

    #[tokio::test]
    async fn prefix_subscribers_get_each_matching_push_once() {
        let hub = Hub::new(None, 0.0, 0.0);
        let (all_tx, mut all_rx) = crate::rpc::push::channel(64);
        let (gen_tx, mut gen_rx) = crate::rpc::push::channel(64);
        let (ann_tx, mut ann_rx) = crate::rpc::push::channel(64);
        // Everything, channels only.
        assert!(hub.subscribe_prefix(1, &all_tx, b"", false));
        // "gen" and "general": one copy of a push on "general".
        assert!(hub.subscribe_prefix(2, &gen_tx, b"gen", false));
        assert!(hub.subscribe_prefix(2, &gen_tx, b"general", false));
        // A user's name, private messages included (the seeds' SUB).
        assert!(hub.subscribe_prefix(3, &ann_tx, b"ann", true));
        let d = hub.publish_to(vec![
            (
                Topic::Channel("general".into()),
                Push::new("general", json!(1)),
            ),
            (Topic::Private("ann".into()), Push::new("ann", json!(2))),
            (Topic::Channel("other".into()), Push::new("other", json!(3))),
        ]);
        assert_eq!(d.delivered, 4, "{d:?}");
        let mut all = Vec::new();
        while !all_rx.is_empty() {
            let p = all_rx.recv().await.expect("a batch");
            all.extend(p.iter().map(|p| p.data().clone()));
        }
        all.sort_by_key(|v| v.as_u64());
        assert_eq!(
            all,
            vec![json!(1), json!(3)],
            "no private message without `private`"
        );
        assert_eq!(first_data(gen_rx.recv().await), Some(json!(1)));
        assert!(gen_rx.is_empty(), "one copy");
        assert_eq!(first_data(ann_rx.recv().await), Some(json!(2)));

        // Counted: two subscriptions need two cancels.
        assert!(hub.subscribe_prefix(3, &ann_tx, b"ann", true));
        assert!(hub.unsubscribe_prefix(3, b"ann"));
        hub.publish_to(vec![(
            Topic::Private("ann".into()),
            Push::new("ann", json!(4)),
        )]);
        assert_eq!(first_data(ann_rx.recv().await), Some(json!(4)));
        assert!(hub.unsubscribe_prefix(3, b"ann"));
        assert!(!hub.unsubscribe_prefix(3, b"ann"), "none left");
        hub.publish_to(vec![(
            Topic::Private("ann".into()),
            Push::new("ann", json!(5)),
        )]);
        assert!(ann_rx.is_empty());

        // A prefix longer than any name is accepted and kept nowhere.
        assert!(hub.subscribe_prefix(3, &ann_tx, &[b'a'; 200], true));
        // A bounded number of distinct prefixes per connection.
        for i in 0..MAX_PREFIXES - 1 {
            assert!(hub.subscribe_prefix(4, &ann_tx, format!("p{i}").as_bytes(), false));
        }
        assert!(hub.subscribe_prefix(4, &ann_tx, b"last", false));
        assert!(!hub.subscribe_prefix(4, &ann_tx, b"one-more", false));
        assert!(
            hub.subscribe_prefix(4, &ann_tx, b"last", false),
            "a known one counts"
        );

        // A connection gone takes its prefixes with it.
        hub.remove_connection(1);
        hub.remove_connection(4);
        let d = hub.publish(Push::new("general", json!(6)));
        assert_eq!(d.delivered, 1, "only connection 2 is left: {d:?}");
    }

    fn first_data(p: Option<Pushes>) -> Option<serde_json::Value> {
        p.and_then(|b| b.iter().next().map(|p| p.data().clone()))
    }

    #[tokio::test]
    async fn a_batch_reaches_each_subscriber_whole_and_in_order() {
        let hub = Hub::new(None, 0.0, 0.0);
        let (a_tx, mut a_rx) = crate::rpc::push::channel(16);
        let (b_tx, mut b_rx) = crate::rpc::push::channel(16);
        let (small_tx, small_rx) = crate::rpc::push::channel(2);
        hub.subscribe(1, &a_tx, "a");
        hub.subscribe(2, &b_tx, "b");
        hub.subscribe(3, &small_tx, "a");
        let batch: Vec<Push> = [("a", 1), ("b", 2), ("a", 3), ("a", 4), ("c", 5)]
            .into_iter()
            .map(|(t, i)| Push::new(t, json!(i)))
            .collect();
        let d = hub.publish_batch(batch);
        // "a": 3 pushes to the roomy subscriber, none to the small one (no
        // room for all 3); "b": 1; "c": nobody.
        assert_eq!(
            d,
            Delivery {
                delivered: 4,
                dropped: 3
            }
        );
        let got = a_rx
            .recv()
            .await
            .map(|b| b.iter().map(|p| p.data().clone()).collect());
        assert_eq!(got, Some(vec![json!(1), json!(3), json!(4)]));
        assert!(a_rx.is_empty());
        assert_eq!(first_data(b_rx.recv().await), Some(json!(2)));
        assert!(small_rx.is_empty());
    }

    /// A channel and a private stream of the same name never mix.
    #[tokio::test]
    async fn a_channel_never_reaches_a_private_stream_of_its_name() {
        let hub = Hub::new(None, 0.0, 0.0);
        let (bob_tx, mut bob_rx) = crate::rpc::push::channel(16);
        let (eve_tx, mut eve_rx) = crate::rpc::push::channel(16);
        hub.login(1, &bob_tx, "bob");
        hub.subscribe(2, &eve_tx, "bob");
        let d = hub.publish_to(vec![(
            Topic::Private("bob".into()),
            Push::new("bob", json!("private")),
        )]);
        assert_eq!(d.delivered, 1);
        hub.publish(Push::new("bob", json!("public")));
        assert_eq!(first_data(bob_rx.recv().await), Some(json!("private")));
        assert_eq!(first_data(eve_rx.recv().await), Some(json!("public")));
        assert!(bob_rx.is_empty() && eve_rx.is_empty());
        assert_eq!(hub.topics_of(1), vec![Topic::Private("bob".into())]);
        assert_eq!(hub.subscribers("bob"), 1);
    }

    #[test]
    fn rate_limit_bucket() {
        let hub = Hub::new(None, 0.001, 2.0);
        let (tx, _rx) = crate::rpc::push::channel(1);
        assert!(hub.admit(1, &tx));
        assert!(hub.admit(1, &tx));
        assert!(!hub.admit(1, &tx));
        assert!(hub.admit(2, &tx));
    }
}
