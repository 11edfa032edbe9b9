//! The RPC limits in force: `[rpc]` from the configuration, with
//! out-of-range values brought into range.

use crate::config::RpcConfig;

/// At least one request in flight and one compute worker (0 = one per CPU),
/// frames of at most 4 GiB - 1, `compute_max_n` at most 2^32 (so that `i * i`
/// fits in a u64).
pub(crate) fn normalized(mut c: RpcConfig) -> RpcConfig {
    c.compute_workers = c.effective_compute_workers();
    c.max_in_flight = c.max_in_flight.max(1);
    c.push_queue = c.push_queue.max(1);
    c.max_frame_bytes = c.max_frame_bytes.min(u32::MAX as usize);
    c.compute_max_n = c.compute_max_n.min(1 << 32);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_corrected() {
        let c = normalized(RpcConfig {
            max_in_flight: 0,
            push_queue: 0,
            compute_workers: 0,
            compute_max_n: u64::MAX,
            ..RpcConfig::default()
        });
        assert_eq!(c.max_in_flight, 1);
        assert_eq!(c.push_queue, 1);
        assert!(c.compute_workers >= 1);
        assert_eq!(c.compute_max_n, 1 << 32);
    }
}
