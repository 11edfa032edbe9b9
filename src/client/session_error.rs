//! What a [`ChatSession`](super::ChatSession) call can end with, once
//! failover and retries are exhausted.

use super::ClientError;

/// The error of a [`ChatSession`](super::ChatSession) call or of its set-up.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// An entry of the address list is not `host:port` (nothing was
    /// dialled), or the list is empty.
    #[error("bad address {addr:?}: {why}")]
    BadAddress {
        /// The entry as given.
        addr: String,
        /// What is wrong with it.
        why: String,
    },
    /// The server answered the call with an error that a retry would not
    /// change (BAD_REQUEST, NOT_FOUND, CONFLICT, ...).
    #[error("{code}: {message}")]
    Rpc {
        /// The error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// No node could be reached (connected, logged in again, resubscribed):
    /// every address was tried `rounds` times, with a backoff between
    /// rounds.
    #[error("no node reachable after {rounds} round(s) over {addrs}: {last}")]
    AllNodesDown {
        /// Full passes over the address list.
        rounds: u32,
        /// The addresses, comma-separated.
        addrs: String,
        /// What went wrong with each, on the last round.
        last: String,
    },
    /// The call was answered UNAVAILABLE (the node cannot reach the part
    /// that stores writes) every time it was tried; nothing was stored by
    /// the attempts that were answered so. Retrying later with the same
    /// `client_id` is safe.
    #[error("UNAVAILABLE after {attempts} attempt(s): {message}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last node's message.
        message: String,
    },
    /// The call lost its connection (or its reply did not come in time)
    /// on every attempt. A write may or may not have been stored; retrying
    /// it with the same `client_id` stores it at most once.
    #[error("{service}: gave up after {attempts} attempt(s): {last}")]
    GaveUp {
        /// The service called.
        service: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The request could not be sent at all (it cannot be encoded, ...).
    #[error(transparent)]
    Client(ClientError),
}

impl SessionError {
    /// The error code, for errors the server answered (`CONFLICT`, ...), or
    /// `UNAVAILABLE`.
    pub fn code(&self) -> Option<&str> {
        match self {
            SessionError::Rpc { code, .. } => Some(code),
            SessionError::Unavailable { .. } => Some("UNAVAILABLE"),
            _ => None,
        }
    }
}
