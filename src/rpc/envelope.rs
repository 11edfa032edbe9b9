//! Envelopes: how a body is decoded into a request, and how replies, errors
//! and pushes are encoded.
//!
//! A body is JSON when its first byte, after optional JSON whitespace, is `{`;
//! MessagePack when its first byte starts a map (`0x80..=0x8f`, `0xde`,
//! `0xdf`); anything else is a BAD_REQUEST (answered in JSON). Replies use the
//! request's encoding; MessagePack maps have string keys.
//!
//! Two request shapes are accepted:
//! * native: `{"id": <string|int, optional>, "service": <name>, "data": {…}}`,
//!   answered `{"id", "service", "data"}` or `{"id", "service", "error"}`;
//! * ThreadCenter: `{"id": …, "cmd": <name>, <arguments>…}` whose arguments are
//!   every top-level field but `id` and `cmd`, answered `{"id", "result"}` or
//!   `{"id", "error"}`.
//!
//! JSON decoding borrows from the frame: the id of a request is a slice of
//! the frame's [`Bytes`], not a copy. A MessagePack body is read as a
//! stream (copying its strings) so that bytes after its map are seen and
//! refused, as JSON refuses characters after its object.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// The encoding of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    /// A JSON object.
    #[default]
    Json,
    /// A MessagePack map.
    MsgPack,
}

impl Encoding {
    /// Tells the encoding of a body from its first byte(s); `None` when it is
    /// neither a JSON object nor a MessagePack map.
    pub fn detect(body: &[u8]) -> Option<Encoding> {
        let first = *body.first()?;
        if matches!(first, 0x80..=0x8f | 0xde | 0xdf) {
            return Some(Encoding::MsgPack);
        }
        let first = body
            .iter()
            .copied()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
        (first == b'{').then_some(Encoding::Json)
    }
}

/// The shape of a request, which is also the shape of its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Shape {
    /// `{"id", "service", "data"}`.
    #[default]
    Native,
    /// ThreadCenter compatibility: `{"id", "cmd", <arguments>}`, answered with
    /// `{"id", "result"}`.
    ThreadCenter,
}

/// Error codes carried in `error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Undecodable body, missing or ill-typed field.
    BadRequest,
    /// No service of that name.
    UnknownService,
    /// The frame exceeds `max_frame_bytes`; the connection closes after it.
    FrameTooLarge,
    /// The thing asked for does not exist.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// The server is too busy to take the request.
    Overloaded,
    /// The server failed.
    Internal,
    /// The caller may not use this service (e.g. `store_backup` from a peer
    /// that is not on loopback).
    Forbidden,
    /// A part the service depends on is out of reach for now (a clustered
    /// node's chat writes while NATS is unreachable or has no quorum);
    /// nothing was done, and the same request may be retried.
    Unavailable,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownService,
        ErrorCode::FrameTooLarge,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Overloaded,
        ErrorCode::Internal,
        ErrorCode::Forbidden,
        ErrorCode::Unavailable,
    ];

    /// The wire spelling, e.g. `"BAD_REQUEST"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::UnknownService => "UNKNOWN_SERVICE",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The `id` of a request: null (absent), an integer or a string. Cheap to
/// clone (a string id shares the bytes of the frame it came from).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct RequestId(IdRepr);

#[derive(Clone, PartialEq, Eq, Hash, Default)]
enum IdRepr {
    #[default]
    Null,
    I64(i64),
    U64(u64),
    /// Always valid UTF-8.
    Str(Bytes),
}

impl RequestId {
    /// The null id (the request had none, or it could not be read).
    pub const NULL: RequestId = RequestId(IdRepr::Null);

    /// Whether the id is null.
    pub fn is_null(&self) -> bool {
        matches!(self.0, IdRepr::Null)
    }

