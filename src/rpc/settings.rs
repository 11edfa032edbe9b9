//! The RPC protocol's settings (the `[rpc]` section) and the limits in
//! force, with out-of-range values brought into range.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The largest compute pool (`compute_workers`): threads of the blocking
/// pool, as `node.worker_threads` is bounded.
const MAX_COMPUTE_WORKERS: usize = 1024;

/// `[rpc]`: the RPC protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcSettings {
    /// Largest frame body accepted, in bytes. Default 1048576 (1 MiB).
    pub max_frame_bytes: usize,
    /// Most requests of one connection in progress at once. Default 64.
    pub max_in_flight: usize,
    /// Close a connection that has sent no request and has none in progress
    /// for this long, in ms; 0 = never (a silent client then keeps its
    /// connection, and its `max_connections` slot, until it closes it; a
    /// client that stops reading is still cut by `write_stall_timeout_ms`).
    /// Default 60000.
    pub idle_timeout_ms: u64,
    /// Close a connection on which nothing could be written for this long,
    /// in ms: a peer that sends requests (or is sent pushes) but does not
    /// read what it is sent is cut, freeing its `max_connections` slot.
    /// Progress is any byte written (on SCTP, any message sent). At least 1;
    /// there is no "never". Default 30000.
    pub write_stall_timeout_ms: u64,
    /// Threads of the compute pool; 0 = number of CPUs, at most 1024.
    /// Default 0.
    pub compute_workers: usize,
    /// Largest `n` the `compute` service accepts. Default 1000000000.
    pub compute_max_n: u64,
    /// Pushes queued for one connection before further pushes to it are
    /// dropped (the slow-subscriber policy). Default 8192.
    pub push_queue: usize,
}

impl Default for RpcSettings {
    fn default() -> Self {
        RpcSettings {
            max_frame_bytes: 1 << 20,
            max_in_flight: 64,
            idle_timeout_ms: 60_000,
            write_stall_timeout_ms: 30_000,
            compute_workers: 0,
            compute_max_n: 1_000_000_000,
            push_queue: super::push::DEFAULT_PUSH_QUEUE,
        }
    }
}

impl RpcSettings {
    /// Checks the values that types alone cannot; on failure, the key
    /// (relative to the section) and what is wrong with it.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, message: &str) -> Result<(), (String, String)> {
            Err((key.to_string(), message.to_string()))
        }
        if self.max_frame_bytes < 64 {
            return bad("max_frame_bytes", "must be at least 64");
        }
        if self.max_frame_bytes > u32::MAX as usize {
            return bad("max_frame_bytes", "must fit the 4-byte length prefix");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight", "must be at least 1");
        }
        if self.write_stall_timeout_ms == 0 {
            return bad(
                "write_stall_timeout_ms",
                "must be at least 1 (a peer that never reads would hold its connection forever)",
            );
        }
        if self.compute_workers > MAX_COMPUTE_WORKERS {
            return bad("compute_workers", "must be at most 1024 (0 = one per CPU)");
        }
        if self.compute_max_n == 0 {
            return bad("compute_max_n", "must be at least 1");
        }
        Ok(())
    }

    /// The idle timeout, or `None` when it is 0 (never).
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_ms > 0).then(|| Duration::from_millis(self.idle_timeout_ms))
    }

    /// The write-stall timeout.
    pub fn write_stall_timeout(&self) -> Duration {
        Duration::from_millis(self.write_stall_timeout_ms.max(1))
    }

    /// The compute pool's size: `compute_workers`, or the number of CPUs when 0.
    pub fn effective_compute_workers(&self) -> usize {
        if self.compute_workers > 0 {
            self.compute_workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// At least one request in flight, one compute worker (0 = one per CPU) and
/// a write-stall timeout of 1 ms,
/// frames of at most 4 GiB - 1, `compute_max_n` at most 2^32 (so that `i * i`
/// fits in a u64).
pub(crate) fn normalized(mut c: RpcSettings) -> RpcSettings {
    c.compute_workers = c.effective_compute_workers();
    c.max_in_flight = c.max_in_flight.max(1);
    c.push_queue = c.push_queue.max(1);
    c.write_stall_timeout_ms = c.write_stall_timeout_ms.max(1);
    c.max_frame_bytes = c.max_frame_bytes.min(u32::MAX as usize);
    c.compute_max_n = c.compute_max_n.min(1 << 32);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_stall_timeout_of_zero_is_refused() {
        let c = RpcSettings {
            write_stall_timeout_ms: 0,
            ..RpcSettings::default()
        };
        assert_eq!(
            c.check().map_err(|(key, _)| key),
            Err("write_stall_timeout_ms".to_string())
        );
        assert_eq!(RpcSettings::default().write_stall_timeout_ms, 30_000);
    }

    #[test]
    fn out_of_range_values_are_corrected() {
        let c = normalized(RpcSettings {
            max_in_flight: 0,
            push_queue: 0,
            write_stall_timeout_ms: 0,
            compute_workers: 0,
            compute_max_n: u64::MAX,
            ..RpcSettings::default()
        });
        assert_eq!(c.max_in_flight, 1);
        assert_eq!(c.push_queue, 1);
        assert_eq!(c.write_stall_timeout_ms, 1);
        assert!(c.compute_workers >= 1);
        assert_eq!(c.compute_max_n, 1 << 32);
    }
}
