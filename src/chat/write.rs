//! [`Write`]: one state-changing chat write, and the extension point that
//! carries it to the store ([`WriteLog`]).
//!
//! Every write that changes the chat's durable state is one serializable
//! [`Write`]: a login, a channel's creation, a publication or a private
//! message. Single-node, a write goes straight to the store (group commit,
//! as always). When a log is installed ([`Chat::set_log`], the cluster
//! installs one), a write goes through it instead: the log publishes it,
//! and every node applies it at its position in the log
//! ([`Store::apply_replicated`]), so every node decides it the same way.
//!
//! `logout` is not a write: a session is one connection's, on one node
//! (the hub's), and the store keeps no "online" state, so nothing durable
//! or shared changes when a user logs out.
//!
//! [`Chat::set_log`]: super::Chat::set_log
//! [`Store::apply_replicated`]: super::Store::apply_replicated

use serde::{Deserialize, Serialize};

use super::store::Appended;
use super::{ChannelRecord, Event, StoreError, UserRecord};
use crate::async_trait;

/// One state-changing chat write, as it travels through a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Write {
    /// A login of `user` at `ts` (ms since the epoch); the first creates
    /// the user. Refused (CONFLICT) when a channel has that name.
    Login {
        /// The user.
        user: String,
        /// When (ms since the epoch).
        ts: u64,
    },
    /// A channel's creation. Refused (CONFLICT) when the channel exists or
    /// a user has its name.
    Channel {
        /// The new channel.
        channel: ChannelRecord,
    },
    /// A publication or a private message (the event's `kind`); its `seq`
    /// is assigned where it is applied. Refused (NOT_FOUND) when the
    /// channel or recipient does not exist; a retry (same sender and
    /// client id) is not stored twice.
    Append {
        /// The event.
        event: Event,
    },
}

impl Write {
    /// The Lamport clock the write carries (none for a login).
    pub fn clock(&self) -> Option<u64> {
        match self {
            Write::Login { .. } => None,
            Write::Channel { channel } => Some(channel.clock),
            Write::Append { event } => Some(event.clock),
        }
    }

    /// Checks what the services check of a write's names and ids (names
    /// of 1 to 32 letters, digits, `_` and `-`; a client id of 1 to 64
    /// bytes; a channel's creator a user's name): a write read from a
    /// replicated log, which anyone with access to NATS may publish on, is
    /// applied only if it could have come from a node. The same on every
    /// node (no setting takes part), so every node skips the same entries.
    pub fn validate(&self) -> Result<(), String> {
        let name = |what: &str, n: &str| -> Result<(), String> {
            super::services::validate_name(what, n).map_err(|e| e.message)
        };
        match self {
            Write::Login { user, .. } => name("user", user),
            Write::Channel { channel } => {
                name("channel", &channel.channel)?;
                match &channel.creator {
                    Some(c) => name("creator", c),
                    None => Ok(()),
                }
            }
            Write::Append { event } => {
                name("user", &event.user)?;
                name("target", &event.target)?;
                match &event.client_id {
                    Some(id) if id.is_empty() || id.len() > super::services::MAX_CLIENT_ID_LEN => {
                        Err(format!(
                            "client_id must be 1 to {} bytes long",
                            super::services::MAX_CLIENT_ID_LEN
                        ))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// The sender and client message id of an append that has one: what
    /// makes a retry the same write.
    pub fn client_key(&self) -> Option<(&str, &str)> {
        match self {
            Write::Append { event } => event
                .client_id
                .as_deref()
                .map(|id| (event.user.as_str(), id)),
            _ => None,
        }
    }
}

/// What a write did, once applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Written {
    /// The user's record after a login.
    User(UserRecord),
    /// The created channel.
    Channel(ChannelRecord),
    /// The stored event (for a retry, the original one, marked duplicate).
    Appended(Appended),
}

/// Why a write through a log failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The store applied the write and refused it, or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log is out of reach (or did not apply the write in time):
    /// nothing was decided; a retry with the same client id is safe.
    #[error("{0}")]
    Unavailable(String),
}

/// A log the chat's writes go through instead of the local store (set once
/// at start with [`Chat::set_log`](super::Chat::set_log)). The chat never
/// knows what is behind it: the cluster implements it on NATS JetStream.
#[async_trait]
pub(crate) trait WriteLog: Send + Sync + 'static {
    /// Puts `write` in the log, waits until this node applied it, and
    /// answers what applying it decided.
    async fn submit(&self, write: Write) -> Result<Written, WriteError>;

    /// `Err(why)` when the local state must not be served as whole (the
    /// log no longer holds entries this node needs).
    fn readable(&self) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::EventKind;

    fn ev_for_checks() -> Event {
        Event {
            seq: 0,
            kind: EventKind::Publish,
            user: "ann".into(),
            target: "room".into(),
            message: "hi".into(),
            timestamp: 1,
            clock: 1,
            client_id: None,
        }
    }

    #[test]
    fn writes_round_trip_and_garbage_is_refused() {
        let ev = Event {
            seq: 0,
            kind: EventKind::Message,
            user: "ann".into(),
            target: "bob".into(),
            message: "hi".into(),
            timestamp: 3,
            clock: 4,
            client_id: Some("c1".into()),
        };
        for w in [
            Write::Login {
                user: "ann".into(),
                ts: 1,
            },
            Write::Channel {
                channel: ChannelRecord {
                    channel: "room".into(),
                    creator: Some("ann".into()),
                    created: 2,
                    clock: 3,
                },
            },
            Write::Append { event: ev },
        ] {
            let bytes = serde_json::to_vec(&w).expect("encode");
            let back: Write = serde_json::from_slice(&bytes).expect("decode");
            assert_eq!(back, w);
        }
        let bad_name = Write::Login {
            user: "../etc".into(),
            ts: 1,
        };
        assert!(bad_name.validate().is_err());
        let bad_id = Write::Append {
            event: Event {
                client_id: Some("x".repeat(65)),
                ..ev_for_checks()
            },
        };
        assert!(bad_id.validate().is_err());
        assert!(Write::Append {
            event: ev_for_checks()
        }
        .validate()
        .is_ok());
        for bad in [
            &b"not json"[..],
            br#"{"op":"drop_tables"}"#,
            br#"{"op":"login","user":"a"}"#,
            br#"{"op":"login","user":"a","ts":1,"extra":true}"#,
        ] {
            assert!(serde_json::from_slice::<Write>(bad).is_err());
        }
    }
}
