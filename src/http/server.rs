//! [`HttpProtocol`]: serves a connection with hyper, answering the
//! built-in routes, the user's routes and the static files.

use super::deadline;
use super::files::StaticFiles;
use super::own_wake::OnOwnWake;
use super::routes::HandlerFuture;
use super::stall::{self, StallGuard};
use super::ws;
use super::{full, Body, PeerAddr, Routes};
use crate::listener::{Connection, ListenerHandle, Protocol};
use crate::metrics::Metrics;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SERVER};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// The HTTP protocol.
#[derive(Clone)]
pub struct HttpProtocol {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) metrics: Arc<Metrics>,
    pub(super) metrics_enabled: bool,
    pub(super) listeners: Arc<OnceLock<Vec<ListenerHandle>>>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) header_read_timeout: Duration,
    pub(super) max_header_bytes: usize,
    pub(super) max_uri_bytes: usize,
    pub(super) max_body_bytes: u64,
    pub(super) max_requests: u64,
    pub(super) write_stall: Option<Duration>,
    pub(super) close_grace: Duration,
    /// `[http] hibernate_after_ms`, `None` when 0.
    pub(super) hibernate_after: Option<Duration>,
    pub(super) keep_alive: ws::KeepAlive,
    pub(super) routes: Routes,
    pub(super) files: Option<StaticFiles>,
    /// Parts of the node reporting into `/health`.
    pub(super) health_checks: Vec<Arc<dyn super::HealthCheck>>,
    /// The request counter and latency histogram of each status class,
    /// `1xx` to `5xx`, looked up once.
    pub(super) by_class: Vec<(
        crate::metrics::ShardedCounter,
        crate::metrics::ShardedHistogram,
    )>,
}

impl std::fmt::Debug for HttpProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProtocol")
            .field("routes", &self.inner.routes)
            .finish_non_exhaustive()
    }
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    text(status, "text/plain; charset=utf-8", body)
}

impl Inner {
    /// Answers one request (the `nth` of its connection): at once when it
    /// can (the built-in routes, refusals and the static files' fast path:
    /// no allocation and no reference count for the service), otherwise
    /// through a boxed future. Either way the answer is recorded.
    fn call(
        self: &Arc<Self>,
        req: Request<Incoming>,
        nth: u64,
        peer: Option<SocketAddr>,
    ) -> ServiceFuture {
        let start = Instant::now();
        let http1 = req.version() <= Version::HTTP_11;
        match self.respond(req, start, peer) {
            Ok(resp) => ServiceFuture::Now(Some(self.finish(resp, http1, nth, start))),
            Err(later) => {
                let inner = self.clone();
                ServiceFuture::Later(Box::pin(async move {
                    let resp = later.await;
                    inner.finish(resp, http1, nth, start)
                }))
            }
        }
    }

    /// Adds `Server` (and `Connection: close` on the last request a
    /// connection may make) to `resp`, and records it.
    fn finish(
        &self,
        mut resp: Response<Body>,
        http1: bool,
        nth: u64,
        start: Instant,
    ) -> Response<Body> {
        let headers = resp.headers_mut();
        headers.insert(SERVER, HeaderValue::from_static(super::SERVER_NAME));
        if http1 && self.max_requests > 0 && nth >= self.max_requests {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let class = usize::from(resp.status().as_u16() / 100)
            .saturating_sub(1)
            .min(4);
        let (count, latency) = &self.by_class[class];
        count.inc();
        latency.observe(start.elapsed().as_secs_f64());
        resp
    }

    /// The response to `req`, started at `start`: at once (`Ok`) or later
    /// (`Err`: a route's handler, or a static file through `ServeDir`).
    fn respond(
        &self,
        req: Request<Incoming>,
        start: Instant,
        peer: Option<SocketAddr>,
    ) -> Result<Response<Body>, HandlerFuture> {
        if let Some(refusal) = malformed(&req) {
            return Ok(plain(StatusCode::BAD_REQUEST, refusal));
        }
        let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
        if uri_len > self.max_uri_bytes {
            return Ok(plain(StatusCode::URI_TOO_LONG, "URI too long\n"));
        }
        let head_len = uri_len
            + req
                .headers()
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 4)
                .sum::<usize>();
        if head_len > self.max_header_bytes {
            return Ok(plain(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header fields too large\n",
            ));
        }
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            let mut r = plain(StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n");
            // The body is left unread: the connection cannot be reused.
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return Ok(r);
        }
        let path = req.uri().path();
        let builtin = match path {
            "/metrics" => self.metrics_enabled,
            "/health" | "/health/live" | "/health/ready" => true,
            _ => false,
        };
        if builtin {
            return Ok(self.builtin(&req));
        }
        if let Some(handler) = self.routes.find(path) {
            let limit = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
            let mut req = req.map(|b| Limited::new(b, limit).boxed_unsync());
            if let Some(peer) = peer {
                req.extensions_mut().insert(PeerAddr(peer));
            }
            let handler = handler.clone();
            return Err(Box::pin(async move { handler.call(req).await }));
        }
        // Static files never read the body (hyper discards what is left).
        match &self.files {
            Some(files) => files.answer(req, start),
            None => Ok(plain(StatusCode::NOT_FOUND, "not found\n")),
        }
    }

