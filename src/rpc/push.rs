//! Pushes: publications sent to a connection without a request, and the
//! bounded queue that carries them to the connection.
//!
//! A [`Push`] is shared by every connection it goes to, and each of its
//! encodings is made once. A fan-out hands a subscriber all the pushes it
//! has for it at once, as one [`Pushes`] batch: one queue operation per
//! subscriber per batch, not per push.
//!
//! The queue ([`PushSender`] → [`PushReceiver`]) is bounded in pushes (the
//! `[rpc] push_queue` setting). [`PushSender::try_send`] never waits: a batch
//! that does not fit is refused whole ([`PushError::Full`]), which is how a
//! slow subscriber loses pushes without slowing anyone else.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Serialize, Serializer};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::listener::{inbox, Inbox, InboxSender};

use super::codec::HEADER_LEN;
use super::envelope::{self, EncodeError, Encoding};

/// Pushes a connection's queue holds by default.
pub(crate) const DEFAULT_PUSH_QUEUE: usize = 8192;

/// A publication sent to a connection without a request:
/// `{"topic": <channel or user>, "data": {…}}`.
///
/// Cheap to clone: a fan-out hands the same push to every subscriber, and
/// each encoding of it is made once, by the first connection that needs it,
/// then shared by the others.
///
/// ```
/// use corral::rpc::Push;
/// use serde::Serialize;
///
/// // From a JSON value:
/// let p = Push::new("lobby", serde_json::json!({"message": "hi"}));
/// assert_eq!(p.data()["message"], "hi");
///
/// // Straight from a type's fields (no JSON value is built to send it):
/// #[derive(Serialize)]
/// struct Said { message: String }
/// let p = Push::from_serialize("lobby", Said { message: "hi".into() });
/// assert_eq!(p.topic(), "lobby");
/// assert_eq!(p.data()["message"], "hi");
/// ```
#[derive(Clone)]
pub struct Push(Arc<PushInner>);

struct PushInner {
    topic: String,
    /// The payload as a JSON value: given, or made on first use from `typed`.
    data: OnceLock<Value>,
    typed: Option<Box<dyn TypedData>>,
    json: OnceLock<Option<Framed>>,
    msgpack: OnceLock<Option<Framed>>,
    /// `data` alone in MessagePack (a ZeroMQ subscriber's body).
    #[cfg(feature = "zmq")]
    bare: OnceLock<Option<Bytes>>,
}

/// A payload serialized straight from its fields.
trait TypedData: Send + Sync {
    fn write(&self, out: &mut BytesMut, enc: Encoding, topic: &str) -> Result<(), EncodeError>;
    fn value(&self) -> Value;
}

impl<T: Serialize + Send + Sync> TypedData for T {
    fn write(&self, out: &mut BytesMut, enc: Encoding, topic: &str) -> Result<(), EncodeError> {
        envelope::write_push(out, enc, topic, self)
    }

    fn value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "a push's data is not representable as JSON");
            Value::Null
        })
    }
}

/// One encoding of a push: the frame (4-byte big-endian length, then the
/// body), so that a byte stream writes it as one piece.
struct Framed {
    frame: Bytes,
    body: Bytes,
}

impl Push {
    /// A push on `topic` carrying `data`.
    pub fn new(topic: impl Into<String>, data: Value) -> Self {
        Push(Arc::new(PushInner {
            topic: topic.into(),
            data: OnceLock::from(data),
            typed: None,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
            #[cfg(feature = "zmq")]
            bare: OnceLock::new(),
        }))
    }

    /// A push on `topic` whose `data` is encoded straight from `data`'s
    /// fields (its JSON value is made only if [`Push::data`] asks for it).
    pub fn from_serialize<T>(topic: impl Into<String>, data: T) -> Self
    where
        T: Serialize + Send + Sync + 'static,
    {
        Push(Arc::new(PushInner {
            topic: topic.into(),
            data: OnceLock::new(),
            typed: Some(Box::new(data)),
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
            #[cfg(feature = "zmq")]
            bare: OnceLock::new(),
        }))
    }