    /// The id as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            IdRepr::Str(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The id as an integer, if it is one that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            IdRepr::I64(i) => Some(i),
            IdRepr::U64(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// A string id sharing `body`'s bytes when `s` lies inside it.
    fn from_body(body: &Bytes, s: &str) -> RequestId {
        let base = body.as_ptr() as usize;
        let p = s.as_ptr() as usize;
        let bytes = if p >= base && p + s.len() <= base + body.len() {
            body.slice_ref(s.as_bytes())
        } else {
            Bytes::copy_from_slice(s.as_bytes())
        };
        RequestId(IdRepr::Str(bytes))
    }
}

impl From<i64> for RequestId {
    fn from(i: i64) -> Self {
        RequestId(IdRepr::I64(i))
    }
}

impl From<u64> for RequestId {
    fn from(u: u64) -> Self {
        match i64::try_from(u) {
            Ok(i) => RequestId(IdRepr::I64(i)),
            Err(_) => RequestId(IdRepr::U64(u)),
        }
    }
}

impl From<String> for RequestId {
    fn from(s: String) -> Self {
        RequestId(IdRepr::Str(Bytes::from(s)))
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId(IdRepr::Str(Bytes::copy_from_slice(s.as_bytes())))
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            IdRepr::Null => f.write_str("null"),
            IdRepr::I64(i) => write!(f, "{i}"),
            IdRepr::U64(u) => write!(f, "{u}"),
            IdRepr::Str(_) => write!(f, "{:?}", self.as_str().unwrap_or_default()),
        }
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            IdRepr::Null => s.serialize_unit(),
            IdRepr::I64(i) => s.serialize_i64(*i),
            IdRepr::U64(u) => s.serialize_u64(*u),
            IdRepr::Str(_) => s.serialize_str(self.as_str().unwrap_or_default()),
        }
    }
}

// ---------------------------------------------------------------- decoding

/// A top-level scalar field, read leniently so that an ill-typed `id` or
/// `service` is reported as such rather than as an undecodable body.
enum Scalar<'de> {
    Null,
    Str(Cow<'de, str>),
    I64(i64),
    U64(u64),
    Other,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// The top level of a request, before validation.
#[derive(Default)]
struct RawEnvelope<'de> {
    id: Option<Scalar<'de>>,
    service: Option<Scalar<'de>>,
    cmd: Option<Scalar<'de>>,
    data: Option<Value>,
    rest: Map<String, Value>,
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = RawEnvelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut env = RawEnvelope::default();
        while let Some(key) = map.next_key::<Scalar<'de>>()? {
            let Scalar::Str(key) = key else {
                return Err(de::Error::custom("keys must be strings"));
            };
            match &*key {
                "id" => env.id = Some(map.next_value()?),
                "service" => env.service = Some(map.next_value()?),
                "cmd" => env.cmd = Some(map.next_value()?),
                "data" => env.data = Some(map.next_value()?),
                _ => {
                    let v: Value = map.next_value()?;
                    env.rest.insert(key.into_owned(), v);
                }
            }
        }
        Ok(env)
    }
}

impl<'de> Deserialize<'de> for RawEnvelope<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EnvelopeVisitor)
    }
}

/// A well-formed request.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) enc: Encoding,
    pub(crate) shape: Shape,
    pub(crate) id: RequestId,
    pub(crate) name: Cow<'a, str>,
    /// Always an object.
    pub(crate) data: Value,
}

/// A body that is not a well-formed request, with whatever could be read of
/// it so that the error reply still carries the id.
#[derive(Debug)]
pub(crate) struct Invalid<'a> {
    pub(crate) enc: Encoding,
    pub(crate) shape: Shape,
    pub(crate) id: RequestId,
    pub(crate) name: Option<Cow<'a, str>>,
    pub(crate) message: Cow<'static, str>,
}

/// Decodes one MessagePack map that must fill `body` to its end (as
/// serde_json refuses trailing characters).
fn from_msgpack(body: &[u8]) -> Result<RawEnvelope<'static>, String> {
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(body));
    let raw = RawEnvelope::deserialize(&mut de).map_err(|e| e.to_string())?;
    let used = de.position();
    if used < body.len() as u64 {
        return Err(format!(
            "trailing bytes after the MessagePack map ({} of {} bytes)",
            body.len() as u64 - used,
            body.len()
        ));
    }
    Ok(raw)
}

