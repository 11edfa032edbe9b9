//! The observer's HTTP face: the page's files, the JSON API, the live
//! stream and the actions, under `/observer`.

use super::actions::{self, ActionError, ChildAction, ChildTarget, ListenerTarget};
use super::auth;
use super::live::{event, Live};
use super::ObserverSettings;
use crate::http::{empty, full, Body, BoxError, Handler, PeerAddr};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const INDEX: &str = include_str!("../../web/observer/index.html");
const SCRIPT: &str = include_str!("../../web/observer/observer.js");
const STYLE: &str = include_str!("../../web/observer/observer.css");

/// The page's Content-Security-Policy: its own files and its own origin
/// only; no inline script or style, no frames, no plug-ins.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Largest action body read.
const MAX_ACTION_BYTES: usize = 16 * 1024;

/// What `GET /observer/api` answers: the endpoints.
const INDEX_JSON: &str = r#"{
  "tree": "GET /observer/api/tree",
  "listeners": "GET /observer/api/listeners",
  "chat": "GET /observer/api/chat",
  "cluster": "GET /observer/api/cluster",
  "history": "GET /observer/api/history",
  "events": "GET /observer/api/events (text/event-stream: history, frame, restart)",
  "child": "POST /observer/api/child/{terminate,restart,kill} {\"path\": [ids]}",
  "listener": "POST /observer/api/listener/{suspend,resume} {\"listener\": name}"
}
"#;

pub(crate) struct ObserverRoutes {
    pub(crate) live: Arc<Live>,
    pub(crate) settings: ObserverSettings,
    /// Cancelled at the node's shutdown: the live streams end.
    pub(crate) shutdown: CancellationToken,
}

/// A response with the observer's security headers.
fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, message: impl Into<Bytes>) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", full(message.into()))
}

fn json(value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            respond(StatusCode::OK, "application/json", full(bytes))
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// One chunk of a streamed body.
fn data_frame(b: Bytes) -> Result<Frame<Bytes>, BoxError> {
    Ok(Frame::data(b))
}

/// Reads a JSON body of at most [`MAX_ACTION_BYTES`].
async fn read_json<T: DeserializeOwned>(req: Request<Body>) -> Result<T, Response<Body>> {
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is too large or unreadable\n",
        )
    };
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(too_large());
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_ACTION_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| text(StatusCode::BAD_REQUEST, format!("bad request: {e}\n")))
}

impl ObserverRoutes {
    fn file(&self, path: &str, head: bool) -> Option<Response<Body>> {
        let (body, mime) = match path {
            "/observer/" | "/observer/index.html" => (INDEX, "text/html; charset=utf-8"),
            "/observer/observer.js" => (SCRIPT, "text/javascript; charset=utf-8"),
            "/observer/observer.css" => (STYLE, "text/css; charset=utf-8"),
            _ => return None,
        };
        let mut r = respond(
            StatusCode::OK,
            mime,
            if head { empty() } else { full(body) },
        );
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r.headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        Some(r)
    }

    async fn read(&self, what: &str) -> Option<Response<Body>> {
        let live = &self.live;
        let sources = &live.sources;
        let now = || sources.counters();
        Some(match what {
            "" => respond(StatusCode::OK, "application/json", full(INDEX_JSON)),
            "tree" => match sources.tree().await {
                Some(t) => json(&t),
                None => text(StatusCode::SERVICE_UNAVAILABLE, "the tree is not running\n"),
            },
            "listeners" => json(&sources.listeners(&now(), live.last_counters().as_ref())),
            "chat" => json(&sources.chat(&now(), live.last_counters().as_ref())),
            "cluster" => json(&sources.cluster()),
            "history" => json(&live.history()),
            "events" => self.events().await,
            _ => return None,
        })
    }

