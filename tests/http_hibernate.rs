//! Hibernation of idle HTTP/1 keep-alive connections (`[http]
//! hibernate_after_ms`): a connection idle past it drops hyper's state and
//! buffers and serves its next request on the same socket; requests
//! pipelined or cut in pieces around a hibernation are all answered, in
//! order; the idle and header read timeouts and the drain still close a
//! hibernated connection; garbage sent to one gets 400; HTTP/2 (h2c with
//! prior knowledge) is served and does not hibernate.
//!
//! Hibernations are observed through `corral_http_hibernations_total`;
//! tests synchronise on it and on replies, never on time.

mod support {
    pub(crate) mod guard;
    pub(crate) mod http;
    pub(crate) mod read_response;
    pub(crate) mod site;
}

use corral::node::Node;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::guard::{guarded, GUARD};
use support::http::{config, start};
use support::read_response::read_response;
use support::site::Site;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Hibernate after this long without a request: short, so tests are quick.
const HIBERNATE_MS: u64 = 50;

fn hibernations(node: &Node) -> u64 {
    node.metrics().http_hibernations.get()
}

/// Waits until the node has hibernated more than `before` connections in
/// all (`at_least` more).
async fn hibernated(node: &Node, before: u64, at_least: u64) {
    tokio::time::timeout(GUARD, async {
        while hibernations(node) < before + at_least {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the connection hibernated");
}

/// A node whose HTTP connections hibernate after [`HIBERNATE_MS`], with
/// `tune` applied to its config.
async fn node_with(
    site: &Site,
    tune: impl FnOnce(&mut corral::config::Config),
) -> (Node, SocketAddr) {
    let mut cfg = config(&site.root);
    cfg.http.hibernate_after_ms = HIBERNATE_MS;
    tune(&mut cfg);
    start(Node::builder(cfg)).await
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// Reads one response off `s`: 200, kept alive (no `Connection: close`),
/// with `body`.
async fn expect_ok(s: &mut TcpStream, body: &[u8]) {
    let (head, got) = read_response(s).await.expect("a response");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(got, body);
}

/// Waits until the server closes `s` (read returns 0 or an error), reading
/// and discarding what it sends; what it sent, or `None` if it did not
/// close within the guard.
async fn closed_by_server(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(GUARD, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| out)
}

#[tokio::test]
async fn a_hibernated_connection_serves_its_next_requests_on_the_same_socket() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = node_with(&site, |_| {}).await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let port = s.local_addr().expect("bound").port();
        for round in 0..4 {
            let before = hibernations(&node);
            s.write_all(get("/small.txt").as_bytes())
                .await
                .expect("writes");
            expect_ok(&mut s, &site.small).await;
            hibernated(&node, before, 1).await;
            // Still the same TCP connection: the server did not close it.
            assert_eq!(s.local_addr().expect("bound").port(), port, "round {round}");
        }
        s.write_all(get("/index.html").as_bytes())
            .await
            .expect("writes");
        expect_ok(&mut s, b"<h1>home</h1>\n").await;
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn requests_pipelined_around_the_hibernation_are_answered_in_order() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = node_with(&site, |_| {}).await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        // Once hibernated for sure, then at delays around the hibernation
        // moment (before, at, after it): three requests in one write.
        let before = hibernations(&node);
        s.write_all(get("/small.txt").as_bytes())
            .await
            .expect("writes");
        expect_ok(&mut s, &site.small).await;
        hibernated(&node, before, 1).await;
        for delay_ms in (0..30).map(|i| HIBERNATE_MS - 15 + i) {
            let three = format!(
                "{}{}{}",
                get("/index.html"),
                get("/sub/"),
                get("/small.txt")
            );
            s.write_all(three.as_bytes()).await.expect("writes");
            expect_ok(&mut s, b"<h1>home</h1>\n").await;
            expect_ok(&mut s, b"<h1>sub</h1>\n").await;
            expect_ok(&mut s, &site.small).await;
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        assert!(hibernations(&node) > before, "it never hibernated");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_head_cut_in_pieces_across_hibernations_is_served() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = node_with(&site, |_| {}).await;
        let pause = Duration::from_millis(HIBERNATE_MS * 3);
        // The first request of a connection, in three pieces with pauses
        // longer than the hibernation delay between them.
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let head = get("/small.txt");
        for piece in [&head[..7], &head[7..19], &head[19..]] {
            s.write_all(piece.as_bytes()).await.expect("writes");
            tokio::time::sleep(pause).await;
        }
        expect_ok(&mut s, &site.small).await;
        // A request, and in the same write the start of the next one:
        // hyper has read that start when the connection hibernates; it is
        // kept and served with the rest, sent in two more pieces.
        for _ in 0..3 {
            let before = hibernations(&node);
            let next = get("/index.html");
            let (start, rest) = next.split_at(9);
            s.write_all(format!("{}{start}", get("/small.txt")).as_bytes())
                .await
                .expect("writes");
            expect_ok(&mut s, &site.small).await;
            hibernated(&node, before, 1).await;
            let (b, c) = rest.split_at(10);
            s.write_all(b.as_bytes()).await.expect("writes");
            tokio::time::sleep(pause).await;
            s.write_all(c.as_bytes()).await.expect("writes");
            expect_ok(&mut s, b"<h1>home</h1>\n").await;
        }
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_idle_timeout_closes_a_connection_that_hibernated_and_woke() {
    guarded(async {
        let site = Site::new();
        let idle = Duration::from_millis(500);
        let (node, addr) = node_with(&site, |c| {
            c.http.idle_timeout_ms = 500;
            c.http.header_read_timeout_ms = 60_000;
        })
        .await;
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let before = hibernations(&node);
        s.write_all(get("/small.txt").as_bytes())
            .await
            .expect("writes");
        expect_ok(&mut s, &site.small).await;
        let last_request = Instant::now();
        // Hibernated; then one byte of a head every 100 ms, never finishing
        // it: each wakes the connection. None of that is a request: the
        // idle timeout closes it all the same. (Were its clock restarted by
        // a wake-up, the drip would keep it open.)
        hibernated(&node, before, 1).await;
        let closed = drip_until_closed(&mut s, false).await;
        assert!(closed, "the drip kept the connection open");
        assert!(
            last_request.elapsed() >= idle,
            "closed before the idle timeout"
        );

        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_header_read_timeout_runs_on_through_hibernations() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = node_with(&site, |c| {
            c.http.idle_timeout_ms = 0;
            c.http.header_read_timeout_ms = 600;
        })
        .await;
        // A kept-alive connection that sends nothing more: closed by the
        // header read timeout while it hibernates.
        let mut quiet = TcpStream::connect(addr).await.expect("connects");
        let before = hibernations(&node);
        quiet
            .write_all(get("/small.txt").as_bytes())
            .await
            .expect("writes");
        expect_ok(&mut quiet, &site.small).await;
        hibernated(&node, before, 1).await;
        assert_eq!(
            closed_by_server(&mut quiet).await,
            Some(Vec::new()),
            "not closed"
        );
        // One that drips a head, waking a fresh hyper connection each
        // time: the head's deadline is carried over, it is closed all the
        // same.
        let mut s = served_once(addr, &site.small).await;
        // hyper may say 408 before it closes.
        let closed = drip_until_closed(&mut s, true).await;
        assert!(closed, "the drip kept the connection open");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_drain_closes_hibernated_connections() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = node_with(&site, |_| {}).await;
        let before = hibernations(&node);
        let mut conns = Vec::new();
        for _ in 0..3 {
            let s = served_once(addr, &site.small).await;
            conns.push(s);
        }
        hibernated(&node, before, 3).await;
        let stopping = tokio::spawn(node.shutdown());
        for s in &mut conns {
            assert_eq!(
                closed_by_server(s).await,
                Some(Vec::new()),
                "not closed by the drain"
            );
        }
        stopping.await.expect("the node stopped");
    })
    .await;
}

#[tokio::test]
async fn garbage_sent_to_a_hibernated_connection_gets_400() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = node_with(&site, |_| {}).await;
        // Each gets what it gets on a connection that never hibernated:
        // 400, or (HTTP/2's preface in an HTTP/1 connection) hyper closes
        // the connection without a word.
        for (garbage, answer) in [
            (&b"\x00\x01\x02\xff\xfe garbage"[..], "HTTP/1.1 400"),
            (b"\x00\x01\x02\xff\xfe garbage\r\n\r\n", "HTTP/1.1 400"),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                "HTTP/1.1 400",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
                "HTTP/1.1 400",
            ),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ""),
        ] {
            let mut s = TcpStream::connect(addr).await.expect("connects");
            let before = hibernations(&node);
            s.write_all(get("/small.txt").as_bytes())
                .await
                .expect("writes");
            expect_ok(&mut s, &site.small).await;
            hibernated(&node, before, 1).await;
            s.write_all(garbage).await.expect("writes");
            let reply = closed_by_server(&mut s).await.expect("closed");
            let reply = String::from_utf8_lossy(&reply);
            assert!(
                reply.starts_with(answer) && (!answer.is_empty() || reply.is_empty()),
                "{garbage:?} got {reply:?}"
            );
        }
        // The node serves on.
        let _served = served_once(addr, &site.small).await;
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_and_does_not_hibernate() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = node_with(&site, |_| {}).await;
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .expect("a client");
        let url = format!("http://{addr}/small.txt");
        let before = hibernations(&node);
        for _ in 0..3 {
            let resp = client.get(&url).send().await.expect("answered");
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.bytes().await.expect("a body"), site.small);
            // Longer than the hibernation delay, on the same connection.
            tokio::time::sleep(Duration::from_millis(HIBERNATE_MS * 3)).await;
        }
        assert_eq!(
            hibernations(&node),
            before,
            "an HTTP/2 connection hibernated"
        );
        node.shutdown().await;
    })
    .await;
}

/// Sends one byte of a never-ending head every 100 ms until the server
/// closes (true) or 1000 bytes went; a reply before the close fails the
/// test unless `replies_allowed` (hyper may say 408 first).
async fn drip_until_closed(s: &mut TcpStream, replies_allowed: bool) -> bool {
    for b in "GET /small.txt HTTP/1.1\r\nX-Drip: "
        .bytes()
        .cycle()
        .take(1_000)
    {
        if s.write_all(&[b]).await.is_err() {
            return true;
        }
        let mut probe = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) if !replies_allowed => panic!(
                "unexpected reply: {:?}",
                String::from_utf8_lossy(&probe[..n])
            ),
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    false
}

/// A connection that has had one GET of /small.txt answered (`small`).
async fn served_once(addr: std::net::SocketAddr, small: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(get("/small.txt").as_bytes())
        .await
        .expect("writes");
    expect_ok(&mut s, small).await;
    s
}
