//! The settings of SCTP sockets: the `[sctp]` section of the configuration.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The settings of SCTP sockets: streams, buffers, nodelay, message size,
/// extra local addresses. The `[sctp]` section, shared by every listener
/// whose transport is `"sctp"` (and the defaults of `corral call` /
/// `corral bench rpc --transport sctp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SctpOptions {
    /// Outbound streams asked for at association set-up (`SCTP_INITMSG`).
    /// Stream 0 carries pushes; replies go out on the stream of their
    /// request. Default 16.
    pub ostreams: u16,
    /// Most inbound streams accepted from a peer. Default 16.
    pub instreams: u16,
    /// `SO_SNDBUF`, in bytes. Default 4194304 (4 MiB): small buffers stall
    /// SCTP with many small messages.
    pub send_buffer_bytes: usize,
    /// `SO_RCVBUF`, in bytes. Default 4194304 (4 MiB).
    pub recv_buffer_bytes: usize,
    /// `SCTP_NODELAY` (no Nagle-like bundling delay). Default true.
    pub nodelay: bool,
    /// Largest message (one RPC body) accepted, in bytes; a larger one is
    /// answered with FRAME_TOO_LARGE and the association is closed. The
    /// smaller of this and `rpc.max_frame_bytes` applies. Default 1048576.
    pub max_message_bytes: usize,
    /// Extra local IPv4 addresses bound besides the listener's own (`sctp_bindx`,
    /// multi-homing), same port. Default none.
    pub extra_addresses: Vec<String>,
}

impl Default for SctpOptions {
    fn default() -> Self {
        SctpOptions {
            ostreams: 16,
            instreams: 16,
            send_buffer_bytes: 4 << 20,
            recv_buffer_bytes: 4 << 20,
            nodelay: true,
            max_message_bytes: 1 << 20,
            extra_addresses: Vec::new(),
        }
    }
}

impl SctpOptions {
    /// The extra addresses that parse (the settings are checked before a
    /// node uses them).
    #[cfg_attr(not(feature = "sctp"), allow(dead_code))]
    pub(crate) fn extra_ips(&self) -> Vec<IpAddr> {
        self.extra_addresses
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    }

    /// Checks the values that types alone cannot; on failure, the key
    /// (relative to the section) and what is wrong with it.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if self.ostreams == 0 {
            return bad("ostreams", "must be at least 1");
        }
        if self.instreams == 0 {
            return bad("instreams", "must be at least 1");
        }
        if self.send_buffer_bytes < 4096 || self.send_buffer_bytes > i32::MAX as usize {
            return bad("send_buffer_bytes", "must be between 4096 and 2147483647");
        }
        if self.recv_buffer_bytes < 4096 || self.recv_buffer_bytes > i32::MAX as usize {
            return bad("recv_buffer_bytes", "must be between 4096 and 2147483647");
        }
        if self.max_message_bytes < 64 {
            return bad("max_message_bytes", "must be at least 64");
        }
        for (i, a) in self.extra_addresses.iter().enumerate() {
            if !matches!(a.parse::<IpAddr>(), Ok(IpAddr::V4(_))) {
                return Err((
                    format!("extra_addresses[{i}]"),
                    format!("{a:?} is not an IPv4 address"),
                ));
            }
        }
        Ok(())
    }
}
