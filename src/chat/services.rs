//! The chat's RPC services: one [`Service`] per name, each a match arm of
//! [`ChatService::op`] over the [`Chat`] handle.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{
    ChannelRecord, Chat, Event, EventKind, Scope, StoreError, Topic, Write, WriteError, Written,
};
use crate::async_trait;
use crate::rpc::{CallContext, Registry, Request, Service, ServiceError};

/// The chat service names, as registered.
pub(crate) const SERVICES: [&str; 11] = [
    "login",
    "logout",
    "users",
    "channel",
    "channels",
    "subscribe",
    "unsubscribe",
    "publish",
    "message",
    "history",
    "store_backup",
];

/// Longest user or channel name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 32;
/// Longest client message id, in bytes.
pub(crate) const MAX_CLIENT_ID_LEN: usize = 64;
/// Largest `clock` a request may carry when the node has not reached it
/// itself: 2^53 - 1, the largest integer JavaScript (the web chat) holds
/// exactly. Above it a clock is absurd and refused with BAD_REQUEST.
pub(crate) const MAX_CLIENT_CLOCK: u64 = (1 << 53) - 1;
/// Room kept in a list reply for the envelope (`id`, `service`, `clock`,
/// ...) around the list.
const REPLY_OVERHEAD: usize = 1024;
/// Room counted per list entry beyond its JSON length (MessagePack may
/// spend a byte or two more than JSON on a long string).
const ENTRY_OVERHEAD: usize = 16;
/// The seeds' `status` of a successful `login` or `channel` reply.
pub(crate) const STATUS_CREATED: &str = "sucesso";
/// The seeds' `status` of every other successful chat reply.
pub(crate) const STATUS_OK: &str = "OK";
/// Longest `timestamp` string a request may carry (an ISO-8601 date and
/// time with nanoseconds and an offset takes 35 bytes).
const MAX_TIMESTAMP_LEN: usize = 64;

/// Registers the chat services into `registry`, leaving a name already
/// there alone.
pub(super) fn register_into(chat: &Chat, registry: &mut Registry) {
    for (name, op) in SERVICES.iter().zip(OPS) {
        if registry.get(name).is_none() {
            registry.register(
                *name,
                Arc::new(ChatService {
                    chat: chat.clone(),
                    op,
                }),
            );
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Login,
    Logout,
    Users,
    Channel,
    Channels,
    Subscribe,
    Unsubscribe,
    Publish,
    Message,
    History,
    StoreBackup,
}

const OPS: [Op; 11] = [
    Op::Login,
    Op::Logout,
    Op::Users,
    Op::Channel,
    Op::Channels,
    Op::Subscribe,
    Op::Unsubscribe,
    Op::Publish,
    Op::Message,
    Op::History,
    Op::StoreBackup,
];

impl Op {
    /// The seeds' `status` of a successful reply.
    fn status(self) -> &'static str {
        match self {
            Op::Login | Op::Channel => STATUS_CREATED,
            _ => STATUS_OK,
        }
    }
}

struct ChatService {
    chat: Chat,
    op: Op,
}

/// Reads an ISO-8601 date and time, with an offset (`Z`, `+01:00`) or
/// without one (taken as UTC), as Python's `datetime.isoformat()` writes
/// it (`2025-11-12T10:00:00.123456`, `2025-11-12T10:00:00+00:00`).
pub(crate) fn parse_iso8601(s: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Iso8601;
    if s.len() > MAX_TIMESTAMP_LEN {
        return None;
    }
    time::OffsetDateTime::parse(s, &Iso8601::DEFAULT)
        .or_else(|_| time::PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).map(|t| t.assume_utc()))
        .ok()
}

/// Checks a request's `timestamp`: absent, null, a number (integer or
/// float; seconds or milliseconds, either is accepted) or an ISO-8601
/// string. Anything else is a BAD_REQUEST naming the field. The value is
/// not used: replies carry the node's own `timestamp`.
pub(crate) fn check_timestamp(data: &Value) -> Result<(), ServiceError> {
    match data.get("timestamp") {
        None | Some(Value::Null | Value::Number(_)) => Ok(()),
        Some(Value::String(s)) if parse_iso8601(s).is_some() => Ok(()),
        Some(Value::String(s)) => {
            let shown: String = s.chars().take(MAX_TIMESTAMP_LEN).collect();
            Err(ServiceError::bad_request(format!(
                "timestamp {shown:?} is not an ISO-8601 date and time \
                 (e.g. 2025-11-12T10:00:00.123456, 2025-11-12T10:00:00Z) nor a number"
            )))
        }
        Some(_) => Err(ServiceError::bad_request(
            "timestamp must be a number or an ISO-8601 string",
        )),
    }
}