    fn builtin<B>(&self, req: &Request<B>) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match req.uri().path() {
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            ),
            "/health/live" => text(StatusCode::OK, "application/json", "{\"live\":true}\n"),
            path => self.health(path == "/health/ready"),
        }
    }

    fn health(&self, ready_only: bool) -> Response<Body> {
        let listeners = self.listeners.get().map(Vec::as_slice).unwrap_or(&[]);
        let ready = !listeners.is_empty() && listeners.iter().all(ListenerHandle::is_accepting);
        let states: serde_json::Map<String, serde_json::Value> = listeners
            .iter()
            .map(|l| {
                (
                    l.name().to_string(),
                    serde_json::json!({
                        "accepting": l.is_accepting(),
                        "connections": l.connections(),
                    }),
                )
            })
            .collect();
        let mut body = serde_json::json!({ "live": true, "ready": ready, "listeners": states });
        let mut degraded = Vec::new();
        for check in &self.health_checks {
            let report = check.report();
            if let Some(why) = report.degraded {
                degraded.push(serde_json::Value::from(format!("{}: {why}", check.name())));
            }
            body[check.name()] = report.details;
        }
        body["status"] = if degraded.is_empty() {
            "ok"
        } else {
            "degraded"
        }
        .into();
        body["degraded"] = degraded.into();
        let status = if ready || !ready_only {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        text(status, "application/json", format!("{body}\n"))
    }

    /// Serves one connection (plain or TLS) until it ends, the idle timeout
    /// passes, or the listener drains.
    async fn serve_io<I>(
        self: Arc<Self>,
        io: I,
        draining: CancellationToken,
        peer: Option<SocketAddr>,
    ) -> Result<(), crate::listener::ProtocolError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(deadline::Activity::default());
        let upgrades = ws::Upgrades::new(self.keep_alive);
        let service = self.service(&activity, &upgrades, peer);
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(deadline::HeadTimer::default())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes.max(8192))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(self.keep_alive.interval)
            .keep_alive_timeout(self.keep_alive.timeout);
        let io = StallGuard::new(io, self.write_stall);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        // The watcher's ticks also keep the HeadTimer's sleeps polled. Both
        // side futures are polled only when they wake the task themselves.
        let tick = deadline::tick(self.header_read_timeout, self.idle_timeout);
        let drained = std::pin::pin!(draining.cancelled());
        let watcher = std::pin::pin!(deadline::watch(
            tick,
            self.header_read_timeout,
            self.idle_timeout,
            &activity
        ));
        let (drained, watcher) = (OnOwnWake::new(drained), OnOwnWake::new(watcher));
        let served = tokio::select! {
            r = conn.as_mut() => r,
            _ = drained => {
                conn.as_mut().graceful_shutdown();
                self.within_grace(conn).await
            }
            _ = watcher => {
                conn.as_mut().graceful_shutdown();
                self.within_grace(conn).await
            }
        };
        // A connection upgraded to a WebSocket is served until that closes.
        upgrades.finish(&draining).await;
        Self::ended(served)
    }

    /// The service of one connection: counts its requests in `activity`,
    /// gives a request that asks for an upgrade the connection's
    /// `upgrades`, and answers it.
    pub(super) fn service(
        self: &Arc<Self>,
        activity: &Arc<deadline::Activity>,
        upgrades: &ws::Upgrades,
        peer: Option<SocketAddr>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<deadline::TrackedBody>,
        Error = Infallible,
        Future = Answer,
    > + Clone
           + Send
           + 'static {
        let seen = activity.clone();
        let inner = self.clone();
        let upgrading = upgrades.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| -> Answer {
            let (request, nth) = deadline::InProgress::start(&seen);
            if req.headers().contains_key(hyper::header::UPGRADE) {
                req.extensions_mut().insert(upgrading.clone());
            }
            Answer {
                future: inner.call(req, nth, peer),
                request: Some(request),
            }
        })
    }

    /// Ends a connection's serving: a write stall or an unanswered
    /// keep-alive ping is a normal end (the peer is cut, as it should be).
    pub(super) fn ended(
        served: Result<(), crate::listener::ProtocolError>,
    ) -> Result<(), crate::listener::ProtocolError> {
        match served {
            Err(e) if stall::is_timeout(&*e) => {
                tracing::debug!(error = %e, "HTTP connection cut");
                Ok(())
            }
            other => other,
        }
    }

    /// Lets a connection that has started closing finish for at most
    /// `close_grace`, then drops it (an HTTP/2 peer that answers neither the
    /// GOAWAY's ping nor anything else is not waited on for ever).
    pub(super) async fn within_grace<F, E>(&self, conn: F) -> Result<(), E>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        match tokio::time::timeout(self.close_grace, conn).await {
            Ok(r) => r,
            Err(_) => {
                tracing::debug!(grace = ?self.close_grace, "HTTP connection cut after its close grace");
                Ok(())
            }
        }
    }
}