    /// The channel or user the publication is about.
    pub fn topic(&self) -> &str {
        &self.0.topic
    }

    /// The payload.
    pub fn data(&self) -> &Value {
        self.0.data.get_or_init(|| match &self.0.typed {
            Some(t) => t.value(),
            None => Value::Null,
        })
    }

    fn framed(&self, enc: Encoding) -> Option<&Framed> {
        let cell = match enc {
            Encoding::Json => &self.0.json,
            Encoding::MsgPack => &self.0.msgpack,
        };
        cell.get_or_init(|| {
            let mut out = BytesMut::with_capacity(256);
            out.put_u32(0);
            let written = match &self.0.typed {
                Some(t) => t.write(&mut out, enc, &self.0.topic),
                None => envelope::write_push(&mut out, enc, &self.0.topic, self.data()),
            };
            let len = written.and_then(|()| {
                u32::try_from(out.len() - HEADER_LEN)
                    .map_err(|_| EncodeError::TooLarge(out.len() - HEADER_LEN))
            });
            match len {
                Ok(len) => {
                    out[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
                    let frame = out.freeze();
                    let body = frame.slice(HEADER_LEN..);
                    Some(Framed { frame, body })
                }
                Err(e) => {
                    tracing::warn!(topic = %self.topic(), error = %e, "dropping an unencodable push");
                    None
                }
            }
        })
        .as_ref()
    }

    /// The push's body in `enc`, encoded on first use and shared after;
    /// `None` if it cannot be encoded (logged once).
    pub(crate) fn encoded(&self, enc: Encoding) -> Option<&Bytes> {
        self.framed(enc).map(|f| &f.body)
    }

    /// As [`Push::encoded`], and `None` (logged) for a body larger than
    /// `max_frame_bytes`.
    pub(crate) fn encoded_within(&self, enc: Encoding, max_frame_bytes: usize) -> Option<&Bytes> {
        let body = self.encoded(enc)?;
        if body.len() > max_frame_bytes {
            tracing::warn!(topic = %self.topic(), "dropping a push larger than a frame");
            return None;
        }
        Some(body)
    }

    /// The push as a length-prefixed frame in `enc`; `None` if it cannot be
    /// encoded or its body is larger than `max_frame_bytes` (not logged:
    /// [`Push::encoded_within`] is what logs a push dropped).
    pub(crate) fn frame_within(&self, enc: Encoding, max_frame_bytes: usize) -> Option<&Bytes> {
        self.framed(enc)
            .filter(|f| f.body.len() <= max_frame_bytes)
            .map(|f| &f.frame)
    }
}

#[cfg(feature = "zmq")]
impl Push {
    /// The push's `data` alone, in MessagePack: what a ZeroMQ subscriber
    /// gets after the topic frame, as the seeds' servers published it.
    /// Sliced from the shared MessagePack encoding of the whole push
    /// (`{"topic": .., "data": ..}` ends with `data`'s bytes), so a fan-out
    /// encodes it once; `None` if it cannot be encoded or is larger than
    /// `max_bytes`.
    pub(crate) fn data_msgpack(&self, max_bytes: usize) -> Option<Bytes> {
        let bare = self.0.bare.get_or_init(|| {
            let whole = self.encoded(Encoding::MsgPack)?;
            let mut head = vec![0x82];
            for s in ["topic", self.topic(), "data"] {
                head.extend(rmp_serde::to_vec(s).ok()?);
            }
            if whole.starts_with(&head) {
                Some(whole.slice(head.len()..))
            } else {
                rmp_serde::to_vec_named(self.data()).ok().map(Bytes::from)
            }
        });
        bare.as_ref().filter(|b| b.len() <= max_bytes).cloned()
    }
}

impl Serialize for Push {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Push", 2)?;
        st.serialize_field("topic", &self.0.topic)?;
        st.serialize_field("data", self.data())?;
        st.end()
    }
}

