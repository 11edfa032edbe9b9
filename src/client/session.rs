//! [`ChatSession`]: a chat client over several nodes that survives the loss
//! of the one it is on.
//!
//! The session is connected to one node at a time. When that connection is
//! lost (closed, an i/o error, no reply within the call timeout, a reply it
//! cannot read), it moves to the next address of its list (round robin),
//! logs in again as the user it was logged in as, subscribes again to every
//! topic it was subscribed to, and retries the call that was cut. A
//! connection closed while no call is under way is replaced at once, so
//! that pushes keep coming ([`ChatSession::watch_node`] follows it). When a
//! whole pass over the list fails it waits (a backoff that doubles up to
//! [`SessionOptions::max_backoff`]) and tries again, and after
//! [`SessionOptions::connect_rounds`] passes it gives up with
//! [`SessionError::AllNodesDown`]. An address that cannot be reached is
//! skipped with a log line (the next is tried); an address that is not
//! `host:port` at all is refused when the session is built.
//!
//! Writes are safe to retry: `publish` and `message` get a `client_id`
//! (unless the caller gave one) that stays the same on every retry, so a
//! node that stored the first attempt answers the retry with the stored
//! event (`duplicate: true`) instead of storing it again; in a cluster the
//! id travels with the write to every node. A call answered UNAVAILABLE
//! (the node cannot reach the replicated log) is retried the same way,
//! after a backoff and on the next node, and is never stored twice.
//! Retries of one call are bounded by [`SessionOptions::retries`].
//!
//! Every request carries the session's Lamport `clock` (ticked before each
//! send) and a `timestamp`; replies and pushes advance the clock.
//! Publications and private messages arrive on [`ChatSession::pushes`],
//! one receiver for the whole session, whichever node they come from.
//! Pushes sent while the session moves between nodes are not replayed:
//! `history` has them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), corral::client::SessionError> {
//! use corral::client::{ChatSession, SessionOptions};
//! use serde_json::json;
//! let opts = SessionOptions::new(["127.0.0.1:7071,127.0.0.1:7072,127.0.0.1:7073"])?;
//! let session = ChatSession::new(opts);
//! session.login("alice").await?;
//! session.subscribe("general").await?;
//! let mut pushes = session.pushes().expect("the first call gets the receiver");
//! let reply = session.publish("general", "hello").await?;
//! println!("stored at seq {} on {:?}", reply["seq"], session.node());
//! while let Some(push) = pushes.recv().await {
//!     println!("{}: {}", push.topic, push.data);
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};

use super::{parse_addrs, Client, ClientError, Codec, FrameConn, IncomingPush, SessionError};
use crate::clock::{now_ms, LamportClock};
use crate::util::AbortOnDrop;

/// How many unread pushes the session keeps before dropping new ones.
const PUSH_BUFFER: usize = 1024;

/// Opens a frame connection to one address (`host:port`): how a session
/// dials (TCP by default; TLS or SCTP through
/// [`SessionOptions::connect_with`]).
pub type ConnectFn = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<FrameConn, ClientError>> + Send>>
        + Send
        + Sync,
>;

/// How a [`ChatSession`] connects, fails over and retries.
#[derive(Clone)]
pub struct SessionOptions {
    /// The nodes' RPC addresses, tried in this order, round robin.
    pub addrs: Vec<String>,
    /// Body encoding. Default JSON.
    pub codec: Codec,
    /// How long one attempt of a call may wait for its reply before the
    /// connection is given up as lost. Default 10 s.
    pub call_timeout: Duration,
    /// How long connecting to one address may take. Default 5 s.
    pub connect_timeout: Duration,
    /// The first backoff (after a failed pass over every address, or an
    /// UNAVAILABLE answer); it doubles each time, up to `max_backoff`.
    /// Default 100 ms.
    pub backoff: Duration,
    /// The longest backoff. Default 2 s.
    pub max_backoff: Duration,
    /// Full passes over the address list, each failing on every address,
    /// before connecting gives up ([`SessionError::AllNodesDown`]).
    /// Default 5.
    pub connect_rounds: u32,
    /// How many times one call is retried (after a lost connection, a late
    /// reply, or UNAVAILABLE) before it fails. Default 8.
    pub retries: u32,
    connect: ConnectFn,
}

