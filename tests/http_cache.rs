//! The static files' fast path (a cached, unchanged file answered from the
//! cache) against tower-http's `ServeDir`, which answers everything else:
//! both must give the same headers and bytes for the same file, ETags and
//! dates from one are honoured by the other, hits and misses are counted
//! once per request, and the cache never serves a changed file or a file
//! a symlink has taken out of the docroot.
//!
//! `If-Match: *` passes for any existing file, so a request carrying it is
//! answered as without it, but by `ServeDir` (the fast path leaves every
//! conditional request to it).
//!
//! Tests synchronise on replies; no assertion is about time.

mod support {
    pub(crate) mod guard;
    pub(crate) mod http;
    pub(crate) mod http_client;
    pub(crate) mod raw;
    pub(crate) mod raw_get;
    pub(crate) mod site;
    pub(crate) mod status_of;
}

use corral::node::Node;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use std::net::SocketAddr;
use support::guard::guarded;
use support::http::{config, start};
use support::http_client::{client, url};
use support::raw_get::raw_get;
use support::site::{Site, SECRET};
use support::status_of::status_of;

/// Headers both paths must agree on.
const COMPARED: [header::HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_LENGTH,
    header::ETAG,
    header::LAST_MODIFIED,
    header::VARY,
    header::ACCEPT_RANGES,
];

