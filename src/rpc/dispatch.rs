//! The transport-independent core: body in, reply body out.
//!
//! [`RpcShared`] decodes a body, finds the service, runs it and encodes the
//! reply, recording metrics on the way. It knows nothing of framing: a
//! byte-stream transport (TCP) wraps bodies in length-prefixed frames, a
//! message transport (SCTP) sends each body as one message.
//!
//! A request whose service completes on its first poll (`ping`, `echo`,
//! errors) is answered inline ([`Dispatched::Ready`]); the others come back as
//! a future for the connection to drive alongside its other requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;
use prometheus::{Histogram, IntCounter, IntCounterVec};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::envelope::{self, Encoding, ErrorCode, ErrorReply, RequestId, Shape};
use super::registry::{CallContext, Registry, Request, Service, ServiceError};
use super::services;
use super::settings::RpcSettings;
use super::stats::RpcStats;
use crate::metrics::Metrics;

/// Metric label for requests that name no registered service.
const UNKNOWN_LABEL: &str = "unknown";

/// The target of the line logged per request at debug level
/// (`RUST_LOG=corral::rpc::request=debug`).
pub(crate) const REQUEST_LOG_TARGET: &str = "corral::rpc::request";

/// Logs one processed request at debug level: service (as requested; none
/// when it could not be read), id, outcome (`ok` or the error code) and
/// duration in µs. tracing checks the level first: when debug is off for
/// this target nothing below is evaluated (no formatting, no allocation).
fn log_request(
    service: Option<&str>,
    id: &RequestId,
    outcome: Result<(), ErrorCode>,
    elapsed: Duration,
) {
    tracing::debug!(
        target: REQUEST_LOG_TARGET,
        service,
        id = ?id,
        outcome = outcome.map_or_else(ErrorCode::as_str, |()| "ok"),
        duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
}

/// A registered service with its metric handles resolved once.
struct Entry {
    name: Arc<str>,
    service: Arc<dyn Service>,
    ok: IntCounter,
    latency: Histogram,
    latency_error: Histogram,
    requests: IntCounterVec,
}

impl Entry {
    fn record(&self, id: &RequestId, result: &Result<Value, ServiceError>, started: Instant) {
        let elapsed = started.elapsed();
        let secs = elapsed.as_secs_f64();
        match result {
            Ok(_) => {
                self.ok.inc();
                self.latency.observe(secs);
            }
            Err(e) => {
                self.requests
                    .with_label_values(&[&*self.name, e.code.as_str()])
                    .inc();
                self.latency_error.observe(secs);
            }
        }
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.code);
        log_request(Some(&self.name), id, outcome, elapsed);
    }
}

/// A request handled, ready to be encoded.
#[derive(Debug)]
pub(crate) struct Completed {
    pub(crate) enc: Encoding,
    pub(crate) shape: Shape,
    pub(crate) id: RequestId,
    pub(crate) service: Option<Arc<str>>,
    pub(crate) result: Result<Value, ServiceError>,
}

/// The outcome of [`RpcShared::dispatch`].
pub(crate) enum Dispatched {
    /// Answered at once.
    Ready(Completed),
    /// Running; the future records its metrics when it completes.
    Pending(BoxFuture<'static, Completed>),
}

/// Everything connections share: settings, services, metrics, counters.
pub(crate) struct RpcShared {
    pub(crate) settings: RpcSettings,
    pub(crate) registry: Registry,
    entries: HashMap<String, Arc<Entry>>,
    metrics: Arc<Metrics>,
    unknown_latency: Histogram,
    pub(crate) stats: Arc<RpcStats>,
}

impl RpcShared {
    /// Builds the shared state: the built-in services plus `user`'s.
    pub(crate) fn new(settings: RpcSettings, metrics: Arc<Metrics>, user: &Registry) -> Self {
        let settings = super::settings::normalized(settings);
        let stats = Arc::new(RpcStats::new());
        let workers = Arc::new(Semaphore::new(settings.compute_workers));
        let registry = services::with_builtins(
            user,
            stats.clone(),
            workers,
            settings.compute_workers,
            settings.compute_max_n,
        );
        let entries = registry
            .iter()
            .map(|(name, service)| {
                let entry = Entry {
                    name: Arc::from(name),
                    service: service.clone(),
                    ok: metrics.rpc_requests.with_label_values(&[name, "ok"]),
                    latency: metrics.rpc_latency.with_label_values(&[name, "ok"]),
                    latency_error: metrics.rpc_latency.with_label_values(&[name, "error"]),
                    requests: metrics.rpc_requests.clone(),
                };
                (name.to_owned(), Arc::new(entry))
            })
            .collect();
        let unknown_latency = metrics
            .rpc_latency
            .with_label_values(&[UNKNOWN_LABEL, "error"]);
        RpcShared {
            settings,
            registry,
            entries,
            metrics,
            unknown_latency,
            stats,
        }
    }

