//! A raw GET of a request target exactly as written (no client normalises
//! it).

use std::net::SocketAddr;

use super::raw::raw;

/// A GET of `target` exactly as written, on a connection that closes after it.
pub(crate) async fn raw_get(addr: SocketAddr, target: &str) -> String {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}
