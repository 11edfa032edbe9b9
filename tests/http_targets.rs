//! Malformed HTTP/1 requests get 400, never a 5xx: request targets that are
//! not origin-form on a non-CONNECT (`x:80`, `a.txt`), and HTTP/1.1 without
//! exactly one Host header (RFC 9112 §3.2). Sent over raw sockets: no client
//! library sends them.

mod support {
    pub(crate) mod guard;
    pub(crate) mod http;
    pub(crate) mod raw;
    pub(crate) mod site;
    pub(crate) mod status_of;
}

use corral::node::Node;
use support::guard::guarded;
use support::http::{config, start};
use support::raw::raw;
use support::site::Site;
use support::status_of::status_of;

#[tokio::test]
async fn malformed_requests_get_400() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        for (what, request) in [
            (
                "authority form on GET",
                "GET x:80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ),
            (
                "no leading slash",
                "GET a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ),
            (
                "no leading slash, HEAD",
                "HEAD small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ),
            (
                "asterisk form on GET",
                "GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ),
            (
                "HTTP/1.1 without Host",
                "GET /small.txt HTTP/1.1\r\nConnection: close\r\n\r\n",
            ),
            (
                "two Host headers",
                "GET /small.txt HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n",
            ),
            (
                "two Host headers on HTTP/1.0",
                "GET /small.txt HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n",
            ),
        ] {
            let resp = raw(addr, request.as_bytes()).await;
            assert_eq!(status_of(&resp), 400, "{what}: {resp}");
        }
        // Still fine: HTTP/1.0 without Host, the absolute form, OPTIONS *.
        for (what, request, status) in [
            (
                "HTTP/1.0 without Host",
                "GET /small.txt HTTP/1.0\r\n\r\n",
                200,
            ),
            (
                "absolute form",
                "GET http://x/small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                200,
            ),
        ] {
            let resp = raw(addr, request.as_bytes()).await;
            assert_eq!(status_of(&resp), status, "{what}: {resp}");
        }
        let resp = raw(
            addr,
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(status_of(&resp) < 500, "OPTIONS *: {resp}");
        node.shutdown().await;
    })
    .await;
}
