//! Errors of the supervisor API, named after OTP's.

use ractor::ActorCell;
use thiserror::Error;

/// An error from starting or administering a supervisor.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// A child failed to start (OTP's `{shutdown, {failed_to_start_child, Id, Reason}}`
    /// at supervisor start, `{error, Reason}` from `start_child`).
    #[error("child {id:?} failed to start: {source}")]
    StartFailed {
        /// The child's id.
        id: String,
        /// Why: the start function's error.
        #[source]
        source: ractor::ActorProcessingErr,
    },
    /// The child is running (`restart_child`, `delete_child`).
    #[error("child {0:?} is running")]
    Running(String),
    /// The child is being restarted after a failed restart attempt.
    #[error("child {0:?} is restarting")]
    Restarting(String),
    /// No child has this id (or this actor).
    #[error("no child {0:?}")]
    NotFound(String),
    /// A child with this id exists but is not running (`start_child`).
    #[error("child {0:?} is already present")]
    AlreadyPresent(String),
    /// A child with this id is running (`start_child`).
    #[error("child {id:?} is already started")]
    AlreadyStarted {
        /// The child's id.
        id: String,
        /// The running child.
        child: ActorCell,
    },
    /// A dynamic supervisor already has `max_children` children.
    #[error("the supervisor already has its maximum of {0} children")]
    MaxChildren(usize),
    /// The supervisor flags are invalid.
    #[error("invalid supervisor flags: {0}")]
    BadFlags(String),
    /// A child spec is invalid.
    #[error("invalid child spec {id:?}: {reason}")]
    BadChildSpec {
        /// The child's id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The operation needs a static supervisor (or a dynamic one).
    #[error("operation not supported by a {0} supervisor")]
    Unsupported(&'static str),
    /// The supervisor is not running.
    #[error("the supervisor is not running")]
    NoProc,
    /// The supervisor failed to start for another reason.
    #[error("the supervisor failed to start: {0}")]
    Spawn(String),
    /// The supervisor gave up: more restarts than its intensity allows.
    #[error("supervisor {0:?} reached its maximum restart intensity")]
    ReachedMaxRestartIntensity(String),
}