/// Checks a user, channel or topic name: 1 to 32 of `A-Za-z0-9_-`.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<(), ServiceError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ServiceError::bad_request(format!(
            "{what} must be 1 to {MAX_NAME_LEN} characters long"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ServiceError::bad_request(format!(
            "{what} {name:?} may hold only letters, digits, '_' and '-'"
        )));
    }
    Ok(())
}

/// Whether a caller from `peer` may use `store_backup`: only one whose
/// address is loopback (`127.0.0.0/8`, `::1`, or `::ffff:127.x.y.z`). A
/// caller whose address the transport does not give (the WebSocket, which
/// a reverse proxy may stand in front of) is refused, as is every other
/// address: a TCP, TLS or SCTP peer on another host never has a loopback
/// address (the kernel drops packets from another host that claim one).
pub(crate) fn on_loopback(peer: Option<SocketAddr>) -> bool {
    peer.is_some_and(|p| p.ip().to_canonical().is_loopback())
}

fn str_field<'a>(data: &'a Value, key: &str) -> Result<Option<&'a str>, ServiceError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ServiceError::bad_request(format!("{key} must be a string"))),
    }
}

fn required<'a>(data: &'a Value, key: &str) -> Result<&'a str, ServiceError> {
    str_field(data, key)?.ok_or_else(|| ServiceError::bad_request(format!("missing field {key}")))
}

fn name_field<'a>(data: &'a Value, key: &str) -> Result<&'a str, ServiceError> {
    let n = required(data, key)?;
    validate_name(key, n)?;
    Ok(n)
}

fn u64_field(data: &Value, key: &str) -> Result<Option<u64>, ServiceError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ServiceError::bad_request(format!("{key} must be an unsigned integer"))),
    }
}

fn client_id(data: &Value) -> Result<Option<String>, ServiceError> {
    let v = match data.get("client_id").or_else(|| data.get("msg_id")) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(ServiceError::bad_request(
                "client_id must be a string or a number",
            ))
        }
    };
    if v.is_empty() || v.len() > MAX_CLIENT_ID_LEN {
        return Err(ServiceError::bad_request(format!(
            "client_id must be 1 to {MAX_CLIENT_ID_LEN} characters long"
        )));
    }
    Ok(Some(v))
}

/// Whether `given` is `expected`, comparing every byte whatever the first
/// difference (no early exit to time).
fn same_token(given: &str, expected: &str) -> bool {
    let (g, e) = (given.as_bytes(), expected.as_bytes());
    let mut diff = u8::from(g.len() != e.len());
    for (i, b) in e.iter().enumerate() {
        diff |= b ^ g.get(i).copied().unwrap_or(!b);
    }
    diff == 0
}

/// The encoded size a list entry adds to a reply, bounded from above.
fn entry_size(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX / 2, |b| b.len()) + ENTRY_OVERHEAD
}

fn store_err(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict(m) => ServiceError::conflict(m),
        StoreError::NotFound(m) => ServiceError::not_found(m),
        e => ServiceError::internal(e.to_string()),
    }
}

fn write_err(e: WriteError) -> ServiceError {
    match e {
        WriteError::Store(e) => store_err(e),
        WriteError::Unavailable(m) => ServiceError::unavailable(m),
    }
}

