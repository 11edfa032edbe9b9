//! RPC over a byte stream (TCP, TLS): length-prefixed frames, each an
//! envelope in JSON or MessagePack, pipelined, through
//! `RpcProtocol::serve_connection`.
#![no_main]

use corral::rpc::ConnCtx;
use corral_fuzz::{exchange, rpc};
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;

fuzz_target!(|data: &[u8]| {
    exchange(data, |io| async move {
        let _ = rpc()
            .serve_connection(io, ConnCtx::new(None, CancellationToken::new()))
            .await;
    });
});