impl fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionOptions")
            .field("addrs", &self.addrs)
            .field("codec", &self.codec)
            .field("call_timeout", &self.call_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("connect_rounds", &self.connect_rounds)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl SessionOptions {
    /// Options for these addresses (see [`parse_addrs`]: repeated and/or
    /// comma-separated `host:port`), with the defaults; a malformed entry
    /// is a [`SessionError::BadAddress`].
    pub fn new<I, S>(addrs: I) -> Result<SessionOptions, SessionError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(SessionOptions {
            addrs: parse_addrs(addrs)?,
            codec: Codec::Json,
            call_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            connect_rounds: 5,
            retries: 8,
            connect: Arc::new(|addr: String| {
                Box::pin(async move { FrameConn::connect(addr.as_str()).await })
            }),
        })
    }

    /// Dials with `connect` instead of plain TCP (TLS, SCTP, a test's own
    /// transport). It is called with one address at a time.
    pub fn connect_with<F, Fut>(mut self, connect: F) -> SessionOptions
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<FrameConn, ClientError>> + Send + 'static,
    {
        self.connect = Arc::new(move |addr| Box::pin(connect(addr)));
        self
    }

    /// The backoff before the `n`-th retry (0-based), with a little jitter
    /// so that many clients do not come back in step.
    fn backoff_for(&self, n: u32) -> Duration {
        let base = self
            .backoff
            .saturating_mul(1u32 << n.min(16))
            .min(self.max_backoff);
        let jitter = super::random_u64() % 1000;
        // 75% to 100% of the base.
        base.mul_f64(0.75 + 0.25 * (jitter as f64 / 1000.0))
    }
}

/// The connection the session is on.
struct Live {
    client: Client,
    /// Index in the address list.
    node: usize,
    /// Counts connections made; a failure is reported against the one it
    /// happened on, so that several callers do not each move the session.
    generation: u64,
    /// Forwards this connection's pushes to the session's receiver.
    _forward: AbortOnDrop,
}

/// What is replayed on every new connection.
#[derive(Default)]
struct State {
    live: Option<Arc<Live>>,
    /// The next address to try.
    next: usize,
    generation: u64,
    /// The `login` request data to replay (user, token).
    login: Option<Map<String, Value>>,
    /// Topics subscribed to through the session.
    topics: BTreeSet<String>,
}

struct Shared {
    opts: SessionOptions,
    clock: Arc<LamportClock>,
    state: tokio::sync::Mutex<State>,
    /// The address of the current connection, for [`ChatSession::node`]
    /// and [`ChatSession::watch_node`].
    current: watch::Sender<Option<String>>,
    pushes_tx: mpsc::Sender<IncomingPush>,
    pushes_rx: Mutex<Option<mpsc::Receiver<IncomingPush>>>,
    /// Makes the session's client ids unique among its user's sessions.
    id_prefix: String,
    next_write: AtomicU64,
    failovers: AtomicU64,
    retried: AtomicU64,
}

/// A chat client over several nodes, with failover: see the module docs.
/// Cheap to clone; clones share the connection, the login, the
/// subscriptions and the clock, and may call at the same time.
#[derive(Clone)]
pub struct ChatSession {
    shared: Arc<Shared>,
}

impl fmt::Debug for ChatSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatSession")
            .field("addrs", &self.shared.opts.addrs)
            .field("node", &self.node())
            .finish_non_exhaustive()
    }
}

/// How one attempt of a call ended.
enum Attempt {
    Done(Value),
    /// Answered with an error a retry would not change.
    Fatal(SessionError),
    /// Answered UNAVAILABLE.
    Unavailable(String),
    /// The connection is lost (or useless).
    Lost(String),
}

impl ChatSession {
    /// A session over `opts.addrs`. Nothing is dialled until the first
    /// call (see [`ChatSession::connect`] to dial now).
    pub fn new(opts: SessionOptions) -> ChatSession {
        let (pushes_tx, pushes_rx) = mpsc::channel(PUSH_BUFFER);
        ChatSession {
            shared: Arc::new(Shared {
                opts,
                clock: Arc::new(LamportClock::new()),
                state: tokio::sync::Mutex::new(State::default()),
                current: watch::channel(None).0,
                pushes_tx,
                pushes_rx: Mutex::new(Some(pushes_rx)),
                id_prefix: format!("{:012x}", super::random_u64() & 0xffff_ffff_ffff),
                next_write: AtomicU64::new(1),
                failovers: AtomicU64::new(0),
                retried: AtomicU64::new(0),
            }),
        }
    }

