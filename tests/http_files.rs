//! Static files over real HTTP from a running node: headers, HEAD,
//! conditional requests, ranges, gzip, index.html, 404 / 405, every
//! traversal trick, cache invalidation, the route table, and /metrics
//! accepted by promtool.
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

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use corral::http::{full, Body};
use corral::node::Node;
use hyper::{Request, Response};
use reqwest::header;
use reqwest::StatusCode;
use support::guard::guarded;
use support::http::{config, start};
use support::http_client::{client, url};
use support::raw_get::raw_get;
use support::site::{Site, SECRET};
use support::status_of::status_of;

#[tokio::test]
async fn get_serves_file_with_type_etag_date_server() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let r = client()
            .get(url(addr, "/small.txt"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], "text/plain");
        assert!(h.contains_key(header::ETAG));
        assert!(h.contains_key(header::LAST_MODIFIED));
        assert!(h.contains_key(header::DATE));
        assert_eq!(h[header::SERVER], "corral");
        assert_eq!(h[header::CONTENT_LENGTH], "1024");
        assert_eq!(r.bytes().await.expect("body").as_ref(), &site.small[..]);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn head_has_headers_and_no_body() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let r = client()
            .head(url(addr, "/big.txt"))
            .send()
            .await
            .expect("head");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "102400");
        assert!(r.headers().contains_key(header::ETAG));
        assert!(r.bytes().await.expect("body").is_empty());
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn conditional_requests_give_304() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        let r = c.get(url(addr, "/small.txt")).send().await.expect("get");
        let etag = r.headers()[header::ETAG].clone();
        let modified = r.headers()[header::LAST_MODIFIED].clone();

        let r = c
            .get(url(addr, "/small.txt"))
            .header(header::IF_NONE_MATCH, etag.clone())
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], etag);
        assert!(r.bytes().await.expect("body").is_empty());

        let r = c
            .get(url(addr, "/small.txt"))
            .header(header::IF_MODIFIED_SINCE, modified)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

        let r = c
            .get(url(addr, "/small.txt"))
            .header(header::IF_NONE_MATCH, "\"not-the-etag\"")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn single_range_gives_206_and_unsatisfiable_416() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        let r = c
            .get(url(addr, "/small.txt"))
            .header(header::RANGE, "bytes=10-19")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 10-19/1024");
        assert_eq!(r.bytes().await.expect("body").as_ref(), &site.small[10..20]);

        let r = c
            .get(url(addr, "/small.txt"))
            .header(header::RANGE, "bytes=5000-6000")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */1024");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn gzip_when_accepted_with_vary() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        let r = c
            .get(url(addr, "/big.txt"))
            .header(header::ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain");
        assert!(r.headers()[header::VARY]
            .to_str()
            .expect("ascii")
            .to_ascii_lowercase()
            .contains("accept-encoding"));
        let gz = r.bytes().await.expect("body");
        assert!(gz.len() < site.big.len() / 2, "compressed: {}", gz.len());
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .expect("gunzip");
        assert_eq!(plain, site.big);

        // Not asked: identity, still with Vary.
        let r = c.get(url(addr, "/big.txt")).send().await.expect("get");
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        assert!(r.headers().contains_key(header::VARY));
        assert_eq!(r.bytes().await.expect("body").len(), site.big.len());

        // The gzip variant is not a file of its own.
        let r = c.get(url(addr, "/big.txt.gz")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // A real .gz file is served as it is.
        std::fs::write(site.root.join("real.txt.gz"), b"\x1f\x8b not really").expect("write");
        let r = c.get(url(addr, "/real.txt.gz")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.bytes().await.expect("body").as_ref(),
            b"\x1f\x8b not really"
        );

        // Refused explicitly: identity.
        let r = c
            .get(url(addr, "/big.txt"))
            .header(header::ACCEPT_ENCODING, "gzip;q=0")
            .send()
            .await
            .expect("get");
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn directory_serves_index_html() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        let r = c.get(url(addr, "/")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html");
        assert_eq!(r.text().await.expect("body"), "<h1>home</h1>\n");
        let r = c.get(url(addr, "/sub/")).send().await.expect("get");
        assert_eq!(r.text().await.expect("body"), "<h1>sub</h1>\n");
        // Without the slash: redirected to it (followed by the client).
        let r = c.get(url(addr, "/sub")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.expect("body"), "<h1>sub</h1>\n");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn missing_is_404_and_post_is_405_with_allow() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        let r = c.get(url(addr, "/nope.txt")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = c
            .post(url(addr, "/small.txt"))
            .body("x")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        let r = c
            .delete(url(addr, "/metrics"))
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn missing_docroot_serves_404_not_a_crash() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root.join("absent")))).await;
        let r = client()
            .get(url(addr, "/small.txt"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = client()
            .get(url(addr, "/health"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn traversal_tricks_never_read_outside_the_docroot() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        // Sent raw: an HTTP client would normalise most of these.
        let tricks = [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/.%2e/secret.txt",
            "/%2e%2e%2fsecret.txt",
            "/sub/..%2f..%2fsecret.txt",
            "/..%5csecret.txt",
            "/sub%5c..%5c..%5csecret.txt",
            "/small.txt%00.html",
            "/%00",
            "/escape.txt",
            "/updir/secret.txt",
            "//etc/passwd",
            "/%2fetc%2fpasswd",
            "/escape.txt.gz",
        ];
        for t in tricks {
            let resp = raw_get(addr, t).await;
            let status = status_of(&resp);
            assert!((400..500).contains(&status), "{t}: status {status}: {resp}");
            assert!(!resp.contains(SECRET), "{t} leaked the secret");
            assert!(!resp.contains("root:"), "{t} leaked /etc/passwd");
        }
        // A raw backslash is not even a valid request target.
        let resp = raw_get(addr, "/..\\secret.txt").await;
        assert!((400..500).contains(&status_of(&resp)), "{resp}");
        assert!(!resp.contains(SECRET));
        // A symlink that stays inside is served, and so is a path that
        // leaves through a symlink and resolves back inside: what is read
        // is decided by the canonical path.
        for ok in ["/inside.txt", "/updir/public/small.txt"] {
            let resp = raw_get(addr, ok).await;
            assert_eq!(status_of(&resp), 200, "{ok}: {resp}");
        }
        node.shutdown().await;
    })
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_turned_outside_after_caching_is_refused() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let link = site.root.join("link.txt");
        std::os::unix::fs::symlink(site.root.join("small.txt"), &link).expect("symlink");
        let resp = raw_get(addr, "/link.txt").await;
        assert_eq!(status_of(&resp), 200, "{resp}");
        // Cached; now the link points outside the docroot.
        std::fs::remove_file(&link).expect("rm");
        std::os::unix::fs::symlink(site.dir.path().join("secret.txt"), &link).expect("symlink");
        let resp = raw_get(addr, "/link.txt").await;
        assert_eq!(status_of(&resp), 404, "{resp}");
        assert!(!resp.contains(SECRET));
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_changed_file_is_served_fresh() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        let path = site.root.join("page.txt");
        std::fs::write(&path, "version one\n").expect("write");
        let get = |c: reqwest::Client| async move {
            let r = c.get(url(addr, "/page.txt")).send().await.expect("get");
            let etag = r.headers()[header::ETAG].clone();
            (r.text().await.expect("body"), etag)
        };
        let (first, etag1) = get(c.clone()).await;
        assert_eq!(first, "version one\n");
        let (again, _) = get(c.clone()).await;
        assert_eq!(again, "version one\n");
        let text = node.metrics().render();
        let hits_before = sample(&text, "corral_cache_hits_total{cache=\"file\"}").expect("hits");
        assert!(hits_before >= 1.0, "{text}");

        // Rewritten in place with another size: the next hit sees it.
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(b"version two, longer\n").expect("write");
        drop(f);
        let (second, etag2) = get(c.clone()).await;
        assert_eq!(second, "version two, longer\n");
        assert_ne!(etag1, etag2);
        let text = node.metrics().render();
        let misses = sample(&text, "corral_cache_misses_total{cache=\"file\"}").expect("misses");
        assert!(misses >= 2.0, "{text}");
        assert!(sample(&text, "corral_cache_bytes{cache=\"file\"}").expect("bytes") > 0.0);

        // Removed: 404.
        std::fs::remove_file(&path).expect("rm");
        let r = c.get(url(addr, "/page.txt")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn cache_sup_runs_under_the_root_and_bounds_the_bytes() {
    guarded(async {
        let site = Site::new();
        let mut cfg = config(&site.root);
        // Room for about one big file: the second evicts the first.
        cfg.cache.max_bytes = 150 * 1024;
        cfg.cache.gzip_min_bytes = u64::MAX;
        std::fs::write(site.root.join("big2.txt"), &site.big).expect("write");
        let (node, addr) = start(Node::builder(cfg)).await;
        let children = node.root().which_children().await.expect("children");
        let ids: Vec<_> = children.iter().filter_map(|c| c.id.clone()).collect();
        // After metrics_sup, before the listener.
        assert_eq!(ids, ["metrics_sup", "cache_sup", "listener_sup:http"]);
        let c = client();
        for p in ["/big.txt", "/big2.txt", "/big.txt", "/big2.txt"] {
            let r = c.get(url(addr, p)).send().await.expect("get");
            assert_eq!(r.bytes().await.expect("body").len(), site.big.len());
        }
        // Evictions are counted when moka runs its maintenance (the
        // file_cache actor does it each second): wait for the event.
        let mut evicted = 0.0;
        for _ in 0..500 {
            let text = node.metrics().render();
            evicted = sample(&text, "corral_cache_evictions_total{cache=\"file\"}").unwrap_or(0.0);
            if evicted >= 1.0 {
                let bytes = sample(&text, "corral_cache_bytes{cache=\"file\"}").expect("bytes");
                assert!(bytes <= 150.0 * 1024.0, "{bytes}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(evicted >= 1.0, "no eviction counted");
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn routes_come_after_builtins_and_before_static_files() {
    guarded(async {
        let site = Site::new();
        std::fs::create_dir_all(site.root.join("api")).expect("mkdir");
        std::fs::write(site.root.join("api/hello"), "from disk").expect("write");
        let builder = Node::builder(config(&site.root))
            .route("/api", |req: Request<Body>| async move {
                Response::new(full(format!("handler saw {}", req.uri().path())))
            })
            .route("/metrics", |_req: Request<Body>| async {
                Response::new(full("shadowed"))
            });
        let (node, addr) = start(builder).await;
        let c = client();
        let r = c.get(url(addr, "/api/hello")).send().await.expect("get");
        assert_eq!(r.headers()[header::SERVER], "corral");
        assert_eq!(r.text().await.expect("body"), "handler saw /api/hello");
        let r = c.get(url(addr, "/metrics")).send().await.expect("get");
        assert!(r.text().await.expect("body").contains("# TYPE"));
        let r = c.get(url(addr, "/small.txt")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn metrics_count_http_requests_and_pass_promtool() {
    guarded(async {
        let site = Site::new();
        let (node, addr) = start(Node::builder(config(&site.root))).await;
        let c = client();
        for _ in 0..3 {
            c.get(url(addr, "/small.txt")).send().await.expect("get");
        }
        c.get(url(addr, "/nope")).send().await.expect("get");
        let r = c.get(url(addr, "/metrics")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        let text = r.text().await.expect("body");
        assert_eq!(
            sample(&text, "corral_http_requests_total{status=\"2xx\"}"),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "corral_http_requests_total{status=\"4xx\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "corral_http_request_duration_seconds_count{status=\"2xx\"}"
            ),
            Some(3.0)
        );
        assert!(sample(&text, "corral_cache_hits_total{cache=\"file\"}").expect("hits") >= 2.0);
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool is installed (Debian package prometheus)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        node.shutdown().await;
    })
    .await;
}

/// The value of the sample `series` exactly as rendered, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok()).flatten()
    })
}
