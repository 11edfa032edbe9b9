//! HTTP/1.1 and HTTP/2 requests in front of the file cache: request line
//! and target, headers (Range, If-None-Match, If-Modified-Since,
//! Accept-Encoding, Host), bodies, pipelining, through
//! `HttpProtocol::serve_connection`. No answer may contain a file from
//! outside the docroot.
#![no_main]

use corral_fuzz::{assert_no_leak, exchange, http};
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;

fuzz_target!(|data: &[u8]| {
    let out = exchange(data, |io| async move {
        let _ = http().serve_connection(io, CancellationToken::new()).await;
    });
    assert_no_leak(data, &out);
});
