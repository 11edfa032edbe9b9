//! Hibernation of idle HTTP/1 keep-alive connections, as Erlang's
//! `hibernate_after`: a connection on which no request has been in progress
//! for `[http] hibernate_after_ms` ends its hyper connection without closing
//! the socket, drops all that hyper allocated (its read and write buffers,
//! its cached header map, the connection's state), and waits for the socket
//! to become readable holding no buffer. What arrives is gathered (with
//! what hyper had read and not yet parsed: part of a head, pipelined
//! requests) until it holds a whole request head, or bytes hyper would
//! refuse; then a fresh hyper connection serves it, replaying those bytes
//! first, so no byte is lost. (hyper is started on a whole head only: a
//! fresh hyper connection holding part of a head cannot be ended without
//! closing the socket, an idle one that has served a request can.) A
//! connection gathers its first head the same way, before hyper starts.
//!
//! What runs on through a hibernation: the idle timeout (its clock is the
//! connection's [`Watch`], not hyper's), the header read timeout (the
//! deadline of the head hyper waited for closes a hibernated connection,
//! and the next hyper connection's first head keeps it: see
//! [`HeadTimer`]), the drain, the write-stall guard, the request count
//! (`max_requests_per_connection`).
//!
//! Only plain TCP connections that speak HTTP/1 hibernate: first bytes that
//! are HTTP/2's preface (h2c with prior knowledge) are served by hyper's
//! HTTP/2 connection, which never hibernates; TLS streams keep rustls's
//! state under hyper and are served as before.

use super::deadline::{self, Activity, Event, HeadTimer, Watch};
use super::own_wake::OnOwnWake;
use super::sendfile::SendfileStream;
use super::server::Inner;
use super::stall::StallGuard;
use super::ws;
use crate::listener::ProtocolError;
use bytes::{Buf, Bytes};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The byte stream under hyper: the socket (behind the write-stall guard),
/// after the bytes to replay first.
pub(super) struct Session {
    io: StallGuard<SendfileStream>,
    /// Read before the socket: bytes read already (while hibernated, or by
    /// the hyper connection before a hibernation) and not yet served.
    replay: Bytes,
    /// Set while hyper is being ended for a hibernation: its shutdown of
    /// the stream is then skipped (the socket stays open).
    parking: Arc<AtomicBool>,
}

/// What the bytes gathered while hibernated (or before the first request)
/// call for.
#[derive(Debug, PartialEq, Eq)]
enum Gathered {
    /// More bytes: not a whole head yet.
    More,
    /// A whole HTTP/1 head, or bytes hyper will refuse (too many, not
    /// HTTP): hyper serves them.
    Http1,
    /// HTTP/2's preface (at the start of a connection only).
    Http2,
}