async fn fetch(
    c: &reqwest::Client,
    method: Method,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = c.request(method, url(addr, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    let h = r.headers().clone();
    let body = r.bytes().await.expect("body").to_vec();
    (status, h, body)
}

fn compared(h: &HeaderMap) -> Vec<(String, Option<String>)> {
    COMPARED
        .iter()
        .map(|n| {
            (
                n.to_string(),
                h.get(n).map(|v| v.to_str().expect("ascii").to_string()),
            )
        })
        .collect()
}

#[tokio::test]
async fn fast_path_and_serve_dir_agree() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        let paths = ["/small.txt", "/big.txt", "/", "/sub/", "/inside.txt"];
        // Accept-Encoding values, with whether gzip is expected for a file
        // that has a gzip variant (big.txt).
        let encodings: [(Option<&str>, bool); 18] = [
            (None, false),
            (Some("gzip"), true),
            (Some("GZIP"), true),
            (Some("x-gzip"), true),
            (Some("gzip;q=0"), false),
            (Some("gzip; q=0.000"), false),
            (Some("gzip;q=0.001"), true),
            (Some("gzip;q=1.5"), false),
            (Some("gzip;q=abc"), false),
            (Some("gzip;q=0.5;level=1"), false),
            (Some("gzip;q=0.5, identity"), false),
            (Some("identity;q=0.5, gzip;q=0.6"), true),
            (Some("gzip, identity"), true),
            (Some("identity;q=0, gzip;q=0"), false),
            (Some("br, deflate"), false),
            (Some("br;q=1, gzip;q=0.2"), true),
            (Some("*"), false),
            (Some("deflate, gzip;q=0, gzip"), true),
        ];
        for path in paths {
            // Cached by a first request.
            let (status, _, _) = fetch(&c, Method::GET, addr, path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            for (ae, gzip) in encodings {
                for method in [Method::GET, Method::HEAD] {
                    let mut hs = Vec::new();
                    if let Some(ae) = ae {
                        hs.push(("accept-encoding", ae));
                    }
                    let fast = fetch(&c, method.clone(), addr, path, &hs).await;
                    hs.push(("if-match", "*"));
                    let slow = fetch(&c, method.clone(), addr, path, &hs).await;
                    let what = format!("{method} {path} accept-encoding {ae:?}");
                    assert_eq!(fast.0, StatusCode::OK, "{what}");
                    assert_eq!(fast.0, slow.0, "{what}");
                    assert_eq!(compared(&fast.1), compared(&slow.1), "{what}");
                    assert_eq!(fast.2, slow.2, "{what}");
                    assert!(fast.1.contains_key(header::ETAG), "{what}");
                    if path == "/big.txt" {
                        let encoded = fast.1.get(header::CONTENT_ENCODING).is_some();
                        assert_eq!(encoded, gzip, "{what}");
                    }
                    if method == Method::HEAD {
                        assert!(fast.2.is_empty(), "{what}");
                    }
                }
            }
        }
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn fast_path_validators_work_with_conditional_and_range_requests() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        let gz = [("accept-encoding", "gzip")];
        fetch(&c, Method::GET, addr, "/big.txt", &[]).await;
        // From the fast path: the identity and the gzip representations.
        let (_, plain, body) = fetch(&c, Method::GET, addr, "/big.txt", &[]).await;
        assert_eq!(body, site.big);
        let (_, zipped, zbody) = fetch(&c, Method::GET, addr, "/big.txt", &gz).await;
        assert_eq!(zipped[header::CONTENT_ENCODING], "gzip");
        let etag = plain[header::ETAG].to_str().expect("ascii");
        let zetag = zipped[header::ETAG].to_str().expect("ascii");
        assert_ne!(etag, zetag, "two representations, two strong ETags");
        let modified = plain[header::LAST_MODIFIED].to_str().expect("ascii");

        let (s, h, b) = fetch(
            &c,
            Method::GET,
            addr,
            "/big.txt",
            &[("if-none-match", etag)],
        )
        .await;
        assert_eq!(s, StatusCode::NOT_MODIFIED);
        assert_eq!(h[header::ETAG], etag);
        assert!(b.is_empty());
        let (s, _, _) = fetch(
            &c,
            Method::GET,
            addr,
            "/big.txt",
            &[("if-none-match", zetag), ("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(s, StatusCode::NOT_MODIFIED);
        let (s, _, _) = fetch(
            &c,
            Method::GET,
            addr,
            "/big.txt",
            &[("if-modified-since", modified)],
        )
        .await;
        assert_eq!(s, StatusCode::NOT_MODIFIED);
        // The identity ETag does not validate the gzip representation.
        let (s, _, b) = fetch(
            &c,
            Method::GET,
            addr,
            "/big.txt",
            &[("if-none-match", etag), ("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b, zbody);

        let (s, h, b) = fetch(
            &c,
            Method::GET,
            addr,
            "/big.txt",
            &[("range", "bytes=100-199")],
        )
        .await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT);
        assert_eq!(h[header::ETAG], etag);
        assert_eq!(h[header::CONTENT_RANGE], "bytes 100-199/102400");
        assert_eq!(b, &site.big[100..200]);
        let (s, h, _) = fetch(
            &c,
            Method::GET,
            addr,
            "/big.txt",
            &[("range", "bytes=200000-")],
        )
        .await;
        assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(h[header::CONTENT_RANGE], "bytes */102400");
        node.shutdown().await;
    })
    .await;
}

fn counters(node: &Node) -> (f64, f64) {
    let text = node.metrics().render();
    let value = |series: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (s, v) = l.rsplit_once(' ')?;
                (s == series).then(|| v.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    };
    (
        value("corral_cache_hits_total{cache=\"file\"}"),
        value("corral_cache_misses_total{cache=\"file\"}"),
    )
}

#[tokio::test]
async fn hits_and_misses_are_counted_once_per_request() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        assert_eq!(counters(&node), (0.0, 0.0));
        // A miss through ServeDir, which looks the file up more than once.
        fetch(
            &c,
            Method::GET,
            addr,
            "/big.txt",
            &[("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(counters(&node), (0.0, 1.0));
        // Fast path hits, both representations, GET and HEAD.
        fetch(&c, Method::GET, addr, "/big.txt", &[]).await;
        fetch(
            &c,
            Method::GET,
            addr,
            "/big.txt",
            &[("accept-encoding", "gzip")],
        )
        .await;
        fetch(&c, Method::HEAD, addr, "/big.txt", &[]).await;
        assert_eq!(counters(&node), (3.0, 1.0));
        // Hits through ServeDir: gzip, a range, a conditional request, an
        // index.html after a directory lookup.
        let h = [("accept-encoding", "gzip"), ("if-match", "*")];
        fetch(&c, Method::GET, addr, "/big.txt", &h).await;
        fetch(&c, Method::GET, addr, "/big.txt", &[("range", "bytes=0-9")]).await;
        assert_eq!(counters(&node), (5.0, 1.0));
        fetch(&c, Method::GET, addr, "/sub/", &[]).await;
        assert_eq!(counters(&node), (5.0, 2.0));
        fetch(&c, Method::GET, addr, "/sub/", &[("if-match", "*")]).await;
        fetch(&c, Method::GET, addr, "/sub/", &[]).await;
        assert_eq!(counters(&node), (7.0, 2.0));
        // Not found: neither.
        fetch(&c, Method::GET, addr, "/nope.txt", &[]).await;
        assert_eq!(counters(&node), (7.0, 2.0));
        node.shutdown().await;
    })
    .await;
}

/// Waits until a file written now gets a later ctime than `path` has: file
/// times come from a coarse clock, so a change within the same tick as the
/// last one would leave the ctime as it was.
#[cfg(unix)]
async fn wait_past_ctime(path: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let ctime = |p: &std::path::Path| {
        let m = std::fs::metadata(p).expect("stat");
        (m.ctime(), m.ctime_nsec())
    };
    let before = ctime(path);
    let probe = path.with_extension("probe");
    loop {
        std::fs::write(&probe, b"tick").expect("write");
        if ctime(&probe) > before {
            break;
        }
        tokio::task::yield_now().await;
    }
    std::fs::remove_file(&probe).expect("rm");
}

#[cfg(unix)]
#[tokio::test]
async fn a_file_rewritten_with_the_same_size_and_mtime_is_served_fresh() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        let path = site.root.join("page.txt");
        std::fs::write(&path, "version one\n").expect("write");
        let mtime = std::fs::metadata(&path)
            .expect("stat")
            .modified()
            .expect("mtime");
        for _ in 0..2 {
            let (_, _, b) = fetch(&c, Method::GET, addr, "/page.txt", &[]).await;
            assert_eq!(b, b"version one\n");
        }
        // Same length, and the mtime set back: only the ctime tells.
        wait_past_ctime(&path).await;
        std::fs::write(&path, "version 1ne\n").expect("write");
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_modified(mtime).expect("set mtime");
        drop(f);
        let (_, _, b) = fetch(&c, Method::GET, addr, "/page.txt", &[]).await;
        assert_eq!(b, b"version 1ne\n");
        node.shutdown().await;
    })
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_turned_to_the_same_file_outside_the_docroot_is_refused() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let link = site.root.join("link.txt");
        std::os::unix::fs::symlink(site.root.join("small.txt"), &link).expect("symlink");
        for _ in 0..3 {
            let resp = raw_get(addr, "/link.txt").await;
            assert_eq!(status_of(&resp), 200, "{resp}");
        }
        // The same inode, reached from outside the docroot: a hard link
        // beside the secret, and the symlink turned to it.
        let outside = site.dir.path().join("hardlink.txt");
        wait_past_ctime(&site.root.join("small.txt")).await;
        std::fs::hard_link(site.root.join("small.txt"), &outside).expect("hard link");
        std::fs::remove_file(&link).expect("rm");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        let resp = raw_get(addr, "/link.txt").await;
        assert_eq!(status_of(&resp), 404, "{resp}");
        // Turned to the secret: refused too.
        std::fs::remove_file(&link).expect("rm");
        std::os::unix::fs::symlink(site.dir.path().join("secret.txt"), &link).expect("symlink");
        let resp = raw_get(addr, "/link.txt").await;
        assert_eq!(status_of(&resp), 404, "{resp}");
        assert!(!resp.contains(SECRET));
        // The file itself is still served by its own name.
        let resp = raw_get(addr, "/small.txt").await;
        assert_eq!(status_of(&resp), 200, "{resp}");
        node.shutdown().await;
    })
    .await;
}
