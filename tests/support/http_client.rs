//! An HTTP client (reqwest) and the URL of a path on a local server.

use std::net::SocketAddr;

pub(crate) fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// A client that does not decompress, so gzip is seen as sent.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}
