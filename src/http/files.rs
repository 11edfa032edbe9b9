//! Static files: a fast path answering from the [`FileCache`], and
//! tower-http's `ServeDir` over the cache's backend for everything else,
//! behind a path check that refuses what could leave the docroot.
//!
//! Before either, a request whose decoded path holds `..`, a backslash or a
//! NUL byte is answered 400. `ServeDir` percent-decodes the path and refuses
//! `..` and absolute components, and the backend canonicalises a path
//! (symlinks resolved) and refuses one outside the docroot (404) before its
//! file is cached.
//!
//! The fast path answers a plain GET or HEAD (no `Range`, no conditional
//! header) of a file already cached and unchanged: one stat, one cache
//! lookup, header values made when the file was cached, and the cached
//! `Bytes` as the body (no copy). It gives the same headers as `ServeDir`
//! (the same ETag format, `Vary`, `Accept-Ranges`, and the same choice of
//! encoding from `Accept-Encoding`); everything else (a miss, a directory,
//! ranges, conditional requests, `.gz` names) goes to `ServeDir`.

use super::cache::{FileCache, OUTCOME_HIT, OUTCOME_MISS, OUTCOME_NONE};
use super::routes::{empty, full, Body, HandlerFuture};
use futures::FutureExt;
use http_body_util::BodyExt;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING, ALLOW, CONTENT_TYPE, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, RANGE,
};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use std::borrow::Cow;
use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tower_http::services::ServeDir;

/// Serves the files under a docroot through the file cache.
#[derive(Clone, Debug)]
pub(crate) struct StaticFiles {
    cache: FileCache,
    docroot: PathBuf,
}

impl StaticFiles {
    pub(crate) fn new(cache: &FileCache) -> Self {
        StaticFiles {
            cache: cache.clone(),
            docroot: cache.docroot().to_path_buf(),
        }
    }

    /// False for a request of `x.gz` (`decoded`: the percent-decoded path)
    /// when no such file exists: the cache backend answers a missing `x.gz`
    /// with the gzip variant of `x` (that is how ServeDir asks for it),
    /// which must not be reachable by that name.
    fn gz_exists_or_not_asked(&self, decoded: &str) -> bool {
        if !decoded.ends_with(".gz") {
            return true;
        }
        self.docroot.join(decoded.trim_start_matches('/')).is_file()
    }

    /// Answers one request.
    #[cfg(test)]
    pub(crate) fn serve(&self, req: Request<Body>) -> HandlerFuture {
        match self.answer(req, Instant::now()) {
            Ok(resp) => Box::pin(std::future::ready(resp)),
            Err(later) => later,
        }
    }

    /// Answers one request, started at `now`, at once (`Ok`: refused, or
    /// from the fast path) or later (`Err`: through `ServeDir`).
    pub(crate) fn answer<B: Send + 'static>(
        &self,
        req: Request<B>,
        now: Instant,
    ) -> Result<Response<Body>, HandlerFuture> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Ok(r);
        }
        let Some(decoded) = decoded_path(req.uri().path()) else {
            return Ok(plain(StatusCode::BAD_REQUEST, "bad path\n"));
        };
        if !self.gz_exists_or_not_asked(&decoded) {
            return Ok(plain(StatusCode::NOT_FOUND, "not found\n"));
        }
        if let Some(resp) = self.fast(&req, &decoded, now) {
            return Ok(resp);
        }
        // It borrows `req`, which ServeDir takes.
        drop(decoded);
        // One ServeDir per request, over a backend recording its hits and
        // misses, so that a request is counted once however many lookups
        // ServeDir makes.
        let outcome = Arc::new(AtomicU8::new(OUTCOME_NONE));
        let mut serve =
            ServeDir::with_backend(&self.docroot, self.cache.backend_recording(outcome.clone()))
                .append_index_html_on_directories(true)
                .precompressed_gzip();
        let cache = self.cache.clone();
        let served = serve.try_call(req).map(move |result| {
            match outcome.load(Ordering::Relaxed) {
                OUTCOME_HIT => cache.count(true),
                OUTCOME_MISS => cache.count(false),
                _ => {}
            }
            result
        });
        Err(Box::pin(served.map(|result| match result {
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                plain(StatusCode::NOT_FOUND, "not found\n")
            }
            Ok(resp) => resp.map(|b| b.map_err(Into::into).boxed_unsync()),
            Err(e) if is_not_found(&e) => plain(StatusCode::NOT_FOUND, "not found\n"),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                plain(StatusCode::BAD_REQUEST, "bad path\n")
            }
            Err(e) => {
                tracing::warn!(error = %e, "static file error");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
            }
        })))
    }
}