impl HttpProtocol {
    /// Serves one connection over any byte stream (a Unix socket, an
    /// in-memory pipe, a stream a listener of your own accepted) until it
    /// ends, the idle timeout passes, or `draining` is cancelled. The
    /// listeners' connections are served the same way.
    pub async fn serve_connection<IO>(
        &self,
        io: IO,
        draining: CancellationToken,
    ) -> Result<(), crate::listener::ProtocolError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.inner.clone().serve_io(io, draining, None).await
    }
}

#[async_trait::async_trait]
impl Protocol for HttpProtocol {
    type Msg = ();

    async fn serve(&self, conn: Connection<()>) -> Result<(), crate::listener::ProtocolError> {
        let inner = self.inner.clone();
        let peer = conn.peer();
        async move {
            let (socket, _inbox, draining) = conn.into_parts();
            let Some(socket) = socket else {
                return Ok(());
            };
            match socket.into_byte_stream() {
                Ok(stream) => {
                    // Large cached files go out with sendfile (plain TCP).
                    let sent = inner.metrics.http_sendfile_bytes.clone();
                    let stream = super::sendfile::SendfileStream::new(stream, sent);
                    match inner.hibernate_after {
                        // TLS keeps rustls's state (and possibly decrypted bytes
                        // nobody asked for yet) under hyper: it does not hibernate.
                        Some(after) if !stream.is_tls() => {
                            inner
                                .serve_hibernating(stream, draining, Some(peer), after)
                                .await
                        }
                        _ => Box::pin(inner.serve_io(stream, draining, Some(peer))).await,
                    }
                }
                Err(other) => Err(format!(
                    "HTTP is served over a byte stream (tcp, tls), not {}",
                    other.transport()
                )
                .into()),
            }
        }
        .await
    }
}

/// Why `req` is refused with 400, if it is: a request target that is
/// neither origin form (`/path`) nor absolute form (`http://host/path`),
/// except the authority form of CONNECT and `*` of OPTIONS; an HTTP/1.1
/// request without exactly one Host header, or an HTTP/1.0 one with more
/// than one (RFC 9112 §3.2, §3.2.3).
fn malformed<B>(req: &Request<B>) -> Option<&'static str> {
    let uri = req.uri();
    let method = req.method();
    if method == Method::CONNECT {
        // hyper serves no CONNECT here; whatever its target, no route
        // answers it with a 5xx.
    } else if uri.scheme().is_none() {
        let path = uri.path();
        let asterisk = path == "*" && method == Method::OPTIONS;
        if uri.authority().is_some() || !(path.starts_with('/') || asterisk) {
            return Some("bad request target\n");
        }
    }
    if req.version() <= Version::HTTP_11 {
        let mut hosts = req.headers().get_all(hyper::header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (_, Some(_)) => return Some("more than one Host header\n"),
            (None, None) if req.version() == Version::HTTP_11 => {
                return Some("missing Host header\n")
            }
            _ => {}
        }
    }
    None
}

/// A [`ServiceFuture`] whose response keeps its request in progress until
/// its body is dropped (see [`deadline::InProgress`]).
pub(super) struct Answer {
    future: ServiceFuture,
    request: Option<deadline::InProgress>,
}

impl std::future::Future for Answer {
    type Output = Result<Response<deadline::TrackedBody>, Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        let Ok(resp) = std::task::ready!(std::pin::Pin::new(&mut this.future).poll(cx));
        let request = this
            .request
            .take()
            .expect("an answer is not polled after it is ready");
        std::task::Poll::Ready(Ok(
            resp.map(|body| deadline::TrackedBody::new(body, request))
        ))
    }
}

/// The service's answer to a request: ready at once, or a boxed
/// `dyn Future + Send`. (An async block's own type, or `Either` of two
/// futures, trips the compiler when hyper's HTTP/2 executor bound is proven.)
enum ServiceFuture {
    Now(Option<Response<Body>>),
    Later(HandlerFuture),
}

impl std::future::Future for ServiceFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            ServiceFuture::Now(resp) => std::task::Poll::Ready(Ok(resp
                .take()
                .expect("a service future is not polled after it is ready"))),
            ServiceFuture::Later(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}