/// A write's result of another shape than the write's (never happens).
fn odd_result() -> ServiceError {
    ServiceError::internal("the store answered a write with another kind of result")
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[async_trait]
impl Service for ChatService {
    async fn call(&self, req: Request, ctx: &CallContext) -> Result<Value, ServiceError> {
        let chat = &self.chat;
        match self.serve(&req, ctx).await {
            Ok(mut reply) => {
                reply.insert("status".into(), Value::from(self.op.status()));
                reply.insert("timestamp".into(), Value::from(chat.wall_clock().now_ms()));
                reply.insert("clock".into(), Value::from(chat.clock().tick()));
                Ok(Value::Object(reply))
            }
            Err(e) => {
                // The seeds' error data: beside `status` and `description`
                // (added by the envelope), the time and clock of the send,
                // and for publish and message their `message` too.
                let mut extra = Map::new();
                extra.insert("timestamp".into(), Value::from(chat.wall_clock().now_ms()));
                extra.insert("clock".into(), Value::from(chat.clock().tick()));
                if matches!(self.op, Op::Publish | Op::Message) {
                    extra.insert("message".into(), Value::from(e.message.clone()));
                }
                Err(e.with_data(extra))
            }
        }
    }
}

impl ChatService {
    /// Checks the request's `clock` and `timestamp`, runs the service and
    /// returns its reply (without status, timestamp and clock).
    async fn serve(
        &self,
        req: &Request,
        ctx: &CallContext,
    ) -> Result<Map<String, Value>, ServiceError> {
        let chat = &self.chat;
        if !chat.hub().admit(ctx.conn_id(), ctx.pushes()) {
            return Err(ServiceError::overloaded(
                "over this connection's chat rate limit; slow down",
            ));
        }
        let received = u64_field(&req.data, "clock")?;
        if let Some(c) = received {
            if c > MAX_CLIENT_CLOCK && c > chat.clock().now() {
                return Err(ServiceError::bad_request(format!(
                    "clock {c} is absurd: above {MAX_CLIENT_CLOCK} (2^53 - 1) and above \
                     the node's clock"
                )));
            }
        }
        check_timestamp(&req.data)?;
        let recv_clock = chat.clock().receive(received);
        self.op(&req.data, ctx, recv_clock).await
    }

    /// Bytes a list may take in a reply.
    fn list_budget(&self) -> usize {
        self.chat
            .reply_limit()
            .saturating_sub(REPLY_OVERHEAD)
            .max(1)
    }

    /// `after` and `limit` of a `users` or `channels` request.
    fn page_args(&self, data: &Value) -> Result<(Option<String>, usize), ServiceError> {
        let after = str_field(data, "after")?.map(str::to_owned);
        let max = self.chat.settings().list_max_limit;
        let limit = match u64_field(data, "limit")? {
            Some(0) => return Err(ServiceError::bad_request("limit must be at least 1")),
            Some(n) => n.min(max as u64) as usize,
            None => max,
        };
        Ok((after, limit))
    }

    /// The first entries of `entries` (which holds up to `limit + 1`) that
    /// fit in `limit` and below the frame limit (at least one), and the
    /// `next` cursor (the key of the last one given) when more remain.
    /// Each entry is counted with its key (the name), since the reply
    /// lists both: the names, and the entries beside them.
    fn page(
        &self,
        entries: impl Iterator<Item = Value>,
        limit: usize,
        key: impl Fn(&Value) -> Value,
    ) -> (Vec<Value>, Value) {
        let mut budget = self.list_budget();
        let mut list = Vec::new();
        let mut more = false;
        for v in entries {
            let size = entry_size(&v).saturating_add(entry_size(&key(&v)));
            if list.len() == limit || (size > budget && !list.is_empty()) {
                more = true;
                break;
            }
            budget = budget.saturating_sub(size);
            list.push(v);
        }
        let next = match list.last() {
            Some(last) if more => key(last),
            _ => Value::Null,
        };
        (list, next)
    }

    fn logged_in(&self, ctx: &CallContext) -> Result<String, ServiceError> {
        self.chat
            .hub()
            .user_of(ctx.conn_id())
            .ok_or_else(|| ServiceError::bad_request("log in first (service login)"))
    }

    /// The sender of a publish or private message. `who` (the `user` or
    /// `src` field) must be absent or the logged-in user, except on a
    /// sessionless connection (ZeroMQ: libzmq reconnects unseen, a broker
    /// carries many clients on one connection), where the seeds' servers'
    /// rule holds: the request names its sender, who must be a known user
    /// without a token (anyone may log in as such a user, so naming one
    /// grants nothing more); a user with a token (`[chat.users]`) must have
    /// logged in on the connection.
    async fn sender(
        &self,
        data: &Value,
        key: &str,
        ctx: &CallContext,
    ) -> Result<String, ServiceError> {
        let named = str_field(data, key)?;
        let me = self.chat.hub().user_of(ctx.conn_id());
        match (named, me) {
            (Some(u), Some(me)) if u == me => Ok(me),
            (Some(u), _) if ctx.is_sessionless() => {
                validate_name(key, u)?;
                if self.chat.settings().users.contains_key(u) {
                    return Err(ServiceError::bad_request(format!(
                        "{key} {u:?} logs in with a token: log in on this connection first"
                    )));
                }
                match self.chat.store().user(u).await.map_err(store_err)? {
                    Some(_) => Ok(u.to_owned()),
                    None => Err(ServiceError::bad_request(format!(
                        "{key} {u:?} has never logged in (service login)"
                    ))),
                }
            }
            (Some(u), Some(me)) => Err(ServiceError::bad_request(format!(
                "{key} {u:?} is not the logged-in user {me:?}"
            ))),
            (_, Some(me)) => Ok(me),
            (_, None) => Err(ServiceError::bad_request("log in first (service login)")),
        }
    }

    fn message_text(&self, data: &Value) -> Result<String, ServiceError> {
        let m = required(data, "message")?;
        let max = self.chat.settings().max_message_bytes;
        if m.len() > max {
            return Err(ServiceError::bad_request(format!(
                "message is {} bytes long; the limit is {max}",
                m.len()
            )));
        }
        Ok(m.to_owned())
    }

    /// Stores a publication or private message from `user` to `target`
    /// (a channel or a user); unless it is a retry already stored, its
    /// commit counts it and pushes it to the target's subscribers (see
    /// [`Chat::open`]). Returns the stored event and whether it was a
    /// duplicate.
    async fn append(
        &self,
        kind: EventKind,
        user: String,
        target: String,
        data: &Value,
        clock: u64,
    ) -> Result<(Event, bool), ServiceError> {
        let chat = &self.chat;
        let ev = Event {
            seq: 0,
            kind,
            user,
            target,
            message: self.message_text(data)?,
            timestamp: chat.wall_clock().now_ms(),
            clock,
            client_id: client_id(data)?,
        };
        // The store's commit hook counts the event and pushes it.
        match chat.write(Write::Append { event: ev }).await {
            Ok(Written::Appended(a)) => Ok((a.event, a.duplicate)),
            Ok(_) => Err(odd_result()),
            Err(e) => Err(write_err(e)),
        }
    }

    async fn op(
        &self,
        data: &Value,
        ctx: &CallContext,
        clock: u64,
    ) -> Result<Map<String, Value>, ServiceError> {
        let chat = &self.chat;
        let store = chat.store();
        let conn = ctx.conn_id();
        Ok(match self.op {
            Op::Login => {
                let user = name_field(data, "user")?;
                if let Some(token) = chat.settings().users.get(user) {
                    match str_field(data, "token")? {
                        Some(t) if same_token(t, token) => {}
                        Some(_) => {
                            return Err(ServiceError::bad_request(format!(
                                "wrong token for user {user:?}"
                            )))
                        }
                        None => {
                            return Err(ServiceError::bad_request(format!(
                                "user {user:?} logs in with a token (field token)"
                            )))
                        }
                    }
                }
                let write = Write::Login {
                    user: user.to_owned(),
                    ts: chat.wall_clock().now_ms(),
                };
                let rec = match chat.write(write).await.map_err(write_err)? {
                    Written::User(rec) => rec,
                    _ => return Err(odd_result()),
                };
                chat.hub().login(conn, ctx.pushes(), user);
                obj(json!({"user": rec.user, "created": rec.created, "logins": rec.logins}))
            }
            Op::Logout => match chat.hub().logout_conn(conn) {
                Some(user) => obj(json!({ "user": user })),
                None => return Err(ServiceError::bad_request("not logged in")),
            },
            Op::Users => {
                chat.readable().map_err(ServiceError::unavailable)?;
                let (after, limit) = self.page_args(data)?;
                let online = chat.hub().online();
                let users = store
                    .users_page(after, limit + 1)
                    .await
                    .map_err(store_err)?;
                let entries = users.into_iter().map(|u| {
                    json!({
                        "user": u.user,
                        "online": online.contains(&u.user),
                        "created": u.created,
                        "last_login": u.logins.last(),
                    })
                });
                let (details, next) = self.page(entries, limit, |v| v["user"].clone());
                let names: Vec<Value> = details.iter().map(|d| d["user"].clone()).collect();
                obj(json!({ "users": names, "details": details, "next": next }))
            }
            Op::Channel => {
                let channel = name_field(data, "channel")?;
                if chat.settings().users.contains_key(channel) {
                    return Err(ServiceError::conflict(format!(
                        "{channel:?} is a user's name; a name is a user's or a channel's, not both"
                    )));
                }
                let rec = ChannelRecord {
                    channel: channel.to_owned(),
                    creator: chat.hub().user_of(conn),
                    created: chat.wall_clock().now_ms(),
                    clock,
                };
                let rec = match chat.write(Write::Channel { channel: rec }).await {
                    Ok(Written::Channel(rec)) => rec,
                    Ok(_) => return Err(odd_result()),
                    Err(e) => return Err(write_err(e)),
                };
                obj(json!({"channel": rec.channel, "creator": rec.creator, "created": rec.created}))
            }
            Op::Channels => {
                chat.readable().map_err(ServiceError::unavailable)?;
                let (after, limit) = self.page_args(data)?;
                let channels = store
                    .channels_page(after, limit + 1)
                    .await
                    .map_err(store_err)?;
                let entries = channels.into_iter().map(
                    |c| json!({"channel": c.channel, "creator": c.creator, "created": c.created}),
                );
                let (details, next) = self.page(entries, limit, |v| v["channel"].clone());
                let names: Vec<Value> = details.iter().map(|d| d["channel"].clone()).collect();
                obj(json!({ "channels": names, "details": details, "next": next }))
            }
            Op::Subscribe => {
                let name = name_field(data, "topic")?;
                // Your own name is your private stream; any other name is a
                // channel, never someone's private stream.
                let topic = if chat.hub().user_of(conn).as_deref() == Some(name) {
                    Topic::Private(name.to_owned())
                } else if store.channel_exists(name).await.map_err(store_err)? {
                    Topic::Channel(name.to_owned())
                } else {
                    return Err(ServiceError::not_found(format!(
                        "no channel {name:?} (create it with service channel)"
                    )));
                };
                let new = chat.hub().subscribe_to(conn, ctx.pushes(), topic);
                obj(json!({"topic": name, "subscribed": new}))
            }
            Op::Unsubscribe => {
                let name = name_field(data, "topic")?;
                let topic = if chat.hub().user_of(conn).as_deref() == Some(name) {
                    Topic::Private(name.to_owned())
                } else {
                    Topic::Channel(name.to_owned())
                };
                let was = chat.hub().unsubscribe_from(conn, &topic);
                obj(json!({"topic": name, "unsubscribed": was}))
            }
            Op::Publish => {
                let user = self.sender(data, "user", ctx).await?;
                let channel = name_field(data, "channel")?.to_owned();
                let (ev, duplicate) = self
                    .append(EventKind::Publish, user, channel, data, clock)
                    .await?;
                obj(json!({
                    "seq": ev.seq, "channel": ev.target, "user": ev.user,
                    "duplicate": duplicate,
                }))
            }
            Op::Message => {
                let src = self.sender(data, "src", ctx).await?;
                let dst = name_field(data, "dst")?.to_owned();
                let (ev, duplicate) = self
                    .append(EventKind::Message, src, dst, data, clock)
                    .await?;
                obj(json!({
                    "seq": ev.seq, "src": ev.user, "dst": ev.target,
                    "duplicate": duplicate,
                }))
            }
            Op::StoreBackup => {
                if !on_loopback(ctx.peer()) {
                    let from = ctx
                        .peer()
                        .map_or_else(|| "an unknown address".to_owned(), |p| p.ip().to_string());
                    return Err(ServiceError::forbidden(format!(
                        "store_backup answers callers on loopback only (this one is at {from}); \
                         run `corral store backup` on the node's host"
                    )));
                }
                if let Some(named) = str_field(data, "store")? {
                    let mine = tokio::fs::canonicalize(store.path()).await;
                    let theirs = tokio::fs::canonicalize(named).await;
                    let same = matches!((&mine, &theirs), (Ok(a), Ok(b)) if a == b);
                    if !same {
                        return Err(ServiceError::conflict(format!(
                            "{named} is not this node's store; this node's store is {}",
                            store.path().display()
                        )));
                    }
                }
                let made = chat.backup().await.map_err(|e| {
                    ServiceError::internal(format!(
                        "backup into {} failed: {e}",
                        chat.backup_dir().display()
                    ))
                })?;
                obj(json!({
                    "path": made.path.display().to_string(),
                    "bytes": made.bytes,
                    "users": made.users,
                    "channels": made.channels,
                    "events": made.events,
                    "last_seq": made.last_seq,
                    "store": store.path().display().to_string(),
                }))
            }
            Op::History => {
                chat.readable().map_err(ServiceError::unavailable)?;
                let cfg = chat.settings();
                let channel = str_field(data, "channel")?;
                let user = str_field(data, "user")?;
                let scope = match (channel, user) {
                    (Some(c), None) => {
                        validate_name("channel", c)?;
                        if !store.channel_exists(c).await.map_err(store_err)? {
                            return Err(ServiceError::not_found(format!("no channel {c:?}")));
                        }
                        Scope::Channel(c.to_owned())
                    }
                    (None, Some(u)) => {
                        validate_name("user", u)?;
                        let me = self.logged_in(ctx)?;
                        if me != u {
                            return Err(ServiceError::bad_request(format!(
                                "the private messages of {u:?} are only for {u:?}"
                            )));
                        }
                        Scope::User(u.to_owned())
                    }
                    _ => {
                        return Err(ServiceError::bad_request(
                            "give exactly one of channel or user",
                        ))
                    }
                };
                let before = u64_field(data, "before")?;
                let limit = match u64_field(data, "limit")? {
                    Some(0) => return Err(ServiceError::bad_request("limit must be at least 1")),
                    Some(n) => (n.min(cfg.history_max_limit as u64)) as usize,
                    None => cfg.history_default_limit,
                };
                let events = store
                    .history(scope.clone(), before, limit)
                    .await
                    .map_err(store_err)?;
                let full = events.len() == limit;
                // The newest events that fit below the frame limit (at
                // least one); `next_before` pages back to the rest.
                let mut budget = self.list_budget();
                let mut messages: Vec<Value> = Vec::new();
                for ev in events.iter().rev() {
                    let v = ev.to_json();
                    let size = entry_size(&v);
                    if size > budget && !messages.is_empty() {
                        break;
                    }
                    budget = budget.saturating_sub(size);
                    messages.push(v);
                }
                let cut = messages.len() < events.len();
                messages.reverse();
                let next_before = if full || cut {
                    messages.first().and_then(|m| m["seq"].as_u64())
                } else {
                    None
                };
                let mut out = obj(json!({
                    "messages": messages,
                    "next_before": next_before,
                }));
                match scope {
                    Scope::Channel(c) => out.insert("channel".into(), Value::from(c)),
                    Scope::User(u) => out.insert("user".into(), Value::from(u)),
                };
                out
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::Encoding;
    use crate::rpc::Push;

    /// `store_backup`'s rule: loopback callers only; no address, no backup.
    #[test]
    fn only_loopback_peers_may_back_up() {
        let ok = [
            "127.0.0.1:1",
            "127.9.8.7:2",
            "[::1]:3",
            "[::ffff:127.0.0.1]:4",
        ];
        let refused = [
            "10.0.0.1:1",
            "192.168.1.20:2",
            "192.0.2.2:3",
            "0.0.0.0:4",
            "[::]:5",
            "[2001:db8::1]:6",
            "[::ffff:10.0.0.1]:7",
            "[fe80::1]:8",
        ];
        for a in ok {
            assert!(on_loopback(Some(a.parse().expect("addr"))), "{a}");
        }
        for a in refused {
            assert!(!on_loopback(Some(a.parse().expect("addr"))), "{a}");
        }
        assert!(!on_loopback(None));
    }

    /// Timestamps as the seeds send them: numbers (int or float, seconds
    /// or ms) and ISO-8601 strings with or without an offset; anything
    /// else is a BAD_REQUEST naming the field.
    #[test]
    fn request_timestamps_are_numbers_or_iso_8601() {
        let ok = [
            json!(1_762_941_600),
            json!(1_762_941_600_123u64),
            json!(1_762_941_600.123_456),
            json!(-1),
            json!("2025-11-12T10:00:00.123456"),
            json!("2025-11-12T10:00:00"),
            json!("2025-11-12T10:00:00Z"),
            json!("2025-11-12T10:00:00.5+01:00"),
            json!("2025-11-12T10:00:00.123456+00:00"),
            Value::Null,
        ];
        for t in ok {
            assert_eq!(check_timestamp(&json!({ "timestamp": t })), Ok(()), "{t}");
        }
        assert_eq!(check_timestamp(&json!({})), Ok(()));
        let bad = [
            json!(true),
            json!({"a": 1}),
            json!([1]),
            json!(""),
            json!("yesterday"),
            json!("2025-11-12"),
            json!("2025-13-12T10:00:00"),
            json!("2025-11-12T10:00:00 trailing"),
            json!("12/11/2025 10:00"),
            Value::from("2".repeat(10_000)),
        ];
        for t in bad {
            let e = check_timestamp(&json!({ "timestamp": t }));
            let e = e.err().unwrap_or_else(|| panic!("{t} accepted"));
            assert_eq!(e.code, crate::rpc::ErrorCode::BadRequest, "{t}");
            assert!(e.message.starts_with("timestamp"), "{t}: {}", e.message);
        }
        // Offsets count: the same instant written two ways.
        assert_eq!(
            parse_iso8601("2025-11-12T10:00:00+01:00"),
            parse_iso8601("2025-11-12T09:00:00")
        );
        assert_eq!(
            parse_iso8601("2025-11-12T10:00:00.123456").map(|t| t.microsecond()),
            Some(123_456)
        );
    }

    /// The seeds' statuses: "sucesso" for login and channel, "OK" for the
    /// rest.
    #[test]
    fn statuses_are_the_seeds() {
        for op in OPS {
            let want = if matches!(op, Op::Login | Op::Channel) {
                "sucesso"
            } else {
                "OK"
            };
            assert_eq!(op.status(), want, "{op:?}");
        }
    }

    fn event(kind: EventKind, client_id: Option<&str>) -> Event {
        Event {
            seq: 42,
            kind,
            user: "ann".into(),
            target: "bob".into(),
            message: "hi \"there\"".into(),
            timestamp: 1,
            clock: 9,
            client_id: client_id.map(Into::into),
        }
    }

    /// The seed's event shapes, written out: what `history` gives
    /// (`to_json`) and what a push carries (plus `event_clock`, with the
    /// node's time and clock), the latter byte for byte as the JSON value
    /// would encode in both encodings.
    #[test]
    fn events_have_the_seed_shapes_in_history_and_pushes() {
        let mut publish = serde_json::json!({
            "kind": "publish", "seq": 42, "user": "ann", "channel": "bob",
            "message": "hi \"there\"", "timestamp": 1, "clock": 9,
        });
        let mut message = serde_json::json!({
            "kind": "message", "seq": 42, "src": "ann", "dst": "bob",
            "message": "hi \"there\"", "timestamp": 1, "clock": 9,
        });
        for (kind, expected) in [
            (EventKind::Publish, &mut publish),
            (EventKind::Message, &mut message),
        ] {
            for id in [None, Some("m-1")] {
                let ev = event(kind, id);
                let mut want = obj(expected.clone());
                if let Some(id) = id {
                    want.insert("client_id".into(), Value::from(id));
                }
                assert_eq!(ev.to_json(), Value::Object(want.clone()), "{kind:?} {id:?}");

                want.insert("event_clock".into(), Value::from(9));
                want.insert("timestamp".into(), Value::from(77));
                want.insert("clock".into(), Value::from(10));
                let typed = Push::from_serialize("t", ev.data(77, 10, Some(9)));
                let value = Push::new("t", Value::Object(want));
                for enc in [Encoding::Json, Encoding::MsgPack] {
                    assert_eq!(
                        typed.encoded(enc),
                        value.encoded(enc),
                        "{kind:?} {id:?} {enc:?}"
                    );
                }
                assert_eq!(typed, value);
            }
        }
    }
}
