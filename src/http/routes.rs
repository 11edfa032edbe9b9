//! The route table: handlers a library user (or the chat) adds, matched by
//! path prefix after `/metrics` and `/health` and before the static files.
//!
//! ```
//! use corral::http::{full, Body, Routes};
//! use hyper::{Request, Response};
//!
//! let routes = Routes::new().route("/api/hello", |_req: Request<Body>| async {
//!     Response::new(full("hello\n"))
//! });
//! assert!(routes.find("/api/hello").is_some());
//! assert!(routes.find("/api/hello/there").is_some());
//! assert!(routes.find("/api/hellothere").is_none());
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The error type of request and response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body. A request body is limited to
/// `[http] max_body_bytes`: reading past it is an error.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The address of the client, in the extensions of every request a route's
/// [`Handler`] gets from a listener's connection (absent for a connection
/// served with [`HttpProtocol::serve_connection`](super::HttpProtocol::serve_connection)).
/// It is the socket's peer: behind a reverse proxy, the proxy's address.
///
/// ```
/// use corral::http::{full, Body, PeerAddr};
/// use hyper::{Request, Response};
///
/// async fn whoami(req: Request<Body>) -> Response<Body> {
///     match req.extensions().get::<PeerAddr>() {
///         Some(PeerAddr(addr)) => Response::new(full(format!("{addr}\n"))),
///         None => Response::new(full("unknown\n")),
///     }
/// }
/// # let _ = whoami;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The future a [`Handler`] returns.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// A whole body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Answers the requests of one route. Any `Fn(Request<Body>) -> impl
/// Future<Output = Response<Body>>` is a handler; a type of yours
/// implements it with [`async_trait`](crate::async_trait), as every
/// extension point of corral (listener protocols, RPC services) is written.
///
/// ```
/// use corral::async_trait;
/// use corral::http::{full, Body, Handler};
/// use hyper::{Request, Response};
///
/// struct Hello;
///
/// #[async_trait]
/// impl Handler for Hello {
///     async fn call(&self, _req: Request<Body>) -> Response<Body> {
///         Response::new(full("hello\n"))
///     }
/// }
/// ```
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    async fn call(&self, req: Request<Body>) -> Response<Body>;
}

#[async_trait]
impl<F, Fut> Handler for F
where
    F: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    async fn call(&self, req: Request<Body>) -> Response<Body> {
        self(req).await
    }
}

/// Handlers by path prefix, tried in the order added.
///
/// A prefix matches the path itself and the paths below it: `/api` matches
/// `/api` and `/api/x`, not `/apix`; a prefix ending in `/` matches every path
/// that starts with it.
#[derive(Clone, Default)]
pub struct Routes {
    routes: Vec<(Arc<str>, Arc<dyn Handler>)>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(p, _)| p))
            .finish()
    }
}

impl Routes {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `handler` for the paths under `prefix`.
    pub fn route(mut self, prefix: &str, handler: impl Handler) -> Self {
        self.routes.push((Arc::from(prefix), Arc::new(handler)));
        self
    }

    /// Adds every route of `other` after these.
    pub fn merge(mut self, other: Routes) -> Self {
        self.routes.extend(other.routes);
        self
    }

    /// The handler of the first route matching `path`.
    pub fn find(&self, path: &str) -> Option<&Arc<dyn Handler>> {
        self.routes
            .iter()
            .find(|(prefix, _)| matches(prefix, path))
            .map(|(_, h)| h)
    }

    /// True when no route was added.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

fn matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn prefixes() {
        assert!(matches("/api", "/api"));
        assert!(matches("/api", "/api/"));
        assert!(matches("/api", "/api/x"));
        assert!(!matches("/api", "/apix"));
        assert!(matches("/api/", "/api/x"));
        assert!(!matches("/api/", "/api"));
        assert!(matches("/", "/anything"));
    }
}
