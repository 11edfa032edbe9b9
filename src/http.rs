//! The HTTP protocol on hyper: HTTP/1.1 with keep-alive, and HTTP/2 where
//! TLS negotiates it (ALPN) or a client speaks it from the start, through
//! hyper-util's auto builder. It serves any byte stream its listener hands
//! it: plain TCP, or TLS on a listener with transport `tls` (the listener
//! does the handshake; its rustls configuration offers ALPN `h2` and
//! `http/1.1`).
//!
//! Routes, in order: `/metrics` (Prometheus text format), `/health`,
//! `/health/live`, `/health/ready` (readiness from the listeners' states;
//! `/health` also says `"status": "ok"` or `"degraded"` with the reasons
//! from the node's [`HealthCheck`]s, such as the cluster's),
//! the [`Routes`] a library user adds, then the static files of
//! `[http] docroot` served from the [`FileCache`] (ETag / 304,
//! Last-Modified, Range / 206 / 416, HEAD, gzip with `Vary`, index.html).
//!
//! An HTTP/1 keep-alive connection over plain TCP that has had no request
//! in progress for `[http] hibernate_after_ms` hibernates: hyper's state
//! and buffers are dropped until its next bytes arrive (see
//! `corral_http_hibernations_total`).
//!
//! Limits (from `[http]`): header read timeout (a slowloris client is cut
//! off; a connection on which no request starts within it is closed), idle
//! keep-alive timeout, a write-stall timeout (a peer that stops reading is
//! cut), a close grace (a closing connection is cut after it, whatever the
//! peer does), HTTP/2 keep-alive pings, max requests per connection, max
//! header size (431), max URI length (414), max body size (413). A request
//! target that is not origin or absolute form, and an HTTP/1.1 request
//! without exactly one Host header, get 400. Every response
//! carries `Date` and `Server`; requests are counted by status class with
//! their latency (`corral_http_requests_total`,
//! `corral_http_request_duration_seconds`).
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), corral::node::NodeError> {
//! use corral::config::Config;
//! use corral::http::{full, Body, Routes};
//! use corral::node::Node;
//! use hyper::{Request, Response};
//!
//! let routes = Routes::new().route("/api/hello", |_req: Request<Body>| async {
//!     Response::new(full("hello\n"))
//! });
//! let node = Node::builder(Config::embedded_default()).routes(routes).start().await?;
//! # node.shutdown().await;
//! # Ok(()) }
//! ```

mod cache;
mod chat_page;
mod deadline;
mod files;
mod health;
mod hibernate;
mod own_wake;
mod routes;
mod sendfile;
mod server;
mod settings;
mod spec;
mod stall;
mod ws;

pub use cache::{CacheSettings, FileCache};
pub use chat_page::chat_page_handler;
pub use health::{HealthCheck, HealthReport};
pub use routes::{empty, full, Body, BoxError, Handler, PeerAddr, Routes};
pub use server::HttpProtocol;
pub use settings::HttpSettings;
pub use spec::HttpProtocolBuilder;
pub use ws::websocket_handler;

/// The `Server` header of every answer.
pub(crate) const SERVER_NAME: &str = "corral";