impl StaticFiles {
    /// The answer of the fast path (counted as a hit), or `None` to leave
    /// the request to `ServeDir` (see the module docs). `decoded` is the
    /// request's percent-decoded path, `now` its start.
    pub(crate) fn fast<B>(
        &self,
        req: &Request<B>,
        decoded: &str,
        now: Instant,
    ) -> Option<Response<Body>> {
        let headers = req.headers();
        // One pass over the few headers a request has, rather than a
        // lookup of each of the five.
        let conditional = |name: &HeaderName| {
            name == RANGE
                || name == IF_MATCH
                || name == IF_NONE_MATCH
                || name == IF_MODIFIED_SINCE
                || name == IF_UNMODIFIED_SINCE
        };
        if headers.keys().any(conditional) {
            return None;
        }
        // The path is built in a buffer of this thread's, kept from request
        // to request: no allocation on a hit.
        let (headers, bytes) = PATH.with_borrow_mut(|path| {
            if !file_path_into(path, &self.docroot, decoded) {
                return None;
            }
            self.cache.with_fresh(path, now, |entry| {
                let rep = entry.representation(entry.has_gzip() && prefers_gzip(headers))?;
                Some(rep.parts())
            })
        })?;
        let body = if req.method() == Method::HEAD {
            empty()
        } else {
            full(bytes)
        };
        let mut resp = Response::new(body);
        *resp.headers_mut() = headers;
        self.cache.count(true);
        Some(resp)
    }
}

/// The file `ServeDir` would look up for `decoded` (a percent-decoded
/// request path), when it is plain: normal components only (no `.`, `..`,
/// empty or absolute ones), and `index.html` under it when it ends in `/`:
/// written into `path` (whatever it held before), and true. False for
/// anything else, which is left to `ServeDir`.
fn file_path_into(path: &mut PathBuf, docroot: &Path, decoded: &str) -> bool {
    let Some(rel) = decoded.strip_prefix('/') else {
        return false;
    };
    let (rel, index) = match rel.strip_suffix('/') {
        _ if rel.is_empty() => (rel, true),
        Some("") => return false,
        Some(dir) => (dir, true),
        None => (rel, false),
    };
    // On Unix a segment without `/` is a normal component unless it is
    // empty, `.` or `..`: checked as strings, and the path pushed at once
    // (parsing each segment as a `Path` cost more than the cache lookup).
    if !rel.is_empty() && rel.split('/').any(|seg| matches!(seg, "" | "." | "..")) {
        return false;
    }
    path.as_mut_os_string().clear();
    path.push(docroot);
    if !rel.is_empty() {
        path.push(rel);
    }
    if index {
        path.push("index.html");
    }
    true
}

thread_local! {
    /// The fast path's buffer for the file path of a request.
    static PATH: RefCell<PathBuf> = RefCell::new(PathBuf::new());
}

