//! Limits of the RPC protocol, read from the node's configuration.

use std::time::Duration;

use serde::Deserialize;

/// RPC limits. Every field has a default, so a configuration may set any
/// subset of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcSettings {
    /// Largest body accepted or sent, in bytes (default 1 MiB). A larger
    /// request frame is answered FRAME_TOO_LARGE and the connection closes.
    pub max_frame_bytes: usize,
    /// Requests of one connection handled at once (default 64); at the bound
    /// the connection stops reading until one completes.
    pub max_in_flight: usize,
    /// A connection with no request and nothing in flight for this long is
    /// closed, in milliseconds (default 60000; 0 = never).
    pub idle_timeout_ms: u64,
    /// `compute` requests run at once on the blocking pool, node-wide
    /// (default: the number of CPUs).
    pub compute_workers: usize,
    /// Largest `n` accepted by `compute` (default 10^9; values above 2^32 are
    /// lowered to 2^32).
    pub compute_max_n: u64,
}

impl Default for RpcSettings {
    fn default() -> Self {
        RpcSettings {
            max_frame_bytes: 1_048_576,
            max_in_flight: 64,
            idle_timeout_ms: 60_000,
            compute_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            compute_max_n: 1_000_000_000,
        }
    }
}

impl RpcSettings {
    /// The idle timeout, `None` when disabled.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_ms > 0).then(|| Duration::from_millis(self.idle_timeout_ms))
    }

    /// The settings with out-of-range values brought into range: at least one
    /// request in flight and one compute worker, frames of at most 4 GiB - 1,
    /// `compute_max_n` at most 2^32 (so that `i * i` fits in a u64).
    pub(crate) fn normalized(mut self) -> Self {
        self.max_in_flight = self.max_in_flight.max(1);
        self.compute_workers = self.compute_workers.max(1);
        self.max_frame_bytes = self.max_frame_bytes.min(u32::MAX as usize);
        self.compute_max_n = self.compute_max_n.min(1 << 32);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_config() {
        let d = RpcSettings::default();
        assert_eq!(d.max_frame_bytes, 1_048_576);
        assert_eq!(d.max_in_flight, 64);
        assert!(d.compute_workers >= 1);
        let s: RpcSettings =
            serde_json::from_str(r#"{"max_in_flight":0,"idle_timeout_ms":0}"#).unwrap_or_default();
        assert_eq!(s.idle_timeout(), None);
        assert_eq!(s.max_frame_bytes, 1_048_576);
        assert_eq!(s.normalized().max_in_flight, 1);
        assert!(serde_json::from_str::<RpcSettings>(r#"{"bogus":1}"#).is_err());
    }
}
