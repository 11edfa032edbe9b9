//! Static files: tower-http's `ServeDir` over the [`FileCache`] backend, behind
//! a path check that refuses what could leave the docroot.
//!
//! `ServeDir` percent-decodes the path and refuses `..` and absolute
//! components; before it, a request whose decoded path holds `..`, a
//! backslash or a NUL byte is answered 400, and the backend canonicalises
//! every path (symlinks resolved) and refuses one outside the docroot (404).

use super::cache::{CacheBackend, FileCache};
use super::routes::{full, Body, HandlerFuture};
use futures::FutureExt;
use http_body_util::BodyExt;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use std::io;
use tower_http::services::ServeDir;

/// Serves the files under a docroot through the file cache.
#[derive(Clone, Debug)]
pub(crate) struct StaticFiles {
    serve: Serve,
    docroot: std::path::PathBuf,
}

type Serve = ServeDir<tower_http::services::fs::DefaultServeDirFallback, CacheBackend>;

impl StaticFiles {
    pub(crate) fn new(cache: &FileCache) -> Self {
        let serve = ServeDir::with_backend(cache.docroot(), cache.backend())
            .append_index_html_on_directories(true)
            .precompressed_gzip();
        StaticFiles {
            serve,
            docroot: cache.docroot().to_path_buf(),
        }
    }

    /// False for a request of `x.gz` when no such file exists: the cache
    /// backend answers a missing `x.gz` with the gzip variant of `x` (that is
    /// how ServeDir asks for it), which must not be reachable by that name.
    fn gz_exists_or_not_asked(&self, path: &str) -> bool {
        if !path.ends_with(".gz") {
            return true;
        }
        let Ok(decoded) = percent_decode_str(path).decode_utf8() else {
            return false;
        };
        self.docroot.join(decoded.trim_start_matches('/')).is_file()
    }

    pub(crate) fn serve(&self, req: Request<Body>) -> HandlerFuture {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Box::pin(std::future::ready(r));
        }
        if !safe_path(req.uri().path()) {
            return Box::pin(std::future::ready(plain(
                StatusCode::BAD_REQUEST,
                "bad path\n",
            )));
        }
        if !self.gz_exists_or_not_asked(req.uri().path()) {
            return Box::pin(std::future::ready(plain(
                StatusCode::NOT_FOUND,
                "not found\n",
            )));
        }
        let mut serve = self.serve.clone();
        Box::pin(serve.try_call(req).map(|result| match result {
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
        }))
    }
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

/// True when the percent-decoded `path` is valid UTF-8 with no `..`
/// segment, no backslash and no NUL byte.
pub(crate) fn safe_path(path: &str) -> bool {
    let Ok(decoded) = percent_decode_str(path).decode_utf8() else {
        return false;
    };
    !decoded.contains(['\\', '\0']) && !decoded.split('/').any(|seg| seg == "..")
}

#[cfg(test)]
mod tests {
    use super::safe_path;

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