    /// Connects now (to the first address that answers), instead of on the
    /// first call; returns that address.
    pub async fn connect(&self) -> Result<String, SessionError> {
        let live = self.live().await?;
        Ok(self.shared.opts.addrs[live.node].clone())
    }

    /// The address of the node the session is on, if connected.
    pub fn node(&self) -> Option<String> {
        self.shared.current.borrow().clone()
    }

    /// Follows [`ChatSession::node`]: the receiver sees every change (a
    /// connection, a loss, the next node).
    pub fn watch_node(&self) -> watch::Receiver<Option<String>> {
        self.shared.current.subscribe()
    }

    /// The addresses the session moves between.
    pub fn addrs(&self) -> &[String] {
        &self.shared.opts.addrs
    }

    /// How many times the session lost its node and moved on.
    pub fn failovers(&self) -> u64 {
        self.shared.failovers.load(Ordering::Relaxed)
    }

    /// How many call attempts were retried (lost connection, late reply,
    /// UNAVAILABLE).
    pub fn retries(&self) -> u64 {
        self.shared.retried.load(Ordering::Relaxed)
    }

    /// The session's Lamport clock.
    pub fn clock(&self) -> &Arc<LamportClock> {
        &self.shared.clock
    }

    /// The receiver of pushes (publications on subscribed channels, private
    /// messages), from whichever node the session is on. Returns it on the
    /// first call only. Pushes that arrive while 1024 are unread are
    /// dropped.
    pub fn pushes(&self) -> Option<mpsc::Receiver<IncomingPush>> {
        self.shared
            .pushes_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// A fresh client id for a write: the session's prefix and a counter.
    pub fn next_client_id(&self) -> String {
        let n = self.shared.next_write.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.shared.id_prefix)
    }

    /// `login` as `user`; replayed on every node the session moves to.
    pub async fn login(&self, user: &str) -> Result<Value, SessionError> {
        self.call("login", json!({ "user": user })).await
    }

    /// `login` as `user` with its `token` (a user of `[chat.users]`).
    pub async fn login_with_token(&self, user: &str, token: &str) -> Result<Value, SessionError> {
        self.call("login", json!({ "user": user, "token": token }))
            .await
    }

    /// `subscribe` to `topic`; replayed on every node the session moves to.
    pub async fn subscribe(&self, topic: &str) -> Result<Value, SessionError> {
        self.call("subscribe", json!({ "topic": topic })).await
    }

    /// `publish` `message` on `channel`, as the logged-in user, with a new
    /// client id (kept on retries).
    pub async fn publish(&self, channel: &str, message: &str) -> Result<Value, SessionError> {
        self.call("publish", json!({ "channel": channel, "message": message }))
            .await
    }

