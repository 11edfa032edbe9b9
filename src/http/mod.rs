//! The HTTP protocol on hyper: `/metrics` (Prometheus text format) and
//! `/health` (liveness, and readiness from the listeners' states).
//!
//! This is the node's minimal web face; static files, compression and the
//! chat's web pages come with the web service.

use crate::listener::{Connection, ListenerHandle, Protocol, ServeFuture, Socket};
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, SERVER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The HTTP protocol.
#[derive(Clone)]
pub struct HttpProtocol {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Arc<Metrics>,
    metrics_enabled: bool,
    idle_timeout: Option<Duration>,
    listeners: Arc<OnceLock<Vec<ListenerHandle>>>,
    header_read_timeout: Duration,
    max_header_bytes: usize,
}

impl std::fmt::Debug for HttpProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProtocol").finish_non_exhaustive()
    }
}

impl HttpProtocol {
    /// An HTTP protocol exporting `metrics` (unless `metrics_enabled` is
    /// false: then /metrics is 404), reporting readiness from the listeners
    /// set later in `listeners` (empty until set: not ready).
    pub fn new(
        metrics: Arc<Metrics>,
        metrics_enabled: bool,
        listeners: Arc<OnceLock<Vec<ListenerHandle>>>,
        config: &crate::config::HttpConfig,
    ) -> Self {
        HttpProtocol {
            inner: Arc::new(Inner {
                metrics,
                metrics_enabled,
                idle_timeout: config.idle_timeout(),
                listeners,
                header_read_timeout: config.header_read_timeout(),
                max_header_bytes: config.max_header_bytes,
            }),
        }
    }
}

type Body = Full<Bytes>;

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

impl Inner {
    fn route(&self, req: &Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        let known = match path {
            "/metrics" => self.metrics_enabled,
            "/health" | "/health/live" | "/health/ready" => true,
            _ => false,
        };
        if !known {
            return text(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found\n",
            );
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "method not allowed\n",
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match path {
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            ),
            "/health/live" => text(StatusCode::OK, "application/json", "{\"live\":true}\n"),
            _ => self.health(path == "/health/ready"),
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
        let body = serde_json::json!({ "live": true, "ready": ready, "listeners": states });
        let status = if ready || !ready_only {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        text(status, "application/json", format!("{body}\n"))
    }
}

impl Protocol for HttpProtocol {
    type Msg = ();

    fn serve(&self, conn: Connection<()>) -> ServeFuture {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (socket, _inbox, draining) = conn.into_parts();
            let Some(Socket::Tcp(stream)) = socket else {
                return Ok(());
            };
            let header_read_timeout = inner.header_read_timeout;
            let max_buf = inner.max_header_bytes.max(8192);
            let idle_timeout = inner.idle_timeout;
            let activity = Arc::new(Activity::default());
            let seen = activity.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let inner = inner.clone();
                seen.touch();
                async move {
                    let mut resp = inner.route(&req);
                    resp.headers_mut()
                        .insert(SERVER, HeaderValue::from_static("corral"));
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .max_buf_size(max_buf)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => r?,
                _ = draining.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await?;
                }
                _ = idle(idle_timeout, &activity) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await?;
                }
            }
            Ok(())
        })
    }
}

/// When a connection last started a request.
#[derive(Default)]
struct Activity {
    requests: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Resolves once no request has started for `timeout` (never if `None`).
/// A request in progress is let finish by hyper's graceful shutdown.
async fn idle(timeout: Option<Duration>, activity: &Activity) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    let mut last = activity.count();
    loop {
        tokio::time::sleep(timeout).await;
        let now = activity.count();
        if now == last {
            return;
        }
        last = now;
    }
}