    /// Records a request answered with an error before its service ran:
    /// `service` is the name it gave (if it could be read), counted under
    /// [`UNKNOWN_LABEL`] unless registered.
    fn record_error(
        &self,
        service: Option<&str>,
        id: &RequestId,
        code: ErrorCode,
        started: Instant,
    ) {
        let entry = service.and_then(|s| self.entries.get(s));
        let label = entry.map_or(UNKNOWN_LABEL, |e| &*e.name);
        self.metrics
            .rpc_requests
            .with_label_values(&[label, code.as_str()])
            .inc();
        let latency = entry.map_or(&self.unknown_latency, |e| &e.latency_error);
        let elapsed = started.elapsed();
        latency.observe(elapsed.as_secs_f64());
        log_request(service, id, Err(code), elapsed);
    }

    /// Decodes `body` and starts its service. `started` is when the body
    /// arrived (for the latency metric).
    pub(crate) fn dispatch(
        &self,
        body: &Bytes,
        cx: &Arc<CallContext>,
        started: Instant,
    ) -> Dispatched {
        self.stats.count_request();
        let parsed = match envelope::parse(body) {
            Ok(p) => p,
            Err(inv) => {
                self.record_error(inv.name.as_deref(), &inv.id, ErrorCode::BadRequest, started);
                return Dispatched::Ready(Completed {
                    enc: inv.enc,
                    shape: inv.shape,
                    id: inv.id,
                    service: inv.name.map(|n| Arc::from(&*n)),
                    result: Err(ServiceError::bad_request(inv.message)),
                });
            }
        };
        let Some(entry) = self.entries.get(&*parsed.name) else {
            self.record_error(
                Some(&parsed.name),
                &parsed.id,
                ErrorCode::UnknownService,
                started,
            );
            let message = format!("unknown service {:?}", parsed.name);
            return Dispatched::Ready(Completed {
                enc: parsed.enc,
                shape: parsed.shape,
                id: parsed.id,
                service: Some(Arc::from(&*parsed.name)),
                result: Err(ServiceError::new(ErrorCode::UnknownService, message)),
            });
        };
        let entry = entry.clone();
        let cx = cx.clone();
        let (enc, shape, id) = (parsed.enc, parsed.shape, parsed.id);
        let request = Request {
            id: id.clone(),
            service: entry.name.clone(),
            shape,
            data: parsed.data,
        };
        let mut fut = async move {
            let result = entry.service.call(request, &cx).await;
            entry.record(&id, &result, started);
            Completed {
                enc,
                shape,
                id,
                service: Some(entry.name.clone()),
                result,
            }
        }
        .boxed();
        // One poll with a no-op waker: services that need no I/O finish here.
        // A pending future is polled again (with the connection's waker) as
        // soon as the caller pushes it into its set of requests in flight.
        match fut
            .as_mut()
            .poll(&mut Context::from_waker(futures::task::noop_waker_ref()))
        {
            Poll::Ready(c) => Dispatched::Ready(c),
            Poll::Pending => Dispatched::Pending(fut),
        }
    }

    /// The reply to a frame announced `len` bytes long, over the limit.
    pub(crate) fn too_large(&self, len: usize, enc: Encoding, started: Instant) -> Completed {
        self.stats.count_request();
        self.record_error(None, &RequestId::NULL, ErrorCode::FrameTooLarge, started);
        Completed {
            enc,
            shape: Shape::Native,
            id: RequestId::NULL,
            service: None,
            result: Err(ServiceError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame of {len} bytes exceeds the limit of {} bytes",
                    self.settings.max_frame_bytes
                ),
            )),
        }
    }

    /// Appends the reply body for `c` to `out`. A reply that cannot be
    /// encoded, or whose data would exceed `max_frame_bytes`, is replaced by
    /// an INTERNAL error. Error replies are not limited (they are small, and
    /// must go out even under a tiny limit). Returns false if not even the
    /// fallback could be encoded (`out` unchanged).
    pub(crate) fn encode(&self, c: &Completed, out: &mut BytesMut) -> bool {
        let start = out.len();
        let outcome = match &c.result {
            Ok(v) => Ok(v),
            Err(e) => Err(ErrorReply {
                code: e.code,
                message: e.message.as_str(),
                data: e.data(),
            }),
        };
        let service = c.service.as_deref();
        let problem = match envelope::write_reply(out, c.enc, c.shape, &c.id, service, outcome) {
            Err(e) => Some(e.to_string()),
            Ok(()) if c.result.is_ok() && out.len() - start > self.settings.max_frame_bytes => {
                let size = out.len() - start;
                out.truncate(start);
                Some(format!("reply of {size} bytes exceeds the frame limit"))
            }
            Ok(()) => None,
        };
        let Some(problem) = problem else {
            return true;
        };
        tracing::warn!(id = ?c.id, service, %problem, "replacing an unsendable reply");
        let fallback = ErrorReply::new(ErrorCode::Internal, problem.as_str());
        envelope::write_reply(out, c.enc, c.shape, &c.id, service, Err(fallback)).is_ok()
    }

    /// Handles one body to completion (for message transports that handle
    /// each message in a task of its own).
    pub(crate) async fn handle_body(&self, body: &Bytes, cx: &Arc<CallContext>) -> Option<Bytes> {
        let c = match self.dispatch(body, cx, Instant::now()) {
            Dispatched::Ready(c) => c,
            Dispatched::Pending(f) => f.await,
        };
        let mut out = BytesMut::new();
        self.encode(&c, &mut out).then(|| out.freeze())
    }
}