    /// Calls `service` with `data` (an object; anything else is sent as an
    /// empty object) stamped with the clock and a timestamp, moving to
    /// another node and retrying as the module docs say. `publish` and
    /// `message` get a `client_id` unless `data` has one (or a `msg_id`).
    /// A successful `login`, `logout`, `subscribe` or `unsubscribe` is
    /// remembered and replayed on the next node.
    ///
    /// A `channel` create that was stored before its reply was lost is
    /// answered CONFLICT on retry (the channel exists).
    pub async fn call(&self, service: &str, data: Value) -> Result<Value, SessionError> {
        let mut data = match data {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if matches!(service, "publish" | "message")
            && !data.contains_key("client_id")
            && !data.contains_key("msg_id")
        {
            data.insert("client_id".into(), json!(self.next_client_id()));
        }
        let opts = &self.shared.opts;
        let mut unavailable = 0u32;
        let mut attempt = 0u32;
        loop {
            let live = self.live().await?;
            match self.attempt(&live, service, &data).await {
                Attempt::Done(reply) => {
                    self.remember(service, &data).await;
                    return Ok(reply);
                }
                Attempt::Fatal(e) => return Err(e),
                Attempt::Unavailable(message) => {
                    if attempt >= opts.retries {
                        return Err(SessionError::Unavailable {
                            attempts: attempt + 1,
                            message,
                        });
                    }
                    tracing::warn!(
                        node = %opts.addrs[live.node], service, %message,
                        "chat session: UNAVAILABLE; retrying after a backoff"
                    );
                    tokio::time::sleep(opts.backoff_for(unavailable)).await;
                    unavailable += 1;
                    // Another node may still reach the log.
                    if opts.addrs.len() > 1 {
                        self.lost(&live, "answered UNAVAILABLE").await;
                    }
                }
                Attempt::Lost(why) => {
                    if attempt >= opts.retries {
                        return Err(SessionError::GaveUp {
                            service: service.to_string(),
                            attempts: attempt + 1,
                            last: why,
                        });
                    }
                    self.lost(&live, &why).await;
                }
            }
            attempt += 1;
            self.shared.retried.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One attempt of a call on `live`.
    async fn attempt(&self, live: &Live, service: &str, data: &Map<String, Value>) -> Attempt {
        let mut data = data.clone();
        data.insert("clock".into(), json!(self.shared.clock.tick()));
        data.insert("timestamp".into(), json!(now_ms()));
        let call = live.client.call(service, Value::Object(data));
        match tokio::time::timeout(self.shared.opts.call_timeout, call).await {
            Err(_) => Attempt::Lost(format!(
                "no reply within {:?}",
                self.shared.opts.call_timeout
            )),
            Ok(Ok(reply)) => {
                self.shared.clock.observe_data(&reply);
                Attempt::Done(reply)
            }
            Ok(Err(ClientError::Rpc { code, message })) => {
                if code == "UNAVAILABLE" {
                    Attempt::Unavailable(message)
                } else {
                    Attempt::Fatal(SessionError::Rpc { code, message })
                }
            }
            Ok(Err(e @ (ClientError::Closed | ClientError::Io(_) | ClientError::Decode(_)))) => {
                Attempt::Lost(e.to_string())
            }
            Ok(Err(e)) => Attempt::Fatal(SessionError::Client(e)),
        }
    }

    /// Records what a successful call changed in what is replayed.
    async fn remember(&self, service: &str, data: &Map<String, Value>) {
        let mut st = self.shared.state.lock().await;
        let topic = || {
            data.get("topic")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match service {
            "login" => {
                let mut login = Map::new();
                for k in ["user", "token"] {
                    if let Some(v) = data.get(k) {
                        login.insert(k.into(), v.clone());
                    }
                }
                st.login = Some(login);
            }
            "logout" => st.login = None,
            "subscribe" => {
                if let Some(t) = topic() {
                    st.topics.insert(t);
                }
            }
            "unsubscribe" => {
                if let Some(t) = topic() {
                    st.topics.remove(&t);
                }
            }
            _ => {}
        }
    }

    /// Gives up the connection `live` (if the session is still on it) so
    /// that the next call moves to the next node.
    async fn lost(&self, live: &Live, why: &str) {
        let mut st = self.shared.state.lock().await;
        if st.live.as_ref().map(|l| l.generation) == Some(live.generation) {
            tracing::warn!(
                node = %self.shared.opts.addrs[live.node], %why,
                "chat session: lost the node; moving to the next"
            );
            st.live = None;
            st.next = (live.node + 1) % self.shared.opts.addrs.len();
            self.shared.failovers.fetch_add(1, Ordering::Relaxed);
            self.shared.current.send_replace(None);
        }
    }

    /// After connection `generation` closed: if the session is still on it,
    /// moves to the next node (as a call would).
    /// (Boxed: it is spawned from the connection it replaces.)
    fn recover(self, generation: u64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let live = {
                let st = self.shared.state.lock().await;
                match &st.live {
                    Some(l) if l.generation == generation => l.clone(),
                    _ => return,
                }
            };
            self.lost(&live, "connection closed").await;
            if let Err(e) = self.live().await {
                tracing::warn!(error = %e, "chat session: no node to move to");
            }
        })
    }

    /// The current connection, or a new one: round robin from the next
    /// address, logged in and resubscribed, with a backoff between passes.
    async fn live(&self) -> Result<Arc<Live>, SessionError> {
        let mut st = self.shared.state.lock().await;
        if let Some(l) = st.live.clone() {
            if !l.client.is_closed() {
                return Ok(l);
            }
            // Closed under us (the node went away between calls).
            drop(st);
            self.lost(&l, "connection closed").await;
            st = self.shared.state.lock().await;
            if let Some(l) = &st.live {
                return Ok(l.clone());
            }
        }
        let opts = &self.shared.opts;
        let n = opts.addrs.len();
        let mut failures: Vec<String> = Vec::new();
        for round in 0..opts.connect_rounds.max(1) {
            if round > 0 {
                tokio::time::sleep(opts.backoff_for(round - 1)).await;
            }
            failures.clear();
            for k in 0..n {
                let node = (st.next + k) % n;
                let addr = &opts.addrs[node];
                match self.open(node, st.generation + 1, &mut st).await {
                    Ok(live) => {
                        tracing::info!(node = %addr, "chat session: connected");
                        st.generation += 1;
                        let live = Arc::new(Live {
                            generation: st.generation,
                            ..live
                        });
                        st.live = Some(live.clone());
                        st.next = node;
                        self.shared.current.send_replace(Some(addr.clone()));
                        return Ok(live);
                    }
                    Err(why) => {
                        tracing::warn!(node = %addr, %why, "chat session: node skipped");
                        failures.push(format!("{addr}: {why}"));
                    }
                }
            }
        }
        Err(SessionError::AllNodesDown {
            rounds: opts.connect_rounds.max(1),
            addrs: opts.addrs.join(","),
            last: failures.join("; "),
        })
    }

    /// Connects to `addrs[node]`, logs in again and resubscribes; the
    /// connection will be number `generation`.
    async fn open(&self, node: usize, generation: u64, st: &mut State) -> Result<Live, String> {
        let opts = &self.shared.opts;
        let addr = opts.addrs[node].clone();
        let conn = match tokio::time::timeout(opts.connect_timeout, (opts.connect)(addr)).await {
            Err(_) => return Err(format!("no connection within {:?}", opts.connect_timeout)),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(c)) => c,
        };
        let client = Client::new(conn, opts.codec);
        let forward = match client.pushes() {
            Some(mut rx) => {
                let (tx, clock) = (self.shared.pushes_tx.clone(), self.shared.clock.clone());
                let session = Arc::downgrade(&self.shared);
                AbortOnDrop::new(tokio::spawn(async move {
                    while let Some(p) = rx.recv().await {
                        clock.observe_data(&p.data);
                        if tx.try_send(p).is_err() {
                            tracing::debug!("chat session: push dropped (receiver full or gone)");
                        }
                    }
                    // The connection is closed: move on now rather than at
                    // the next call, so that pushes keep coming.
                    if let Some(shared) = session.upgrade() {
                        tokio::spawn(ChatSession { shared }.recover(generation));
                    }
                }))
            }
            None => return Err("the connection's pushes are taken".into()),
        };
        let live = Live {
            client,
            node,
            generation: 0,
            _forward: forward,
        };
        if let Some(login) = st.login.clone() {
            match self.attempt(&live, "login", &login).await {
                Attempt::Done(_) => {}
                Attempt::Fatal(e) => return Err(format!("login again: {e}")),
                Attempt::Unavailable(m) => return Err(format!("login again: UNAVAILABLE: {m}")),
                Attempt::Lost(why) => return Err(format!("login again: {why}")),
            }
        }
        let topics: Vec<String> = st.topics.iter().cloned().collect();
        for topic in topics {
            let data = json!({ "topic": topic });
            let Value::Object(data) = data else {
                continue;
            };
            match self.attempt(&live, "subscribe", &data).await {
                Attempt::Done(_) => {}
                Attempt::Fatal(e) => {
                    // The topic is not there (a node of another cluster):
                    // the subscription is dropped, the node is kept.
                    tracing::warn!(
                        node = %opts.addrs[node], %topic, error = %e,
                        "chat session: cannot subscribe again; subscription dropped"
                    );
                    st.topics.remove(&topic);
                }
                Attempt::Unavailable(m) => {
                    return Err(format!("subscribe {topic} again: UNAVAILABLE: {m}"))
                }
                Attempt::Lost(why) => return Err(format!("subscribe {topic} again: {why}")),
            }
        }
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const GUARD: Duration = Duration::from_secs(60);

    /// A server that answers `publish` UNAVAILABLE `refusals` times, then
    /// stores it; every other call is answered with its data. Sends the
    /// `client_id` of every publish it sees on `seen`.
    async fn flaky_server(refusals: usize, seen: mpsc::UnboundedSender<String>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let mut left = refusals;
            while let Ok((sock, _)) = listener.accept().await {
                let mut conn = FrameConn::from_io(sock, 1 << 20);
                while let Ok(Some(frame)) = conn.recv_frame().await {
                    let Ok(req) = Codec::Json.decode::<Value>(&frame) else {
                        break;
                    };
                    let service = req["service"].as_str().unwrap_or_default();
                    let reply = if service == "publish" {
                        let id = req["data"]["client_id"].as_str().unwrap_or("").to_string();
                        let _ = seen.send(id);
                        if left > 0 {
                            left -= 1;
                            json!({"id": req["id"], "error": {"code": "UNAVAILABLE", "message": "no quorum"}})
                        } else {
                            json!({"id": req["id"], "data": {"seq": 1, "duplicate": false}})
                        }
                    } else {
                        json!({"id": req["id"], "data": req["data"]})
                    };
                    let Ok(body) = Codec::Json.encode(&reply) else {
                        break;
                    };
                    if conn.send_frame(body).await.is_err() {
                        break;
                    }
                }
            }
        });
        addr
    }

