//! [`ClusterError`]: why the cluster could not start or serve.

/// Why the cluster could not connect, set up its stream and bucket, or
/// serve a write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No NATS server could be reached (or none answered in time).
    #[error("NATS is unreachable: {0}")]
    Unreachable(String),
    /// A file the settings name (the TLS CA) cannot be used.
    #[error("cluster.{key}: {message}")]
    Settings {
        /// The key, relative to `[cluster]`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// JetStream refused or failed an operation (no quorum, a stream that
    /// exists with other settings, ...).
    #[error("JetStream: {0}")]
    JetStream(String),
    /// Another live node is registered under this node's name.
    #[error(
        "node name {0:?} is taken: another live node renews a registration under it \
         (give each node its own [node] name)"
    )]
    NameTaken(String),
}
