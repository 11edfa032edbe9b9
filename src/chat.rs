//! The chat: RPC services, the hub (pub/sub), the Lamport clock and the
//! durable store.
//!
//! ```text
//! chat_sup      rest_for_one
//! ├── chat_store  owns the redb store (<data_dir>/chat.redb) and its writer
//! └── chat_hub    owns the hub: topics -> subscribed connections, sessions
//! ```
//!
//! The node builds a [`Chat`] when `[chat] enabled = true`, adds
//! [`Chat::supervisor_spec`] to the root before the listeners and registers
//! [`Chat::services`] on every RPC listener.
//!
//! # Services (fields of `data`)
//!
//! Every request may carry `clock` (the client's Lamport clock, an unsigned
//! integer; one above 2^53 - 1 that the node has not reached itself is
//! refused with BAD_REQUEST) and `timestamp` (a number, or an ISO-8601
//! string with or without an offset; anything else is refused with
//! BAD_REQUEST; the node does not use it); every reply and push carries
//! `timestamp` (ms since the epoch, a number) and `clock` (the node's
//! Lamport clock, advanced by one for the send), and every reply the seeds'
//! `status`: `"sucesso"` for `login` and `channel`, `"OK"` for the others. The clock never goes back: it saturates instead of
//! wrapping, and it is stored with the events (and at a clean close), so a
//! restarted node resumes above it.
//!
//! | service | request | reply |
//! |---|---|---|
//! | `login` | `user`, `token`? | `user`, `created`, `logins` (timestamps) |
//! | `logout` | — | `user` |
//! | `users` | `limit`?, `after`? | `users`: list of names; `details`: list of {`user`, `online`, `created`, `last_login`} in the same order; `next` |
//! | `channel` | `channel` | `channel`, `creator`, `created` |
//! | `channels` | `limit`?, `after`? | `channels`: list of names; `details`: list of {`channel`, `creator`, `created`} in the same order; `next` |
//! | `subscribe` | `topic` | `topic`, `subscribed` (false if it already was) |
//! | `unsubscribe` | `topic` | `topic`, `unsubscribed` (false if it was not) |
//! | `publish` | `channel`, `message`, `user`?, `client_id`? | `seq`, `channel`, `user`, `duplicate` |
//! | `message` | `dst`, `message`, `src`?, `client_id`? | `seq`, `src`, `dst`, `duplicate` |
//! | `history` | `channel` or `user`, `before`?, `limit`? | `messages` (ascending `seq`), `next_before` |
//! | `store_backup` | `store`? | `path`, `bytes`, `users`, `channels`, `events`, `last_seq`, `store` |
//!
//! `msg_id` is accepted for `client_id`. A publication is pushed on topic
//! `<channel>` to its subscribers; a private message on topic `<dst>` to the
//! connections where `dst` is logged in, and to no one else (see
//! [`Topic`]: a channel never reaches a private stream).
//!
//! `store_backup` writes a consistent copy of the running store (every
//! table from one read transaction: it holds every write acknowledged
//! before the call) into `[chat] backup_dir` (default
//! `<node.data_dir>/backups`), under a name the node chooses,
//! `chat-<YYYYMMDD>T<HHMMSS>Z-<n>.redb` (UTC), never overwriting a file;
//! it answers the new file's `path` and size, what it holds (`events`,
//! `last_seq`, ...) and the node's store file (`store`). The caller never
//! chooses a path. `store`, when given, must name the node's store file
//! (else CONFLICT, nothing written): `corral store backup` sends it so as
//! not to back up another node's store. Only a caller whose address is
//! loopback may use it (FORBIDDEN otherwise): a TCP, TLS or SCTP peer on
//! another host never has a loopback address, and a WebSocket caller
//! (whose address the node does not take from the socket: a reverse proxy
//! may stand in front) is refused too.
//!
//! Names: a name belongs to a user or to a channel, never both. `channel`
//! refuses a user's name (a stored user, or one of `[chat.users]`) and a
//! first `login` refuses a channel's name, both with CONFLICT. `subscribe`
//! to your own name is your private stream (already subscribed by
//! `login`); any other name must be a channel. A user listed in
//! `[chat.users]` logs in only with its `token`.
//!
//! Lists: `users` and `channels` give at most `limit` entries (default and
//! cap `[chat] list_max_limit`), by name, after `after` when given, and stop
//! short of the frame limit; `next` is the `after` of the next page (null on
//! the last). `history` gives its newest events that fit below the frame
//! limit too, `next_before` paging back as before. Push `data` is the event (see
//! [`store::Event::to_json`]) plus `timestamp`, `clock` (the send clock) and
//! `event_clock` (the clock stored with the event).
//!
//! Errors: BAD_REQUEST (bad or missing field, bad name, message too long,
//! not logged in, `user`/`src` other than the logged-in user (on a
//! [sessionless](crate::rpc::CallContext::sessionless) ZeroMQ connection: a
//! user who never logged in, or one with a token not logged in there), missing or
//! wrong token, absurd clock), NOT_FOUND (unknown channel, user or topic),
//! CONFLICT (channel exists, name taken by a user or channel, `store` not
//! the node's store), OVERLOADED (over the connection's rate limit),
//! FORBIDDEN (`store_backup` from off loopback), INTERNAL (store failure),
//! UNAVAILABLE (cluster mode: the replicated log is out of reach, or this
//! node's state is incomplete; see [`crate::cluster`]). An error reply's
//! `data` is the seeds' `{"status": "erro", "description": <message>,
//! "timestamp", "clock"}` (plus `message`, the same text, for `publish`
//! and `message`), beside corral's `error`.
//!
//! # Writes
//!
//! `login`, `channel`, `publish` and `message` change the durable state:
//! each is one [`Write`]. Single-node, it goes to the store (group commit);
//! in a cluster it goes through the replicated log the cluster installs,
//! and is answered with what applying it at its place in the log decided
//! (see [`Write`]; `logout` changes nothing durable or shared).

mod actor;
mod error;
mod handle;
mod hub;
mod services;
mod settings;
mod spec;
mod store;
mod write;

pub use error::ChatError;
pub use handle::Chat;
#[cfg(feature = "zmq")]
pub(crate) use hub::MAX_PREFIXES;
pub use hub::{Delivery, Hub, HubStats, QueueDepth, Topic};
pub use settings::ChatSettings;
pub use store::{
    Appended, BackupReport, ChannelRecord, CheckReport, CommitStats, Event, EventKind, Scope,
    Store, StoreError, UserRecord,
};
pub(crate) use write::WriteLog;
pub use write::{Write, WriteError, Written};
