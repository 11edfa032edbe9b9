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
//! integer); every reply and push carries `timestamp` (ms since the epoch)
//! and `clock` (the node's Lamport clock, advanced by one for the send).
//!
//! | service | request | reply |
//! |---|---|---|
//! | `login` | `user` | `user`, `created`, `logins` (timestamps) |
//! | `logout` | — | `user` |
//! | `users` | — | `users`: list of {`user`, `online`, `created`, `last_login`} |
//! | `channel` | `channel` | `channel`, `creator`, `created` |
//! | `channels` | — | `channels`: list of names |
//! | `subscribe` | `topic` | `topic`, `subscribed` (false if it already was) |
//! | `unsubscribe` | `topic` | `topic`, `unsubscribed` (false if it was not) |
//! | `publish` | `channel`, `message`, `user`?, `client_id`? | `seq`, `channel`, `user`, `duplicate` |
//! | `message` | `dst`, `message`, `src`?, `client_id`? | `seq`, `src`, `dst`, `duplicate` |
//! | `history` | `channel` or `user`, `before`?, `limit`? | `messages` (ascending `seq`), `next_before` |
//!
//! `msg_id` is accepted for `client_id`. A publication is pushed on topic
//! `<channel>` to its subscribers; a private message on topic `<dst>` to the
//! connections where `dst` is logged in. Push `data` is the event (see
//! [`store::Event::to_json`]) plus `timestamp`, `clock` (the send clock) and
//! `event_clock` (the clock stored with the event).
//!
//! Errors: BAD_REQUEST (bad or missing field, bad name, message too long,
//! not logged in, `user`/`src` other than the logged-in user), NOT_FOUND
//! (unknown channel, user or topic), CONFLICT (channel exists), OVERLOADED
//! (over the connection's rate limit), INTERNAL (store failure).

mod actor;
mod error;
mod handle;
mod hub;
mod services;
mod settings;
mod spec;
mod store;

pub use error::ChatError;
pub use handle::Chat;
pub use hub::{Delivery, Hub, Topic};
pub use settings::ChatSettings;
pub use store::{
    ChannelRecord, CheckReport, Event, EventKind, Scope, Store, StoreError, UserRecord,
};