/// Decodes a body.
pub(crate) fn parse(body: &Bytes) -> Result<Parsed<'_>, Invalid<'_>> {
    let invalid = |enc, shape, id, name, message| Invalid {
        enc,
        shape,
        id,
        name,
        message,
    };
    let Some(enc) = Encoding::detect(body) else {
        return Err(invalid(
            Encoding::Json,
            Shape::Native,
            RequestId::NULL,
            None,
            Cow::Borrowed("body is neither a JSON object nor a MessagePack map"),
        ));
    };
    let raw: Result<RawEnvelope<'_>, String> = match enc {
        Encoding::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
        Encoding::MsgPack => from_msgpack(body),
    };
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => {
            return Err(invalid(
                enc,
                Shape::Native,
                RequestId::NULL,
                None,
                Cow::Owned(format!("undecodable body: {e}")),
            ))
        }
    };
    let shape = if raw.service.is_none() && raw.cmd.is_some() {
        Shape::ThreadCenter
    } else {
        Shape::Native
    };
    let id = match raw.id {
        None | Some(Scalar::Null) => RequestId::NULL,
        Some(Scalar::I64(i)) => RequestId::from(i),
        Some(Scalar::U64(u)) => RequestId::from(u),
        Some(Scalar::Str(s)) => RequestId::from_body(body, &s),
        Some(Scalar::Other) => {
            return Err(invalid(
                enc,
                shape,
                RequestId::NULL,
                None,
                Cow::Borrowed("id must be a string or an integer"),
            ))
        }
    };
    let (field, name) = match (raw.service, raw.cmd) {
        (Some(s), _) => ("service", s),
        (None, Some(c)) => ("cmd", c),
        (None, None) => {
            return Err(invalid(
                enc,
                shape,
                id,
                None,
                Cow::Borrowed("missing service"),
            ))
        }
    };
    let Scalar::Str(name) = name else {
        return Err(invalid(
            enc,
            shape,
            id,
            None,
            Cow::Owned(format!("{field} must be a string")),
        ));
    };
    let data = match shape {
        Shape::Native => match raw.data {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => {
                return Err(invalid(
                    enc,
                    shape,
                    id,
                    Some(name),
                    Cow::Borrowed("data must be an object"),
                ))
            }
        },
        Shape::ThreadCenter => {
            let mut args = raw.rest;
            if let Some(d) = raw.data {
                args.insert("data".to_owned(), d);
            }
            Value::Object(args)
        }
    };
    Ok(Parsed {
        enc,
        shape,
        id,
        name,
        data,
    })
}

// ---------------------------------------------------------------- encoding

/// A reply or push could not be serialised.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    /// JSON serialisation failed.
    #[error("JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// MessagePack serialisation failed.
    #[error("MessagePack encoding failed: {0}")]
    MsgPack(#[from] rmp_serde::encode::Error),
    /// The body is larger than a frame's length prefix can say.
    #[error("a body of {0} bytes is too large for a frame")]
    TooLarge(usize),
}

#[derive(Serialize)]
struct ErrOut<'a> {
    code: ErrorCode,
    message: &'a str,
}

/// The `status` of an error reply's `data`, as the seeds spell it.
pub(crate) const ERROR_STATUS: &str = "erro";

/// The `data` of a native error reply, in the seeds' shape:
/// `{"status": "erro", "description": <message>, <extra>...}` (an extra
/// field named `status` or `description` is left out).
struct ErrData<'a> {
    description: &'a str,
    extra: Option<&'a Map<String, Value>>,
}

impl ErrData<'_> {
    fn extras(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.extra
            .into_iter()
            .flatten()
            .filter(|(k, _)| !matches!(k.as_str(), "status" | "description"))
    }
}

impl Serialize for ErrData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2 + self.extras().count()))?;
        m.serialize_entry("status", ERROR_STATUS)?;
        m.serialize_entry("description", self.description)?;
        for (k, v) in self.extras() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The `data` of a native reply: the service's, or an error's.
enum DataOut<'a> {
    Ok(&'a Value),
    Err(ErrData<'a>),
}

impl Serialize for DataOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DataOut::Ok(v) => v.serialize(s),
            DataOut::Err(e) => e.serialize(s),
        }
    }
}

#[derive(Serialize)]
struct NativeOut<'a> {
    id: &'a RequestId,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<DataOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrOut<'a>>,
}

