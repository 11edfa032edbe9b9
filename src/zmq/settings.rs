//! The ZeroMQ front's settings (the `[zmq]` section).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[zmq]`: the ZeroMQ endpoints (listeners with protocol `"zmq_router"`
/// or `"zmq_xpub"`). The limits of the RPC protocol apply to them too
/// (`[rpc] max_frame_bytes` for a whole message, `push_queue`,
/// `write_stall_timeout_ms`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZmqSettings {
    /// How long a peer may take to finish the ZMTP handshake (greeting and
    /// READY), in ms; then its connection is closed. Default 5000.
    pub handshake_timeout_ms: u64,
    /// Whether the publication endpoint sends a user's private messages to
    /// the SUB peers subscribed to the user's name, as the seeds' proxy
    /// did. ZeroMQ's NULL security knows no users: anyone who reaches the
    /// port can subscribe to any name, so bind it where only your clients
    /// reach it, or turn this off (private messages then reach only RPC,
    /// WebSocket and ZeroMQ request-endpoint sessions of the user).
    /// Default true.
    pub private_messages: bool,
}

impl Default for ZmqSettings {
    fn default() -> Self {
        ZmqSettings {
            handshake_timeout_ms: 5000,
            private_messages: true,
        }
    }
}

impl ZmqSettings {
    /// Checks the values that types alone cannot; on failure, the key and
    /// what is wrong with it.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        if self.handshake_timeout_ms == 0 {
            return Err((
                "handshake_timeout_ms".into(),
                "must be at least 1 (a peer that never finishes would hold its connection)".into(),
            ));
        }
        Ok(())
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms.max(1))
    }
}
