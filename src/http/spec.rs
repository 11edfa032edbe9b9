//! [`HttpProtocolBuilder`]: what an [`HttpProtocol`] serves and with which limits.

use super::files::StaticFiles;
use super::server::Inner;
use super::{FileCache, HttpProtocol, HttpSettings, Routes};
use crate::listener::ListenerHandle;
use crate::metrics::{status_class, Metrics};
use std::sync::{Arc, OnceLock};

/// Builds an [`HttpProtocol`].
pub struct HttpProtocolBuilder {
    metrics: Arc<Metrics>,
    metrics_enabled: bool,
    listeners: Arc<OnceLock<Vec<ListenerHandle>>>,
    config: HttpSettings,
    routes: Routes,
    files: Option<FileCache>,
    health_checks: Vec<Arc<dyn super::HealthCheck>>,
}

impl std::fmt::Debug for HttpProtocolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProtocolBuilder")
            .finish_non_exhaustive()
    }
}

impl HttpProtocolBuilder {
    /// Serves `/metrics` (default) or answers it 404.
    pub fn metrics_enabled(mut self, enabled: bool) -> Self {
        self.metrics_enabled = enabled;
        self
    }

    /// Reports readiness from the listeners set later in `listeners` (empty
    /// until set: not ready).
    pub fn listeners(mut self, listeners: Arc<OnceLock<Vec<ListenerHandle>>>) -> Self {
        self.listeners = listeners;
        self
    }

    /// Adds these routes after `/metrics` and `/health`.
    pub fn routes(mut self, routes: Routes) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Adds a part of the node that reports into `/health`: its details
    /// under its name, and the node `"degraded"` while it says so.
    pub fn health_check(mut self, check: Arc<dyn super::HealthCheck>) -> Self {
        self.health_checks.push(check);
        self
    }

    /// Serves static files through this cache (last, after every route).
    pub fn files(mut self, cache: FileCache) -> Self {
        self.files = Some(cache);
        self
    }

    /// The protocol.
    pub fn build(self) -> HttpProtocol {
        let c = &self.config;
        let by_class = [100u16, 200, 300, 400, 500]
            .iter()
            .map(|s| {
                let class = status_class(*s);
                (
                    self.metrics.http_requests.with_label_values(&[class]),
                    self.metrics.http_latency.with_label_values(&[class]),
                )
            })
            .collect();
        HttpProtocol {
            inner: Arc::new(Inner {
                by_class,
                metrics: self.metrics,
                metrics_enabled: self.metrics_enabled,
                listeners: self.listeners,
                idle_timeout: c.idle_timeout(),
                header_read_timeout: c.header_read_timeout(),
                max_header_bytes: c.max_header_bytes,
                max_uri_bytes: c.max_uri_bytes,
                max_body_bytes: c.max_body_bytes,
                max_requests: c.max_requests_per_connection,
                write_stall: c.write_stall_timeout(),
                close_grace: c.close_grace(),
                hibernate_after: c.hibernate_after(),
                keep_alive: super::ws::KeepAlive {
                    interval: c.keep_alive_interval(),
                    timeout: c.keep_alive_timeout(),
                },
                routes: self.routes,
                files: self.files.as_ref().map(StaticFiles::new),
                health_checks: self.health_checks,
            }),
        }
    }
}

impl HttpProtocol {
    /// A builder of an HTTP protocol with these limits, exporting
    /// `metrics`; no routes and no static files until added. (TLS is the
    /// listener's, transport `tls`.)
    pub fn builder(metrics: Arc<Metrics>, config: &HttpSettings) -> HttpProtocolBuilder {
        HttpProtocolBuilder {
            metrics,
            metrics_enabled: true,
            listeners: Arc::new(OnceLock::new()),
            config: config.clone(),
            routes: Routes::new(),
            files: None,
            health_checks: Vec::new(),
        }
    }
}