    fn quick(addrs: &[&str]) -> SessionOptions {
        let mut o = SessionOptions::new(addrs).expect("addresses");
        o.backoff = Duration::from_millis(5);
        o.max_backoff = Duration::from_millis(20);
        o.call_timeout = Duration::from_secs(2);
        o.connect_timeout = Duration::from_secs(2);
        o
    }

    #[tokio::test]
    async fn unavailable_is_retried_with_the_same_client_id() {
        let (tx, mut seen) = mpsc::unbounded_channel();
        let addr = flaky_server(3, tx).await;
        let session = ChatSession::new(quick(&[&addr]));
        let reply = tokio::time::timeout(GUARD, session.publish("c", "m"))
            .await
            .expect("no hang")
            .expect("stored at last");
        assert_eq!(reply["seq"], 1);
        let ids: Vec<String> = std::iter::from_fn(|| seen.try_recv().ok()).collect();
        assert_eq!(ids.len(), 4, "three refusals and the success: {ids:?}");
        assert!(!ids[0].is_empty());
        assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
        assert_eq!(session.retries(), 3);
        // The next write has a new id.
        session.publish("c", "m2").await.expect("stored");
        assert_ne!(seen.try_recv().expect("seen"), ids[0]);
    }

    #[tokio::test]
    async fn unavailable_forever_ends_with_a_clear_error() {
        let (tx, _seen) = mpsc::unbounded_channel();
        let addr = flaky_server(usize::MAX, tx).await;
        let mut opts = quick(&[&addr]);
        opts.retries = 2;
        let session = ChatSession::new(opts);
        match tokio::time::timeout(GUARD, session.publish("c", "m"))
            .await
            .expect("no hang")
        {
            Err(e @ SessionError::Unavailable { attempts: 3, .. }) => {
                assert_eq!(e.code(), Some("UNAVAILABLE"));
                assert!(e.to_string().contains("no quorum"), "{e}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_server_that_answers_garbage_is_left_for_the_next() {
        let garbage = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let garbage_addr = garbage.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = garbage.accept().await {
                tokio::spawn(async move {
                    // An absurd frame length, then noise.
                    let _ = sock
                        .write_all(b"\xff\xff\xff\xffHTTP/1.1 200 OK\r\n\r\n")
                        .await;
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        let (tx, _seen) = mpsc::unbounded_channel();
        let good = flaky_server(0, tx).await;
        let session = ChatSession::new(quick(&[&garbage_addr, &good]));
        let reply = tokio::time::timeout(GUARD, session.call("echo", json!({"x": 1})))
            .await
            .expect("no hang")
            .expect("answered by the good server");
        assert_eq!(reply["x"], 1);
        assert_eq!(session.node().as_deref(), Some(good.as_str()));
    }
}
