//! The web chat page, served at `/chat/`: `index.html`, `chat.js` and
//! `chat.css` from the crate's `web/` directory, built into the binary.
//!
//! Built in rather than served from the docroot, so that `corral serve`
//! shows the page with the embedded default config from any working
//! directory, whatever the docroot is, and the docroot stays the user's. The
//! page talks to the node over the `/ws` endpoint (see
//! [`websocket_handler`](super::websocket_handler)).

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};

use super::routes::{empty, full, Body, Handler};

const INDEX: &str = include_str!("../../web/index.html");
const SCRIPT: &str = include_str!("../../web/chat.js");
const STYLE: &str = include_str!("../../web/chat.css");

/// A route handler for `/chat` serving the chat page's files.
pub fn chat_page_handler() -> impl Handler {
    ChatPage
}

struct ChatPage;

fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[async_trait::async_trait]
impl Handler for ChatPage {
    async fn call(&self, req: Request<Body>) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        let resp = if req.method() != Method::GET && !head {
            let mut r = status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        } else {
            let file = match req.uri().path() {
                "/chat" => None,
                "/chat/" | "/chat/index.html" => Some((INDEX, "text/html; charset=utf-8")),
                "/chat/chat.js" => Some((SCRIPT, "text/javascript; charset=utf-8")),
                "/chat/chat.css" => Some((STYLE, "text/css; charset=utf-8")),
                _ => Some(("", "")),
            };
            match file {
                None => {
                    let mut r = Response::new(empty());
                    *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
                    r.headers_mut()
                        .insert(LOCATION, HeaderValue::from_static("/chat/"));
                    r
                }
                Some(("", _)) => status(StatusCode::NOT_FOUND, "not found\n"),
                Some((text, mime)) => {
                    let mut r = Response::new(if head { empty() } else { full(text) });
                    let h = r.headers_mut();
                    h.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
                    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                    h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(text.len()));
                    r
                }
            }
        };
        resp
    }
}
