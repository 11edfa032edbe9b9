//! The HTTP protocol's settings: the `[http]` section.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[http]`: the HTTP protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Time allowed to read a request's headers, in ms (a slowloris client
    /// is cut off after it). Default 10000. On HTTP/1 it also bounds the
    /// wait for the next request on a kept-alive connection. Checked by
    /// one watcher per connection, whose tick is a quarter of the shorter
    /// of this and `idle_timeout_ms`: a client is cut off at most a tick
    /// after the limit.
    pub header_read_timeout_ms: u64,
    /// Close a keep-alive connection on which no request has started for
    /// this long, in ms (at most a tick later); 0 = never. Default 60000.
    pub idle_timeout_ms: u64,
    /// Largest request head accepted, in bytes (larger: 431). Default 16384.
    pub max_header_bytes: usize,
    /// Longest request target (path and query) accepted, in bytes (longer:
    /// 414). Default 8192.
    pub max_uri_bytes: usize,
    /// Largest request body accepted, in bytes (larger: 413). Default 1048576.
    pub max_body_bytes: u64,
    /// Most requests served on one HTTP/1.1 connection; the last response
    /// says `Connection: close`. 0 = no limit. Default 1000.
    pub max_requests_per_connection: u64,
    /// Cut a connection (HTTP/1, HTTP/2 or an upgraded WebSocket) whose peer
    /// has not taken any of what the node writes for this long, in ms: a
    /// client that stops reading does not hold its connection (and its
    /// place under `max_connections`) for ever. 0 = never. Default 30000.
    pub write_stall_timeout_ms: u64,
    /// Once a connection starts closing (the idle timeout, or the
    /// listener's drain), how long it has to finish, in ms, before it is cut:
    /// the requests in progress and an HTTP/2 peer's answer to the GOAWAY.
    /// Must be at least 1. Default 10000.
    pub close_grace_ms: u64,
    /// Ping an HTTP/2 connection or a WebSocket after this long without a
    /// frame from the peer, in ms; 0 = never ping. Default 30000.
    pub keep_alive_interval_ms: u64,
    /// Close an HTTP/2 connection or a WebSocket whose peer has not
    /// answered a ping (nor sent anything else) within this long, in ms.
    /// Must be at least 1. Default 20000.
    pub keep_alive_timeout_ms: u64,
    /// Hibernate an HTTP/1 keep-alive connection (plain TCP) on which no
    /// request has been in progress for this long, in ms: hyper's state and
    /// buffers (some 25 KiB) are dropped and the connection waits for its
    /// next bytes holding none, as Erlang's `hibernate_after`. The next
    /// request is served as usual (what had arrived of it is kept); the
    /// header read and idle timeouts run on through it. 0 = never; else at
    /// least 10. Default 1000. TLS and HTTP/2 connections do not hibernate.
    pub hibernate_after_ms: u64,
    /// Directory of the static files; a missing directory serves 404s.
    /// Default `"./public"`.
    pub docroot: PathBuf,
    /// Deprecated: give the listener `transport = "tls"` and its own
    /// `tls_cert` / `tls_key` instead. Still honoured: with `tls_key`, every
    /// HTTP listener on transport `tcp` is served as `tls` with these files
    /// (ALPN h2 and http/1.1). Default: none.
    pub tls_cert: Option<PathBuf>,
    /// Deprecated, with [`HttpSettings::tls_cert`]: PEM file of the TLS
    /// private key. Default: none.
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_header_bytes: 16_384,
            max_uri_bytes: 8_192,
            max_body_bytes: 1 << 20,
            max_requests_per_connection: 1_000,
            write_stall_timeout_ms: 30_000,
            close_grace_ms: 10_000,
            keep_alive_interval_ms: 30_000,
            keep_alive_timeout_ms: 20_000,
            hibernate_after_ms: 1_000,
            docroot: PathBuf::from("./public"),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl HttpSettings {
    /// Checks the values that types alone cannot; on failure, the key
    /// (relative to the section) and what is wrong with it.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, message: &str) -> Result<(), (String, String)> {
            Err((key.to_string(), message.to_string()))
        }
        if self.header_read_timeout_ms == 0 {
            return bad("header_read_timeout_ms", "must be at least 1");
        }
        if self.close_grace_ms == 0 {
            return bad("close_grace_ms", "must be at least 1");
        }
        if self.keep_alive_timeout_ms == 0 {
            return bad("keep_alive_timeout_ms", "must be at least 1");
        }
        if self.hibernate_after_ms != 0 && self.hibernate_after_ms < 10 {
            return bad("hibernate_after_ms", "must be 0 (never) or at least 10");
        }
        if self.max_header_bytes < 256 {
            return bad("max_header_bytes", "must be at least 256");
        }
        if self.max_uri_bytes < 16 {
            return bad("max_uri_bytes", "must be at least 16");
        }
        if self.docroot.as_os_str().is_empty() {
            return bad("docroot", "must not be empty");
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return bad("tls_key", "must be set with http.tls_cert"),
            (None, Some(_)) => return bad("tls_cert", "must be set with http.tls_key"),
            _ => {}
        }
        Ok(())
    }

    /// [`HttpSettings::header_read_timeout_ms`] as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The idle timeout, or `None` when it is 0 (never).
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_ms > 0).then(|| Duration::from_millis(self.idle_timeout_ms))
    }

    /// The write-stall timeout, or `None` when it is 0 (never).
    pub fn write_stall_timeout(&self) -> Option<Duration> {
        (self.write_stall_timeout_ms > 0)
            .then(|| Duration::from_millis(self.write_stall_timeout_ms))
    }

    /// [`HttpSettings::close_grace_ms`] as a duration.
    pub fn close_grace(&self) -> Duration {
        Duration::from_millis(self.close_grace_ms)
    }

    /// The keep-alive ping interval, or `None` when it is 0 (never).
    pub fn keep_alive_interval(&self) -> Option<Duration> {
        (self.keep_alive_interval_ms > 0)
            .then(|| Duration::from_millis(self.keep_alive_interval_ms))
    }

    /// How long an HTTP/1 connection may go without a request before it
    /// hibernates, or `None` when it is 0 (never).
    pub fn hibernate_after(&self) -> Option<Duration> {
        (self.hibernate_after_ms > 0).then(|| Duration::from_millis(self.hibernate_after_ms))
    }

    /// [`HttpSettings::keep_alive_timeout_ms`] as a duration.
    pub fn keep_alive_timeout(&self) -> Duration {
        Duration::from_millis(self.keep_alive_timeout_ms)
    }
}
