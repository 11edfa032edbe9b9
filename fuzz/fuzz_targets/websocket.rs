//! The `/ws` path: a valid WebSocket handshake, then the input as the
//! client's frames (masked or not, fragmented, control frames, close
//! codes), each text or binary message an RPC envelope.
#![no_main]

use corral_fuzz::{exchange, http};
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;

const HANDSHAKE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let mut input = HANDSHAKE.to_vec();
    input.extend_from_slice(data);
    exchange(&input, |io| async move {
        let _ = http().serve_connection(io, CancellationToken::new()).await;
    });
});