    /// The live stream: the history and a first frame at once, then every
    /// frame and restart as it comes, until the client goes or the node
    /// shuts down.
    async fn events(&self) -> Response<Body> {
        let Some(watcher) = self.live.subscribe() else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many live streams open ([observer] max_watchers)\n",
            );
        };
        let first = [
            event("history", &self.live.history()),
            self.live.frame(false).await,
        ];
        let shutdown = self.shutdown.clone();
        let rest = futures::stream::unfold((watcher, shutdown), |(mut w, shutdown)| async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    r = w.rx.recv() => r,
                };
                match next {
                    Ok(bytes) => return Some((bytes, (w, shutdown))),
                    // A slow reader skips what it missed; the next frame
                    // has everything.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let stream = futures::stream::iter(first).chain(rest).map(data_frame);
        respond(
            StatusCode::OK,
            "text/event-stream",
            StreamBody::new(stream).boxed_unsync(),
        )
    }

    async fn act(&self, req: Request<Body>, what: &str) -> Option<Response<Body>> {
        enum Target {
            Child(ChildAction),
            Listener(bool),
        }
        let target = match what.split_once('/') {
            Some(("child", a)) => Target::Child(ChildAction::parse(a)?),
            Some(("listener", "suspend")) => Target::Listener(true),
            Some(("listener", "resume")) => Target::Listener(false),
            _ => return None,
        };
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
        let who = match auth::authorize(&req, &self.settings) {
            Ok(who) => who,
            Err(why) => {
                tracing::warn!(
                    target: "corral::observer",
                    action = what,
                    peer = ?peer,
                    reason = why.trim_end(),
                    "observer action refused"
                );
                return Some(text(StatusCode::FORBIDDEN, why));
            }
        };
        let done = match target {
            Target::Child(action) => {
                let body: ChildTarget = match read_json(req).await {
                    Ok(b) => b,
                    Err(r) => return Some(r),
                };
                tracing::info!(
                    target: "corral::observer",
                    action = action.as_str(),
                    path = ?body.path,
                    peer = ?peer,
                    by = who.as_str(),
                    "observer action"
                );
                match self.live.sources.root.get() {
                    Some(root) => actions::on_child(root, &body.path, action).await,
                    None => Err(ActionError::Conflict("the tree is not running".into())),
                }
            }
            Target::Listener(suspend) => {
                let body: ListenerTarget = match read_json(req).await {
                    Ok(b) => b,
                    Err(r) => return Some(r),
                };
                tracing::info!(
                    target: "corral::observer",
                    action = if suspend { "suspend" } else { "resume" },
                    listener = %body.listener,
                    peer = ?peer,
                    by = who.as_str(),
                    "observer action"
                );
                let listeners = self.live.sources.listeners.get().map(Vec::as_slice);
                actions::on_listener(listeners.unwrap_or(&[]), &body.listener, suspend).await
            }
        };
        self.live.poke();
        Some(match done {
            Ok(()) => json(&serde_json::json!({ "ok": true })),
            Err(e) => {
                let status = match e {
                    ActionError::BadRequest(_) => StatusCode::BAD_REQUEST,
                    ActionError::NotFound(_) => StatusCode::NOT_FOUND,
                    ActionError::Conflict(_) => StatusCode::CONFLICT,
                };
                text(status, format!("{e}\n"))
            }
        })
    }
}

#[async_trait::async_trait]
impl Handler for ObserverRoutes {
    async fn call(&self, req: Request<Body>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let head = method == Method::HEAD;
        if path == "/observer" {
            let mut r = respond(StatusCode::PERMANENT_REDIRECT, "text/plain", empty());
            r.headers_mut()
                .insert(LOCATION, HeaderValue::from_static("/observer/"));
            return r;
        }
        if let Some(api) = path.strip_prefix("/observer/api") {
            let api = api.strip_prefix('/').unwrap_or(api);
            let is_action = api.starts_with("child/") || api.starts_with("listener/");
            if is_action {
                if method != Method::POST {
                    return method_not_allowed("POST");
                }
                return match self.act(req, api).await {
                    Some(r) => r,
                    None => text(StatusCode::NOT_FOUND, "no such action\n"),
                };
            }
            if method != Method::GET && !head {
                return method_not_allowed("GET, HEAD");
            }
            return match self.read(api).await {
                Some(r) => r,
                None => text(StatusCode::NOT_FOUND, "not found\n"),
            };
        }
        if method != Method::GET && !head {
            return method_not_allowed("GET, HEAD");
        }
        self.file(&path, head)
            .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n"))
    }
}
