//! The HTTP limits of a running node: a slowloris client is cut off, a huge
//! head gets 431, a long URI 414, a large body 413, keep-alive reuses one
//! connection, max requests per connection closes it, the idle timeout
//! closes an idle one.
//!
//! Tests synchronise on events (replies, the server closing a socket); no
//! assertion is about time.

mod support {
    pub(crate) mod guard;
    pub(crate) mod http;
    pub(crate) mod http_client;
    pub(crate) mod raw;
    pub(crate) mod read_response;
    pub(crate) mod site;
    pub(crate) mod status_of;
}

use corral::http::{full, Body};
use corral::node::Node;
use http_body_util::BodyExt;
use hyper::{Request, Response, StatusCode as HyperStatus};
use support::guard::{guarded, GUARD};
use support::http::{config, start};
use support::http_client::{client, url};
use support::raw::raw;
use support::read_response::read_response;
use support::site::Site;
use support::status_of::status_of;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Waits until the server closes `s` (read returns 0 or an error), reading
/// and discarding what it sends; false if it did not within the guard.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(GUARD, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn slowloris_is_cut_off_by_the_header_read_timeout() {
    guarded(async {
        let site = Site::new();
        let mut cfg = config(&site.root);
        cfg.http.header_read_timeout_ms = 300;
        let (node, addr) = start(Node::builder(cfg)).await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("writes");
        // One header line every 50 ms, never finishing the head. The server
        // must close the connection; the number of lines bounds the test.
        let mut cut_off = false;
        for i in 0..1_000 {
            if s.write_all(format!("X-Drip-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                cut_off = true;
                break;
            }
            let mut probe = [0u8; 256];
            match tokio::time::timeout(
                std::time::Duration::from_millis(50),
                tokio::io::AsyncReadExt::read(&mut s, &mut probe),
            )
            .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    cut_off = true;
                    break;
                }
                Ok(Ok(_)) => {
                    // A 408 or similar, then the close.
                    cut_off = closed_by_server(&mut s).await;
                    break;
                }
                Err(_) => {}
            }
        }
        assert!(cut_off, "the slow client was never cut off");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn huge_head_gets_431() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        // Beyond hyper's read buffer (max_header_bytes = 16384).
        let big = "a".repeat(20_000);
        let resp = raw(
            addr,
            format!("GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status_of(&resp), 431, "{resp}");
        node.shutdown().await;

        // Under hyper's buffer but over a smaller configured limit.
        let mut cfg = config(&site.root);
        cfg.http.max_header_bytes = 1024;
        let (node, addr) = start(Node::builder(cfg)).await;
        let big = "a".repeat(2_000);
        let resp = raw(
            addr,
            format!(
                "GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {big}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(status_of(&resp), 431, "{resp}");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn long_uri_gets_414() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let long = format!("/{}", "a".repeat(9_000));
        let r = client().get(url(addr, &long)).send().await.expect("get");
        assert_eq!(r.status(), reqwest::StatusCode::URI_TOO_LONG);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn large_body_gets_413() {
    guarded(async {
        let site = Site::new();
        let mut cfg = config(&site.root);
        cfg.http.max_body_bytes = 100;
        let builder = Node::builder(cfg).route("/upload", |req: Request<Body>| async move {
            match req.into_body().collect().await {
                Ok(b) => Response::new(full(format!("got {}", b.to_bytes().len()))),
                Err(_) => {
                    let mut r = Response::new(full("too large"));
                    *r.status_mut() = HyperStatus::PAYLOAD_TOO_LARGE;
                    r
                }
            }
        });
        let (node, addr) = start(builder).await;
        let c = client();
        let r = c
            .post(url(addr, "/upload"))
            .body(vec![b'x'; 50])
            .send()
            .await
            .expect("post");
        assert_eq!(r.text().await.expect("body"), "got 50");
        // Declared too large: refused before the handler.
        let r = c
            .post(url(addr, "/upload"))
            .body(vec![b'x'; 1_000])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
        // Chunked (no length): the limited body stops the handler.
        let chunks =
            futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 50])));
        let r = c
            .post(url(addr, "/upload"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        for _ in 0..5 {
            s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("writes");
            let (head, body) = read_response(&mut s).await.expect("a response");
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
            assert_eq!(body, site.small);
        }
        // A pooled client too: five requests, one connection accepted in all.
        let c = client();
        for _ in 0..5 {
            let r = c.get(url(addr, "/small.txt")).send().await.expect("get");
            r.bytes().await.expect("body");
        }
        let text = node.metrics().render();
        let accepted = text
            .lines()
            .find(|l| l.starts_with("corral_connections_accepted_total{listener=\"http\"}"))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse::<f64>().ok());
        assert_eq!(accepted, Some(2.0), "{text}");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn max_requests_per_connection_closes_it() {
    guarded(async {
        let site = Site::new();
        let mut cfg = config(&site.root);
        cfg.http.max_requests_per_connection = 3;
        let (node, addr) = start(Node::builder(cfg)).await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        for i in 1..=3 {
            s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("writes");
            let (head, _) = read_response(&mut s).await.expect("a response");
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert_eq!(head.contains("connection: close"), i == 3, "{i}: {head}");
        }
        assert!(closed_by_server(&mut s).await);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    guarded(async {
        let site = Site::new();
        let mut cfg = config(&site.root);
        cfg.http.idle_timeout_ms = 200;
        let (node, addr) = start(Node::builder(cfg)).await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        read_response(&mut s).await.expect("a response");
        // Then nothing: the server closes it.
        assert!(closed_by_server(&mut s).await);
        node.shutdown().await;
    })
    .await;
}

/// The listener's open connections, as `/health` reports them (the request
/// asking is one of them).
async fn connections(addr: std::net::SocketAddr) -> u64 {
    let resp = raw(
        addr,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).expect("health JSON");
    v["listeners"]["http"]["connections"]
        .as_u64()
        .expect("a count")
}

/// An HTTP/1 client that asks for a large file and never reads it is cut
/// after the write-stall timeout, instead of holding its connection.
#[tokio::test]
async fn a_client_that_never_reads_a_response_is_cut() {
    guarded(async {
        let site = Site::new();
        // Far more than the sockets' buffers hold.
        std::fs::write(site.root.join("huge.bin"), vec![7u8; 48 << 20]).expect("write");
        let mut cfg = config(&site.root);
        // Neither the idle timeout nor anything else closes it.
        cfg.http.idle_timeout_ms = 0;
        cfg.http.write_stall_timeout_ms = 300;
        let (node, addr) = start(Node::builder(cfg)).await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        // Never read: the server must close it (then only the asker is left).
        let gone = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while connections(addr).await > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "a client that never reads is still connected");
        drop(s);
        node.shutdown().await;
    })
    .await;
}

/// HTTP/2 (h2c) clients that complete the handshake and then never read
/// nor answer anything are closed (the idle timeout's GOAWAY is not waited
/// on for ever), so they cannot lock other clients out of a listener at
/// its max_connections.
#[tokio::test]
async fn silent_h2c_clients_do_not_hold_max_connections() {
    guarded(async {
        let site = Site::new();
        let mut cfg = config(&site.root);
        cfg.listeners[0].max_connections = 3;
        cfg.http.idle_timeout_ms = 300;
        cfg.http.close_grace_ms = 500;
        let (node, addr) = start(Node::builder(cfg)).await;
        let mut silent = Vec::new();
        for _ in 0..3 {
            let tcp = TcpStream::connect(addr).await.expect("connects");
            // The preface and SETTINGS are sent; the connection half is
            // never polled, so nothing more is read or answered.
            let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
            silent.push((send, conn));
        }
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            client().get(url(addr, "/small.txt")).send(),
        )
        .await
        .expect("a client was locked out by silent h2c connections")
        .expect("get");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        drop(silent);
        node.shutdown().await;
    })
    .await;
}

/// A client that connects and sends nothing is closed after the header read
/// timeout even when the idle timeout is off.
#[tokio::test]
async fn a_silent_connection_is_closed_without_an_idle_timeout() {
    guarded(async {
        let site = Site::new();
        let mut cfg = config(&site.root);
        cfg.http.idle_timeout_ms = 0;
        cfg.http.header_read_timeout_ms = 300;
        let (node, addr) = start(Node::builder(cfg)).await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        assert!(closed_by_server(&mut s).await);
        node.shutdown().await;
    })
    .await;
}

/// A response still being read when the idle timeout passes is not cut by
/// the close grace: a request in progress keeps its connection from idling.
#[tokio::test]
async fn a_slow_download_outlives_the_idle_timeout() {
    guarded(async {
        let site = Site::new();
        let size = 8 << 20;
        std::fs::write(site.root.join("large.bin"), vec![7u8; size]).expect("write");
        let mut cfg = config(&site.root);
        cfg.http.idle_timeout_ms = 200;
        cfg.http.close_grace_ms = 200;
        let (node, addr) = start(Node::builder(cfg)).await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        s.write_all(b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        // Read slowly, steadily: a few times the idle timeout and the grace.
        // (Until more than the body's size: the head comes too; stopping at
        // exactly `size` would fail a connection that was not cut.)
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        while got <= size {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The head and the whole body.
        assert!(got > size, "cut after {got} bytes");
        node.shutdown().await;
    })
    .await;
}