impl PartialEq for Push {
    fn eq(&self, other: &Push) -> bool {
        self.0.topic == other.0.topic && self.data() == other.data()
    }
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("topic", &self.0.topic)
            .field("data", self.data())
            .finish()
    }
}

/// One push or a batch of them, in order: what a connection's queue carries.
/// Cheap to clone.
#[derive(Clone, Debug, PartialEq)]
pub struct Pushes(Repr);

#[derive(Clone, Debug, PartialEq)]
enum Repr {
    One(Push),
    Many(Arc<[Push]>),
}

impl Pushes {
    /// A batch of pushes, delivered in this order.
    pub fn batch(pushes: Arc<[Push]>) -> Self {
        Pushes(Repr::Many(pushes))
    }

    /// How many pushes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::One(_) => 1,
            Repr::Many(b) => b.len(),
        }
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pushes, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Push> {
        match &self.0 {
            Repr::One(p) => std::slice::from_ref(p).iter(),
            Repr::Many(b) => b.iter(),
        }
    }
}

impl From<Push> for Pushes {
    fn from(p: Push) -> Self {
        Pushes(Repr::One(p))
    }
}

impl<'a> IntoIterator for &'a Pushes {
    type Item = &'a Push;
    type IntoIter = std::slice::Iter<'a, Push>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Why pushes could not be queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The connection's queue has no room for them: it is not keeping up.
    #[error("the connection's push queue is full")]
    Full,
    /// The connection is gone.
    #[error("the connection is closed")]
    Closed,
}

/// Queues pushes for one connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PushSender {
    tx: InboxSender<Pushes>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// A connection's end of its push queue.
#[derive(Debug)]
pub struct PushReceiver {
    rx: Inbox<Pushes>,
    queued: Arc<AtomicUsize>,
}

/// A push queue holding at most `limit` pushes.
pub fn channel(limit: usize) -> (PushSender, PushReceiver) {
    let (tx, rx) = inbox(limit.max(1));
    from_parts(tx, rx, limit)
}

/// A push queue over an existing channel (a listener connection's inbox),
/// holding at most `limit` pushes.
pub(crate) fn from_parts(
    tx: InboxSender<Pushes>,
    rx: Inbox<Pushes>,
    limit: usize,
) -> (PushSender, PushReceiver) {
    let queued = Arc::new(AtomicUsize::new(0));
    (
        PushSender {
            tx,
            queued: queued.clone(),
            limit: limit.max(1),
        },
        PushReceiver { rx, queued },
    )
}

impl PushSender {
    /// Queues `pushes` without waiting, all or none: [`PushError::Full`]
    /// when they do not fit in the room the queue has left.
    pub fn try_send(&self, pushes: impl Into<Pushes>) -> Result<(), PushError> {
        let pushes = pushes.into();
        let n = pushes.len();
        let limit = self.limit;
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q + n <= limit).then_some(q + n)
            })
            .map_err(|_| PushError::Full)?;
        self.tx.try_send(pushes).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => PushError::Full,
                mpsc::error::TrySendError::Closed(_) => PushError::Closed,
            }
        })
    }

    /// Queues `pushes`, waiting for room in the channel (not bounded by the
    /// queue's limit in pushes: a sender that waits is its own back-pressure).
    pub async fn send(&self, pushes: impl Into<Pushes>) -> Result<(), PushError> {
        let pushes = pushes.into();
        let n = pushes.len();
        self.queued.fetch_add(n, Ordering::AcqRel);
        self.tx.send(pushes).await.map_err(|_| {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            PushError::Closed
        })
    }

    /// Pushes queued for the connection and not yet taken by it.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The most pushes the queue holds.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Completes when the connection is gone.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

