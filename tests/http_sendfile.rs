//! Large cached files go out with sendfile(2) (counted in
//! `corral_http_sendfile_bytes_total`), byte for byte what the cache holds:
//! whole, to a slow reader, and from memory once the file on disk is no
//! longer the version cached (rewritten in place, truncated, removed).
//! Ranges (answered by tower-http's ServeDir, from memory) stay exact.
//!
//! Tests synchronise on replies; no assertion is about time.

mod support {
    pub(crate) mod guard;
    pub(crate) mod http;
    pub(crate) mod http_client;
}

use std::net::SocketAddr;

use corral::node::Node;
use reqwest::{header, StatusCode};
use support::guard::guarded;
use support::http::{config, start};
use support::http_client::{client, url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes that do not compress (no gzip variant is kept for them).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn sent_with_sendfile(addr: SocketAddr) -> u64 {
    let text = client()
        .get(url(addr, "/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with("corral_http_sendfile_bytes_total "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no sendfile counter in {text}"))
}

async fn get(addr: SocketAddr, path: &str, range: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut req = client()
        .get(url(addr, path))
        .header(header::ACCEPT_ENCODING, "identity");
    if let Some(r) = range {
        req = req.header(header::RANGE, r);
    }
    let r = req.send().await.expect("get");
    (r.status(), r.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn large_files_are_sent_with_sendfile_and_ranges_exactly() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = noise(300 * 1024, 7);
        std::fs::write(dir.path().join("large.bin"), &body).expect("write");
        let small = noise(2048, 9);
        std::fs::write(dir.path().join("small.bin"), &small).expect("write");
        let (node, addr) = start(Node::builder(config(dir.path()))).await;

        // The first answer reads the file into the cache; the next ones
        // come from it.
        for _ in 0..3 {
            assert_eq!(
                get(addr, "/large.bin", None).await,
                (StatusCode::OK, body.clone())
            );
        }
        let whole = sent_with_sendfile(addr).await;
        assert!(
            whole >= 2 * body.len() as u64,
            "cached answers went out with sendfile: {whole}"
        );
        let (status, part) = get(addr, "/large.bin", Some("bytes=1000-250999")).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(part, body[1000..251_000]);
        // A small file is written from memory.
        let before = sent_with_sendfile(addr).await;
        for _ in 0..3 {
            assert_eq!(
                get(addr, "/small.bin", None).await,
                (StatusCode::OK, small.clone())
            );
        }
        assert_eq!(sent_with_sendfile(addr).await, before);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_file_changed_on_disk_is_sent_from_the_cached_copy() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("large.bin");
        let body = noise(200 * 1024, 11);
        std::fs::write(&path, &body).expect("write");
        let mut cfg = config(dir.path());
        // The cache is told not to look at the disk again for an hour: what
        // it holds is the answer, headers and bytes alike.
        cfg.cache.revalidate_ms = 3_600_000;
        let (node, addr) = start(Node::builder(cfg)).await;
        for _ in 0..2 {
            assert_eq!(
                get(addr, "/large.bin", None).await,
                (StatusCode::OK, body.clone())
            );
        }

        // Rewritten in place, same length: sendfile would send the new
        // bytes under the old ETag.
        let other = noise(body.len(), 13);
        {
            use std::io::{Seek, Write};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open");
            f.seek(std::io::SeekFrom::Start(0)).expect("seek");
            f.write_all(&other).expect("rewrite");
        }
        let before = sent_with_sendfile(addr).await;
        assert_eq!(
            get(addr, "/large.bin", None).await,
            (StatusCode::OK, body.clone())
        );
        assert_eq!(
            sent_with_sendfile(addr).await,
            before,
            "a changed file is not sent"
        );

        // Truncated: the cached copy is still whole.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(10)
            .expect("truncate");
        assert_eq!(
            get(addr, "/large.bin", None).await,
            (StatusCode::OK, body.clone())
        );
        // Removed: the same.
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(get(addr, "/large.bin", None).await, (StatusCode::OK, body));
        node.shutdown().await;
    })
    .await;
}

/// A reader with a small receive buffer that reads slowly: sendfile sends
/// part of the file at a time and goes on where it stopped.
#[tokio::test]
async fn a_slow_reader_gets_every_byte_in_order() {
    guarded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = noise(600 * 1024, 17);
        std::fs::write(dir.path().join("large.bin"), &body).expect("write");
        let (node, addr) = start(Node::builder(config(dir.path()))).await;
        // Cached first.
        assert_eq!(get(addr, "/large.bin", None).await.1, body);
        let before = sent_with_sendfile(addr).await;

        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut s = socket.connect(addr).await.expect("connects");
        // Two requests on one connection: the second follows the first's
        // body exactly.
        s.write_all(
            b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /large.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("writes");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 3000];
        loop {
            let n = s.read(&mut buf).await.expect("reads");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() % 16 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let mut rest = &got[..];
        for _ in 0..2 {
            let head_end = rest
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a head")
                + 4;
            let head = String::from_utf8_lossy(&rest[..head_end]).to_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(head.contains(&format!("content-length: {}", body.len())));
            assert!(rest[head_end..].len() >= body.len(), "a whole body");
            assert_eq!(&rest[head_end..head_end + body.len()], &body[..]);
            rest = &rest[head_end + body.len()..];
        }
        assert!(rest.is_empty(), "nothing after the second answer");
        assert!(sent_with_sendfile(addr).await >= before + 2 * body.len() as u64);
        node.shutdown().await;
    })
    .await;
}