/// What `bytes` (gathered since the last request, `first`: since the
/// connection opened) call for. hyper is started only on a whole head (or
/// bytes it refuses): a fresh hyper connection that holds part of a head
/// cannot be ended without closing the socket, an idle one can.
fn gathered(bytes: &[u8], first: bool, limit: usize) -> Gathered {
    if bytes.is_empty() {
        return Gathered::More;
    }
    if first && bytes.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(bytes) {
        return Gathered::More;
    }
    if first && bytes.starts_with(H2_PREFACE) {
        return Gathered::Http2;
    }
    if bytes.len() >= limit {
        return Gathered::Http1;
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    match httparse::Request::new(&mut headers).parse(bytes) {
        Ok(httparse::Status::Partial) => Gathered::More,
        // Whole, or refused: hyper says which, as without hibernation.
        Ok(httparse::Status::Complete(_)) | Err(_) => Gathered::Http1,
    }
}

/// Reads what the socket has (without waiting) onto `gathered`: the count
/// read, 0 at the end of the stream. Its buffer lives on the stack of this
/// call only, never in the connection's future.
fn read_some(tcp: &tokio::net::TcpStream, gathered: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    let n = tcp.try_read(&mut chunk)?;
    gathered.extend_from_slice(&chunk[..n]);
    Ok(n)
}

impl AsyncRead for Session {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            if this.replay.is_empty() {
                // Free it now (it may share a larger allocation).
                this.replay = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Session {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.parking.load(Ordering::Relaxed) {
            // Hibernating: hyper ends, the socket stays open.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How a hyper connection's turn ended.
enum Turn {
    /// The connection is done (closed, upgraded, failed, or cut).
    Done(Result<(), ProtocolError>),
    /// Hibernate it.
    Hibernate,
}

/// How gathering bytes while hibernated ended.
enum Woken {
    /// Serve what was gathered (see [`Gathered`]).
    Serve(Gathered),
    /// The connection is done (the peer closed, the drain, a deadline).
    Done(Result<(), ProtocolError>),
}

impl Inner {
    /// Serves a plain TCP connection (see the module docs): HTTP/2 as
    /// before; HTTP/1 in turns of a hyper connection each, hibernating
    /// between them after `hibernate_after` without a request.
    pub(super) async fn serve_hibernating(
        self: Arc<Self>,
        stream: SendfileStream,
        draining: CancellationToken,
        peer: Option<SocketAddr>,
        hibernate_after: Duration,
    ) -> Result<(), ProtocolError> {
        let activity = Arc::new(Activity::default());
        let upgrades = ws::Upgrades::new(self.keep_alive);
        let mut service = self.service(&activity, &upgrades, peer);
        let tick = deadline::tick(self.header_read_timeout, self.idle_timeout);
        let mut watch = Watch::new(
            tick,
            self.header_read_timeout,
            self.idle_timeout,
            Some(hibernate_after),
            &activity,
        );
        let drained = pin!(draining.cancelled());
        let mut drained = OnOwnWake::new(drained);
        let parking = Arc::new(AtomicBool::new(false));
        let limit = self.max_header_bytes.max(8192);
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.timer(HeadTimer::noting(activity.clone()))
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(limit)
            .keep_alive(true);

        // The connection starts as a hibernated one would: it gathers the
        // first head before hyper is started (the watch's first-request
        // deadline bounds that).
        let mut io = StallGuard::new(stream, self.write_stall);
        let mut bytes = Vec::new();
        let mut first = true;
        // The first head's deadline counts from the connection's opening.
        let mut head = Some(std::time::Instant::now() + self.header_read_timeout);
        watch.asleep(None);
        let served = loop {
            let what = {
                let watcher = pin!(watch.next());
                let watcher = OnOwnWake::new(watcher);
                gather(&io, &mut bytes, first, limit, &mut drained, watcher).await
            };
            let replay = Bytes::from(std::mem::take(&mut bytes));
            let session = Session {
                io,
                replay,
                parking: parking.clone(),
            };
            match what {
                Woken::Done(r) => break r,
                Woken::Serve(Gathered::Http2) => {
                    break self
                        .serve_h2(session, service, &mut drained, &mut watch)
                        .await
                }
                Woken::Serve(_) => {}
            }
            first = false;
            activity.carry_head(head);
            watch.awake();
            // Boxed: while hibernated, the connection's future holds none
            // of hyper's state.
            let mut conn = Box::new(
                h1.serve_connection(TokioIo::new(session), service)
                    .with_upgrades(),
            );
            let turn = {
                let watcher = pin!(watch.next());
                let watcher = OnOwnWake::new(watcher);
                tokio::select! {
                    r = &mut *conn => Turn::Done(r.map_err(Into::into)),
                    _ = &mut drained => {
                        Pin::new(&mut *conn).graceful_shutdown();
                        Turn::Done(self.within_grace(&mut *conn).await.map_err(Into::into))
                    }
                    event = watcher => match event {
                        Event::Hibernate => Turn::Hibernate,
                        Event::Close => {
                            Pin::new(&mut *conn).graceful_shutdown();
                            Turn::Done(self.within_grace(&mut *conn).await.map_err(Into::into))
                        }
                    },
                }
            };
            if let Turn::Done(r) = turn {
                break r;
            }
            // End hyper's connection: idle (it has served a request and
            // waits for the next), so at once, the socket left open.
            parking.store(true, Ordering::Relaxed);
            Pin::new(&mut *conn).graceful_shutdown();
            let ended = tokio::time::timeout(self.close_grace, &mut *conn).await;
            parking.store(false, Ordering::Relaxed);
            match ended {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break Err(e.into()),
                Err(_) => {
                    tracing::debug!(grace = ?self.close_grace, "HTTP connection cut after its close grace");
                    break Ok(());
                }
            }
            // Upgraded meanwhile: served by its own task.
            let Some(parts) = conn.into_parts() else {
                break Ok(());
            };
            // What hyper read and did not serve (part of the next head),
            // copied: hyper's read buffer goes.
            let session = parts.io.into_inner();
            bytes = Vec::with_capacity(parts.read_buf.len() + session.replay.len());
            bytes.extend_from_slice(&parts.read_buf);
            bytes.extend_from_slice(&session.replay);
            io = session.io;
            service = parts.service;
            head = activity.head_deadline();
            watch.asleep(head);
            self.metrics.http_hibernations.inc();
            tracing::trace!("HTTP connection hibernates");
        };
        upgrades.finish(&draining).await;
        Inner::ended(served)
    }

    /// Serves an HTTP/2 connection (h2c with prior knowledge) until it
    /// ends, closes or drains.
    async fn serve_h2<S>(
        &self,
        session: Session,
        service: S,
        drained: &mut (impl std::future::Future<Output = ()> + Unpin),
        watch: &mut Watch<'_>,
    ) -> Result<(), ProtocolError>
    where
        S: hyper::service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = hyper::Response<deadline::TrackedBody>,
                Error = std::convert::Infallible,
                Future = super::server::Answer,
            > + Clone
            + Send
            + 'static,
    {
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(self.keep_alive.interval)
            .keep_alive_timeout(self.keep_alive.timeout);
        let mut conn = Box::pin(h2.serve_connection(TokioIo::new(session), service));
        let watcher = pin!(watch.next());
        let watcher = OnOwnWake::new(watcher);
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
        served.map_err(Into::into)
    }
}

/// Gathers bytes onto `bytes` while the connection holds no hyper state,
/// waiting for the socket to be readable, until they call for serving (see
/// [`gathered`]); or until the peer closes, the drain, or `watcher` (the
/// idle timeout, the head's deadline) ends the connection.
async fn gather(
    io: &StallGuard<SendfileStream>,
    bytes: &mut Vec<u8>,
    first: bool,
    limit: usize,
    drained: &mut (impl std::future::Future<Output = ()> + Unpin),
    mut watcher: impl std::future::Future<Output = Event> + Unpin,
) -> Woken {
    let tcp = io.get_ref().tcp();
    loop {
        match gathered(bytes, first, limit) {
            Gathered::More => {}
            serve => return Woken::Serve(serve),
        }
        tokio::select! {
            r = tcp.readable() => {
                if let Err(e) = r {
                    return Woken::Done(Err(e.into()));
                }
            }
            _ = &mut *drained => return Woken::Done(Ok(())),
            // Only Close while hibernated.
            _ = &mut watcher => return Woken::Done(Ok(())),
        }
        match read_some(tcp, bytes) {
            // The peer closed: hyper sees the rest (if any) and the end.
            Ok(0) if bytes.is_empty() => return Woken::Done(Ok(())),
            Ok(0) => return Woken::Serve(Gathered::Http1),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Woken::Done(Err(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_is_started_on_a_whole_head_or_what_it_refuses() {
        let limit = 8192;
        let whole = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(gathered(whole, false, limit), Gathered::Http1);
        assert_eq!(
            gathered(b"GET / HTTP/1.1\nHost: x\n\n", false, limit),
            Gathered::Http1
        );
        assert_eq!(
            gathered(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n", false, limit),
            Gathered::More
        );
        assert_eq!(
            gathered(b"GET / HTTP/1.1\r\nHost: x\r\n\r", false, limit),
            Gathered::More
        );
        assert_eq!(gathered(b"", true, limit), Gathered::More);
        // Garbage: hyper answers it (400), as without hibernation.
        assert_eq!(
            gathered(b"\x00\x01 nonsense", false, limit),
            Gathered::Http1
        );
        // Too long to be a head hyper accepts: hyper refuses it.
        let long = [b'a'; 9000];
        assert_eq!(gathered(&long, false, limit), Gathered::Http1);
        // HTTP/2's preface, at the start of a connection only.
        assert_eq!(gathered(&H2_PREFACE[..10], true, limit), Gathered::More);
        assert_eq!(gathered(H2_PREFACE, true, limit), Gathered::Http2);
        assert_eq!(gathered(H2_PREFACE, false, limit), Gathered::Http1);
    }
}
