//! The errors of listener administration.

/// An error from suspending or resuming a listener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerError {
    /// The listener is not running (restarting, or stopped).
    #[error("listener {0} is not running")]
    NotRunning(String),
    /// The listening socket could not be bound again.
    #[error("listener {name}: cannot listen again: {source}")]
    Bind {
        /// The listener.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