/// True when the `Accept-Encoding` headers make gzip the preferred coding,
/// as tower-http's `ServeDir` decides with gzip as its only precompressed
/// coding: among the codings it knows (`gzip`, `x-gzip`, `identity`, case
/// insensitive; others ignored), each with its q-value (1 when absent; an
/// entry whose parameter is not a valid `q=` value is ignored), the one of
/// highest q above 0 wins, gzip on a tie.
fn prefers_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut identity = None;
    for entry in headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let (coding, param) = match entry.split_once(';') {
            Some((c, p)) => (c.trim(), Some(p.trim())),
            None => (entry.trim(), None),
        };
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut identity
        } else {
            continue;
        };
        let q = match param {
            None => 1000,
            Some(p) => match qvalue(p) {
                Some(q) => q,
                None => continue,
            },
        };
        *slot = Some((*slot).map_or(q, |old: u16| old.max(q)));
    }
    match (gzip, identity) {
        (Some(g), Some(i)) => g > 0 && g >= i,
        (Some(g), None) => g > 0,
        (None, _) => false,
    }
}

/// A `q=` parameter (RFC 9110 §12.4.2: `q=0`, `q=1`, up to three decimals,
/// at most 1) in thousandths.
fn qvalue(param: &str) -> Option<u16> {
    let value = param
        .strip_prefix("q=")
        .or_else(|| param.strip_prefix("Q="))?;
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    let whole: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    if frac.len() > 3 {
        return None;
    }
    let mut q = whole;
    for (digit, scale) in frac.bytes().zip([100u16, 10, 1]) {
        if !digit.is_ascii_digit() {
            return None;
        }
        q += u16::from(digit - b'0') * scale;
    }
    (q <= 1000).then_some(q)
}

/// Errors that mean "no such file" to a client: absent, not allowed, a file
/// used as a directory, a directory opened as a file.
fn is_not_found(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::IsADirectory
    )
}

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The percent-decoded `path`, when it is valid UTF-8 with no `..`
/// segment, no backslash and no NUL byte; `None` for anything else.
fn decoded_path(path: &str) -> Option<Cow<'_, str>> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let safe = !decoded.contains(['\\', '\0']) && !decoded.split('/').any(|seg| seg == "..");
    safe.then_some(decoded)
}

