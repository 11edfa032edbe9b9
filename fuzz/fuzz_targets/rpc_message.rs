//! One RPC message, as an SCTP association delivers it (no length prefix):
//! an envelope in JSON or MessagePack through `RpcProtocol::handle_message`.
//! Every message gets a reply.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use corral::rpc::{push_channel, CallContext};
use corral_fuzz::{rpc, rt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pushes, _rx) = push_channel(16);
    let cx = Arc::new(CallContext::new(1, None, pushes));
    let reply = rt().block_on(rpc().handle_message(Bytes::copy_from_slice(data), &cx));
    assert!(reply.is_some(), "every message gets a reply");
});