#[derive(Serialize)]
struct ThreadCenterOut<'a> {
    id: &'a RequestId,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrOut<'a>>,
}

/// An error as a reply says it: the code and message of `error`, and the
/// extra fields of the seeds' `data` beside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorReply<'a> {
    pub(crate) code: ErrorCode,
    pub(crate) message: &'a str,
    pub(crate) data: Option<&'a Map<String, Value>>,
}

impl<'a> ErrorReply<'a> {
    /// An error with no extra fields.
    pub(crate) fn new(code: ErrorCode, message: &'a str) -> Self {
        ErrorReply {
            code,
            message,
            data: None,
        }
    }
}

/// What a reply says: data, or an error.
pub(crate) type Outcome<'a> = Result<&'a Value, ErrorReply<'a>>;

fn write_body<T: Serialize>(out: &mut BytesMut, enc: Encoding, v: &T) -> Result<(), EncodeError> {
    let start = out.len();
    let r = match enc {
        Encoding::Json => serde_json::to_writer(out.writer(), v).map_err(EncodeError::from),
        Encoding::MsgPack => {
            rmp_serde::encode::write_named(&mut out.writer(), v).map_err(EncodeError::from)
        }
    };
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// Appends the reply body to `out`. On error `out` is left as it was.
///
/// A native error reply is `{"id", "service", "data", "error"}`: `error`
/// is corral's `{"code", "message"}`, `data` the seeds' `{"status":
/// "erro", "description": <message>, ...}` (their clients read
/// `data.status` and show `data.description`). A ThreadCenter error reply
/// keeps its own shape, `{"id", "error"}`.
pub(crate) fn write_reply(
    out: &mut BytesMut,
    enc: Encoding,
    shape: Shape,
    id: &RequestId,
    service: Option<&str>,
    outcome: Outcome<'_>,
) -> Result<(), EncodeError> {
    match shape {
        Shape::Native => {
            let (data, error) = match outcome {
                Ok(v) => (DataOut::Ok(v), None),
                Err(e) => (
                    DataOut::Err(ErrData {
                        description: e.message,
                        extra: e.data,
                    }),
                    Some(ErrOut {
                        code: e.code,
                        message: e.message,
                    }),
                ),
            };
            write_body(
                out,
                enc,
                &NativeOut {
                    id,
                    service,
                    data: Some(data),
                    error,
                },
            )
        }
        Shape::ThreadCenter => {
            let (result, error) = match outcome {
                Ok(v) => (Some(v), None),
                Err(e) => (
                    None,
                    Some(ErrOut {
                        code: e.code,
                        message: e.message,
                    }),
                ),
            };
            write_body(out, enc, &ThreadCenterOut { id, result, error })
        }
    }
}

/// Appends a push body, `{"topic": topic, "data": data}`, to `out`. On
/// error `out` is left as it was.
pub(crate) fn write_push<T: Serialize + ?Sized>(
    out: &mut BytesMut,
    enc: Encoding,
    topic: &str,
    data: &T,
) -> Result<(), EncodeError> {
    #[derive(Serialize)]
    struct PushOut<'a, T: ?Sized> {
        topic: &'a str,
        data: &'a T,
    }
    write_body(out, enc, &PushOut { topic, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgpack(v: &Value) -> Bytes {
        Bytes::from(rmp_serde::to_vec_named(v).unwrap_or_default())
    }

    fn reply(
        enc: Encoding,
        shape: Shape,
        id: &RequestId,
        svc: Option<&str>,
        o: Outcome<'_>,
    ) -> Value {
        let mut out = BytesMut::new();
        assert!(write_reply(&mut out, enc, shape, id, svc, o).is_ok());
        match enc {
            Encoding::Json => serde_json::from_slice(&out).unwrap_or(Value::Null),
            Encoding::MsgPack => rmp_serde::from_slice(&out).unwrap_or(Value::Null),
        }
    }

    #[test]
    fn detects_encodings() {
        assert_eq!(Encoding::detect(b"{}"), Some(Encoding::Json));
        assert_eq!(Encoding::detect(b" \r\n\t{\"a\":1}"), Some(Encoding::Json));
        assert_eq!(Encoding::detect(&[0x80]), Some(Encoding::MsgPack));
        assert_eq!(Encoding::detect(&[0x8f]), Some(Encoding::MsgPack));
        assert_eq!(Encoding::detect(&[0xde, 0, 1]), Some(Encoding::MsgPack));
        assert_eq!(
            Encoding::detect(&[0xdf, 0, 0, 0, 1]),
            Some(Encoding::MsgPack)
        );
        assert_eq!(Encoding::detect(b""), None);
        assert_eq!(Encoding::detect(b"   "), None);
        assert_eq!(Encoding::detect(b"[1]"), None);
        assert_eq!(Encoding::detect(&[0x90]), None); // msgpack array
        assert_eq!(Encoding::detect(b"hello"), None);
    }

    #[test]
    fn parses_native_json_with_borrowed_id() {
        let body = Bytes::from_static(br#"{"id":"abc","service":"echo","data":{"x":1}}"#);
        let p = parse(&body)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(p.enc, Encoding::Json);
        assert_eq!(p.shape, Shape::Native);
        assert_eq!(p.id.as_str(), Some("abc"));
        assert_eq!(p.name, "echo");
        assert_eq!(p.data, json!({"x":1}));
        // Escaped ids are copied, not borrowed, and still right.
        let body = Bytes::from_static(br#"{"id":"a\"b","service":"ping"}"#);
        let p = parse(&body)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(p.id.as_str(), Some("a\"b"));
        assert_eq!(p.data, json!({}));
    }

    #[test]
    fn parses_native_msgpack_and_int_ids() {
        let body = msgpack(&json!({"id": 7, "service": "echo", "data": {"s": "x"}}));
        let p = parse(&body)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(p.enc, Encoding::MsgPack);
        assert_eq!(p.id.as_i64(), Some(7));
        assert_eq!(p.data, json!({"s":"x"}));
        let body = msgpack(&json!({"id": "m1", "service": "ping"}));
        let p = parse(&body)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(p.id.as_str(), Some("m1"));
        let body = Bytes::from_static(br#"{"id":-3,"service":"ping"}"#);
        let p = parse(&body)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(p.id.as_i64(), Some(-3));
    }

    #[test]
    fn parses_thread_center_shape() {
        let body = Bytes::from_static(br#"{"id":"1","cmd":"compute","n":500000}"#);
        let p = parse(&body)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(p.shape, Shape::ThreadCenter);
        assert_eq!(p.name, "compute");
        assert_eq!(p.data, json!({"n":500000}));
        let body = msgpack(&json!({"id":"2","cmd":"echo","payload":"hi","data":5}));
        let p = parse(&body)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(p.shape, Shape::ThreadCenter);
        assert_eq!(p.data, json!({"payload":"hi","data":5}));
    }

    #[test]
    fn reports_bad_requests_with_what_is_known() {
        let cases: &[(&[u8], bool, &str)] = &[
            (b"garbage", false, "neither"),
            (b"{not json", false, "undecodable"),
            (br#"{"id":"x","data":{}}"#, true, "missing service"),
            (
                br#"{"id":"x","service":5}"#,
                true,
                "service must be a string",
            ),
            (br#"{"id":"x","cmd":[1]}"#, true, "cmd must be a string"),
            (
                br#"{"id":"x","service":"echo","data":[1]}"#,
                true,
                "data must be an object",
            ),
            (br#"{"id":1.5,"service":"echo"}"#, false, "id must be"),
            (br#"{"id":{"a":1},"service":"echo"}"#, false, "id must be"),
            (br#"{"service":"echo"} trailing"#, false, "undecodable"),
        ];
        for (body, has_id, msg) in cases {
            let body = Bytes::copy_from_slice(body);
            match parse(&body) {
                Ok(p) => panic!("{body:?} parsed as {p:?}"),
                Err(inv) => {
                    assert_eq!(inv.enc, Encoding::Json);
                    assert!(inv.message.contains(msg), "{body:?}: {}", inv.message);
                    assert_eq!(!inv.id.is_null(), *has_id, "{body:?}");
                }
            }
        }
        // Undecodable msgpack (a map header with nothing after it).
        let body = Bytes::from_static(&[0x81]);
        let inv = parse(&body).err();
        assert_eq!(inv.map(|i| i.enc), Some(Encoding::MsgPack));
    }

    #[test]
    fn msgpack_with_trailing_bytes_is_refused_like_json() {
        let whole = msgpack(&json!({"id": 9, "service": "ping"}));
        assert!(parse(&whole).is_ok());
        for tail in [&[0xc0][..], &[0x81, 0xa1, b'a', 1], b"x", &[0, 0, 0, 0]] {
            let mut body = BytesMut::from(&whole[..]);
            body.extend_from_slice(tail);
            let body = body.freeze();
            match parse(&body) {
                Ok(p) => panic!("{body:?} parsed as {p:?}"),
                Err(inv) => {
                    assert_eq!(inv.enc, Encoding::MsgPack);
                    assert!(inv.message.contains("trailing"), "{}", inv.message);
                }
            }
        }
    }

    #[test]
    fn native_reply_and_error_shapes() {
        let id = RequestId::from("a");
        let data = json!({"pong": true});
        for enc in [Encoding::Json, Encoding::MsgPack] {
            assert_eq!(
                reply(enc, Shape::Native, &id, Some("ping"), Ok(&data)),
                json!({"id":"a","service":"ping","data":{"pong":true}})
            );
            assert_eq!(
                reply(
                    enc,
                    Shape::Native,
                    &RequestId::from(3i64),
                    Some("x"),
                    Err(ErrorReply::new(ErrorCode::UnknownService, "no"))
                ),
                json!({"id":3,"service":"x","error":{"code":"UNKNOWN_SERVICE","message":"no"},
                       "data":{"status":"erro","description":"no"}})
            );
            assert_eq!(
                reply(
                    enc,
                    Shape::Native,
                    &RequestId::NULL,
                    None,
                    Err(ErrorReply::new(ErrorCode::BadRequest, "bad"))
                ),
                json!({"id":null,"error":{"code":"BAD_REQUEST","message":"bad"},
                       "data":{"status":"erro","description":"bad"}})
            );
        }
    }

    /// The seeds' error `data`: status and description first, the extra
    /// fields beside them, never in their place.
    #[test]
    fn native_error_data_carries_extra_fields_beside_the_seeds() {
        let extra = json!({"timestamp": 5, "clock": 7, "status": "x", "description": "y"});
        let extra = extra.as_object().cloned().unwrap_or_default();
        for enc in [Encoding::Json, Encoding::MsgPack] {
            let e = ErrorReply {
                code: ErrorCode::NotFound,
                message: "no channel",
                data: Some(&extra),
            };
            assert_eq!(
                reply(
                    enc,
                    Shape::Native,
                    &RequestId::from(1i64),
                    Some("publish"),
                    Err(e)
                ),
                json!({"id": 1, "service": "publish",
                       "error": {"code": "NOT_FOUND", "message": "no channel"},
                       "data": {"status": "erro", "description": "no channel",
                                "timestamp": 5, "clock": 7}})
            );
        }
    }

    #[test]
    fn thread_center_reply_shapes() {
        let id = RequestId::from("1");
        for enc in [Encoding::Json, Encoding::MsgPack] {
            assert_eq!(
                reply(
                    enc,
                    Shape::ThreadCenter,
                    &id,
                    Some("compute"),
                    Ok(&json!(42))
                ),
                json!({"id":"1","result":42})
            );
            assert_eq!(
                reply(
                    enc,
                    Shape::ThreadCenter,
                    &id,
                    Some("compute"),
                    Err(ErrorReply::new(ErrorCode::BadRequest, "n"))
                ),
                json!({"id":"1","error":{"code":"BAD_REQUEST","message":"n"}})
            );
        }
    }

    #[test]
    fn msgpack_replies_are_named_maps() {
        let mut out = BytesMut::new();
        let r = write_reply(
            &mut out,
            Encoding::MsgPack,
            Shape::ThreadCenter,
            &RequestId::from("1"),
            None,
            Ok(&json!("x")),
        );
        assert!(r.is_ok());
        assert_eq!(out.first(), Some(&0x82)); // fixmap of two entries
    }

    #[test]
    fn error_codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }
}