#[cfg(test)]
fn safe_path(path: &str) -> bool {
    decoded_path(path).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::cache::FileCacheSettings;
    use hyper::header::CONTENT_ENCODING;

    fn ae(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).expect("value"));
        }
        prefers_gzip(&h)
    }

    #[test]
    fn gzip_preference() {
        assert!(!ae(&[]));
        assert!(ae(&["gzip"]));
        assert!(ae(&["deflate, br", "x-gzip;q=0.1"]));
        assert!(ae(&["gzip, identity"]));
        assert!(ae(&["identity;q=0.5, gzip;q=0.501"]));
        assert!(!ae(&["identity;q=0.5, gzip;q=0.499"]));
        assert!(!ae(&["gzip;q=0"]));
        assert!(!ae(&["gzip;q=0.0001"]));
        assert!(!ae(&["gzip;q=2"]));
        assert!(!ae(&["gzip;level=1"]));
        assert!(!ae(&["*"]));
        assert!(ae(&["gzip;q=0", "gzip;Q=1.000"]));
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("q=1"), Some(1000));
        assert_eq!(qvalue("q=1."), Some(1000));
        assert_eq!(qvalue("Q=0.25"), Some(250));
        assert_eq!(qvalue("q=0.005"), Some(5));
        assert_eq!(qvalue("q=1.001"), None);
        assert_eq!(qvalue("q=0.5x"), None);
        assert_eq!(qvalue("q="), None);
        assert_eq!(qvalue("q=.5"), None);
        assert_eq!(qvalue("q=+0.5"), None);
    }

    #[test]
    fn fast_path_file_paths() {
        let root = Path::new("/srv/www");
        let p = |u: &str| {
            let d = decoded_path(u)?;
            // A buffer with something in it already: it is overwritten.
            let mut path = PathBuf::from("/left/over");
            file_path_into(&mut path, root, &d).then_some(path)
        };
        assert_eq!(p("/a/b.txt"), Some(root.join("a/b.txt")));
        assert_eq!(p("/a%20b.txt"), Some(root.join("a b.txt")));
        assert_eq!(p("/"), Some(root.join("index.html")));
        assert_eq!(p("/sub/"), Some(root.join("sub/index.html")));
        for odd in [
            "",
            "a",
            "//",
            "/a//b",
            "/./a",
            "/a/.",
            "/a/../b",
            "/a/%2e/b",
            "/%ff",
            "/..",
            "/.",
            "/a/..",
            "/%2e%2e/etc/passwd",
            "/a/..%2f",
            "/a%2f%2e%2e/b",
            "/../",
        ] {
            assert_eq!(p(odd), None, "{odd}");
        }
    }

    fn fast(files: &StaticFiles, req: &Request<Body>) -> Option<Response<Body>> {
        let decoded = decoded_path(req.uri().path())?;
        files.fast(req, &decoded, Instant::now())
    }

    fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut b = Request::builder().uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(empty()).expect("request")
    }

    #[tokio::test]
    async fn fast_path_takes_only_plain_requests_of_cached_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.txt"), "x".repeat(4096)).expect("write");
        let cache = FileCache::with_settings(
            FileCacheSettings {
                docroot: dir.path().to_path_buf(),
                max_bytes: 1 << 20,
                max_file_bytes: 1 << 20,
                gzip_min_bytes: 1,
                revalidate: std::time::Duration::ZERO,
            },
            None,
        );
        let files = StaticFiles::new(&cache);
        assert!(
            fast(&files, &get("/a.txt", &[])).is_none(),
            "not cached yet"
        );
        let resp = files.serve(get("/a.txt", &[])).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = fast(&files, &get("/a.txt", &[])).expect("cached");
        assert!(resp.headers().get(CONTENT_ENCODING).is_none());
        let resp = fast(&files, &get("/a.txt", &[("accept-encoding", "gzip")])).expect("cached");
        assert_eq!(resp.headers()[CONTENT_ENCODING], "gzip");
        for h in [
            "range",
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
        ] {
            assert!(fast(&files, &get("/a.txt", &[(h, "x")])).is_none(), "{h}");
        }
        assert!(fast(&files, &get("/./a.txt", &[])).is_none());
        // Changed on disk: no longer taken.
        std::fs::write(dir.path().join("a.txt"), "y").expect("write");
        assert!(fast(&files, &get("/a.txt", &[])).is_none());
    }

    /// With a revalidation interval, a cached file is served without a
    /// look at the disk within it, and checked again after it.
    #[tokio::test]
    async fn a_revalidation_interval_trusts_the_cache_for_that_long() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "x".repeat(100)).expect("write");
        let cache = FileCache::with_settings(
            FileCacheSettings {
                docroot: dir.path().to_path_buf(),
                max_bytes: 1 << 20,
                max_file_bytes: 1 << 20,
                gzip_min_bytes: 1 << 20,
                revalidate: std::time::Duration::from_millis(300),
            },
            None,
        );
        let files = StaticFiles::new(&cache);
        assert_eq!(
            files.serve(get("/a.txt", &[])).await.status(),
            StatusCode::OK
        );
        std::fs::remove_file(&path).expect("remove");
        let stale = fast(&files, &get("/a.txt", &[])).expect("trusted within the interval");
        assert_eq!(stale.headers()["content-length"], "100");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert!(
            fast(&files, &get("/a.txt", &[])).is_none(),
            "checked after it"
        );
        assert_eq!(
            files.serve(get("/a.txt", &[])).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn paths() {
        assert!(safe_path("/"));
        assert!(safe_path("/a/b.txt"));
        assert!(safe_path("/a..b/c"));
        assert!(!safe_path("/../etc/passwd"));
        assert!(!safe_path("/a/%2e%2e/b"));
        assert!(!safe_path("/a/%2E%2E/b"));
        assert!(!safe_path("/a/..%2fb"));
        assert!(!safe_path("/a\\..\\b"));
        assert!(!safe_path("/a%5c..%5cb"));
        assert!(!safe_path("/a%00b"));
        assert!(!safe_path("/%ff"));
    }
}