impl PushReceiver {
    /// The next pushes; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Pushes> {
        let p = self.rx.recv().await?;
        self.taken(p.len());
        Some(p)
    }

    /// Waits for pushes, then moves up to `limit` queued batches into
    /// `buf`; returns how many (0 once every sender is gone).
    pub async fn recv_many(&mut self, buf: &mut Vec<Pushes>, limit: usize) -> usize {
        let start = buf.len();
        let n = self.rx.recv_many(buf, limit).await;
        let pushes = buf[start..].iter().map(Pushes::len).sum();
        self.taken(pushes);
        n
    }

    /// Pushes waiting in the queue.
    pub fn len(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// True when no push waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn taken(&self, n: usize) {
        // Saturating: a message put in the channel by other means (a
        // listener's `ConnectionRef`) was never counted.
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(n))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn push_encodings_are_made_once_and_shared() {
        let p = Push::new("room", json!({"text":"hi"}));
        let json = p.encoded(Encoding::Json).cloned().unwrap_or_default();
        let v: Value = serde_json::from_slice(&json).unwrap_or(Value::Null);
        assert_eq!(v, json!({"topic":"room","data":{"text":"hi"}}));
        let again = p
            .clone()
            .encoded(Encoding::Json)
            .cloned()
            .unwrap_or_default();
        assert_eq!(again.as_ptr(), json.as_ptr());
        let mp = p.encoded(Encoding::MsgPack).cloned().unwrap_or_default();
        let v: Value = rmp_serde::from_slice(&mp).unwrap_or(Value::Null);
        assert_eq!(v, json!({"topic":"room","data":{"text":"hi"}}));
    }

    #[cfg(feature = "zmq")]
    #[test]
    fn the_bare_msgpack_body_is_the_data_alone_sliced_from_the_shared_encoding() {
        #[derive(Serialize)]
        struct Said {
            user: String,
            n: u64,
        }
        let long_topic = "t".repeat(40);
        for p in [
            Push::new("room", json!({"user":"ann","message":"hi","clock":3})),
            Push::from_serialize(
                "r",
                Said {
                    user: "bob".into(),
                    n: 300,
                },
            ),
            Push::new(long_topic, json!({"nested":{"a":[1,2]}})),
        ] {
            let bare = p.data_msgpack(1 << 20).expect("encodes");
            let v: Value = rmp_serde::from_slice(&bare).expect("one msgpack value");
            assert_eq!(&v, p.data());
            let whole = p.encoded(Encoding::MsgPack).expect("encodes");
            assert!(whole.ends_with(&bare), "a slice of the shared encoding");
            assert!(p.data_msgpack(bare.len() - 1).is_none(), "over the limit");
        }
    }

    #[tokio::test]
    async fn queue_is_bounded_in_pushes_and_refuses_a_batch_whole() {
        let (tx, mut rx) = channel(4);
        let batch = |n: usize| {
            Pushes::batch(
                (0..n)
                    .map(|i| Push::new("t", json!(i)))
                    .collect::<Vec<_>>()
                    .into(),
            )
        };
        assert_eq!(tx.try_send(batch(3)), Ok(()));
        assert_eq!(tx.try_send(batch(2)), Err(PushError::Full));
        assert_eq!(tx.try_send(Push::new("t", json!(3))), Ok(()));
        assert_eq!(rx.len(), 4);
        assert_eq!(tx.try_send(Push::new("t", json!(4))), Err(PushError::Full));
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 8).await, 2);
        let got: Vec<Value> = buf.iter().flatten().map(|p| p.data().clone()).collect();
        assert_eq!(got, vec![json!(0), json!(1), json!(2), json!(3)]);
        assert!(rx.is_empty());
        // Room again, but never for more than the whole queue.
        assert_eq!(tx.try_send(batch(5)), Err(PushError::Full));
        assert_eq!(tx.try_send(batch(4)), Ok(()));
        assert_eq!(rx.recv().await.map(|p| p.len()), Some(4));
        drop(rx);
        assert_eq!(tx.try_send(batch(1)), Err(PushError::Closed));
        assert!(tx.is_closed());
    }
}
