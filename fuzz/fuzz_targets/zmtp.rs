//! The ZeroMQ request endpoint (`zmq_router`): the input is a peer's
//! bytes. Its first byte chooses: even, the rest follows a valid greeting
//! and a DEALER's READY (the traffic is fuzzed: frames, multipart
//! envelopes, the RPC envelopes inside); odd, the rest is all there is (the
//! greeting and the handshake are fuzzed too).
#![no_main]

use corral::rpc::ConnCtx;
use corral_fuzz::{exchange, zmq};
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;

/// A ZMTP 3.0 greeting (NULL) and READY with Socket-Type DEALER.
fn handshake() -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[12..16].copy_from_slice(b"NULL");
    g.extend_from_slice(b"\x04\x1c\x05READY\x0bSocket-Type\0\0\0\x06DEALER");
    g
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let input = if mode & 1 == 0 {
        [&handshake()[..], rest].concat()
    } else {
        rest.to_vec()
    };
    exchange(&input, |io| async move {
        let _ = zmq()
            .serve_connection(io, ConnCtx::new(None, CancellationToken::new()))
            .await;
    });
});
