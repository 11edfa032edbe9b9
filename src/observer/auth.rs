//! Who may act: `[observer] admin` on, then the admin token (constant-time
//! compare) or, with `trust_loopback`, a loopback client that names a
//! loopback host; never a request a browser marks as cross-site.

use super::ObserverSettings;
use crate::http::PeerAddr;
use hyper::header::{AUTHORIZATION, HOST, ORIGIN};
use hyper::Request;
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// Who was let act, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    /// The admin token.
    Token,
    /// A loopback client (`trust_loopback`).
    Loopback,
}

impl Who {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Who::Token => "token",
            Who::Loopback => "loopback",
        }
    }
}

/// The host a request names (its authority, else its `Host` header),
/// without the port.
fn host_of<B>(req: &Request<B>) -> Option<String> {
    if let Some(h) = req.uri().host() {
        return Some(h.trim_start_matches('[').trim_end_matches(']').to_string());
    }
    let value = req.headers().get(HOST)?.to_str().ok()?;
    let authority: hyper::http::uri::Authority = value.parse().ok()?;
    Some(
        authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a browser says the request comes from another site: a
/// `Sec-Fetch-Site` other than same-origin (or none: typed by the user), or
/// an `Origin` whose host and port are not the request's own.
fn cross_site<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return true;
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return true;
    };
    let own = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let theirs = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (theirs, own) {
        (Some(theirs), Some(own)) => !theirs.eq_ignore_ascii_case(&own),
        _ => true,
    }
}

/// The bearer token of `Authorization`, if the request carries one.
fn bearer<B>(req: &Request<B>) -> Option<&[u8]> {
    let value = req.headers().get(AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| value[7..].trim_ascii())
}

/// Lets the request act, or says why not (the answer is 403).
pub(crate) fn authorize<B>(req: &Request<B>, s: &ObserverSettings) -> Result<Who, &'static str> {
    if !s.admin {
        return Err("observer actions are off ([observer] admin = false)\n");
    }
    if cross_site(req) {
        return Err("a cross-site request may not act\n");
    }
    if let Some(given) = bearer(req) {
        let expected = s.token.as_bytes();
        // Lengths are compared first (a length is no secret worth the
        // trouble); equal lengths in constant time.
        if !expected.is_empty() && bool::from(given.ct_eq(expected)) {
            return Ok(Who::Token);
        }
        return Err("wrong admin token\n");
    }
    let local = req
        .extensions()
        .get::<PeerAddr>()
        .is_some_and(|PeerAddr(a)| a.ip().is_loopback());
    if s.trust_loopback && local && host_of(req).is_some_and(|h| is_loopback_host(&h)) {
        return Ok(Who::Loopback);
    }
    Err("an action needs the admin token (Authorization: Bearer <token>)\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ObserverSettings {
        ObserverSettings {
            admin: true,
            token: "0123456789abcdef".into(),
            trust_loopback: true,
            ..Default::default()
        }
    }

    fn req(host: &str, peer: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::post("/observer/api/listener/suspend").header(HOST, host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
        r
    }

    #[test]
    fn loopback_needs_a_loopback_host() {
        let s = settings();
        let ok = req("127.0.0.1:8080", "127.0.0.1:5000", &[]);
        assert_eq!(authorize(&ok, &s), Ok(Who::Loopback));
        let ok6 = req("[::1]:8080", "[::1]:5000", &[]);
        assert_eq!(authorize(&ok6, &s), Ok(Who::Loopback));
        // DNS rebinding: a loopback peer naming another host.
        let rebound = req("evil.example:8080", "127.0.0.1:5000", &[]);
        assert!(authorize(&rebound, &s).is_err());
        let remote = req("127.0.0.1:8080", "10.0.0.1:5000", &[]);
        assert!(authorize(&remote, &s).is_err());
    }

    #[test]
    fn tokens_and_cross_site() {
        let s = settings();
        let good = [("authorization", "Bearer 0123456789abcdef")];
        assert_eq!(
            authorize(&req("h:1", "10.0.0.1:5", &good), &s),
            Ok(Who::Token)
        );
        let wrong = [("authorization", "Bearer 0123456789abcdeX")];
        assert!(authorize(&req("127.0.0.1:1", "127.0.0.1:5", &wrong), &s).is_err());
        let short = [("authorization", "Bearer 0123")];
        assert!(authorize(&req("h:1", "10.0.0.1:5", &short), &s).is_err());
        let cross = [
            ("authorization", "Bearer 0123456789abcdef"),
            ("origin", "http://evil.example"),
        ];
        assert!(authorize(&req("h:1", "10.0.0.1:5", &cross), &s).is_err());
        let same = [
            ("authorization", "Bearer 0123456789abcdef"),
            ("origin", "http://h:1"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(
            authorize(&req("h:1", "10.0.0.1:5", &same), &s),
            Ok(Who::Token)
        );
        let fetch = [("sec-fetch-site", "cross-site")];
        assert!(authorize(&req("127.0.0.1:1", "127.0.0.1:5", &fetch), &s).is_err());
        let off = ObserverSettings {
            admin: false,
            ..settings()
        };
        assert!(authorize(&req("h:1", "10.0.0.1:5", &good), &off).is_err());
    }
}
