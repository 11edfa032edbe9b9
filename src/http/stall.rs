//! The write-stall timeout: a connection's byte stream that fails its
//! writes once the peer has taken nothing for `[http]
//! write_stall_timeout_ms`.
//!
//! A peer that stops reading leaves the node's writes pending for ever
//! (the socket's buffer is full): hyper waits, an upgraded WebSocket
//! waits, and the connection keeps its place under `max_connections`.
//! [`StallGuard`] wraps the stream under hyper (an upgraded WebSocket keeps
//! it): while writes make progress it costs a branch; when a write or
//! flush has to wait, it notes since when and arms one timer for the
//! deadline, and a write still waiting then fails with
//! [`std::io::ErrorKind::TimedOut`], which ends the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `io` whose writes fail once they have waited `limit` (see the module
/// docs); `None`: never.
pub(crate) struct StallGuard<I> {
    io: I,
    limit: Option<Duration>,
    /// Since when writes have been waiting (none while they progress).
    since: Option<Instant>,
    /// Armed the first time a write waits, reset for later stalls.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<I> StallGuard<I> {
    pub(crate) fn new(io: I, limit: Option<Duration>) -> Self {
        StallGuard {
            io,
            limit,
            since: None,
            timer: None,
        }
    }

    /// The stream underneath.
    pub(crate) fn get_ref(&self) -> &I {
        &self.io
    }

    /// A write had to wait: `Pending` (the timer will wake the task at the
    /// deadline), or the error once the deadline has passed.
    fn waiting(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        let now = Instant::now();
        let deadline = *self.since.get_or_insert(now) + limit;
        if now < deadline {
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        tracing::debug!(?limit, "peer stopped reading; cutting the connection");
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer took nothing for the write-stall timeout",
        ))
    }

    fn check<T>(
        &mut self,
        polled: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.waiting(cx).map(Err),
            done => {
                self.since = None;
                done
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for StallGuard<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for StallGuard<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.check(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.check(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.check(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.check(polled, cx)
    }
}

/// True when `e` (or one of its sources) is the write-stall timeout's error
/// (or another timeout): a normal end of a connection, not a failure.
pub(crate) fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        // A pipe of 64 bytes that nobody reads.
        let (a, _b) = tokio::io::duplex(64);
        let mut w = StallGuard::new(a, Some(Duration::from_millis(100)));
        let err = tokio::time::timeout(Duration::from_secs(10), w.write_all(&[0u8; 1024]))
            .await
            .expect("the write ended")
            .expect_err("a stalled write fails");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(is_timeout(&err));
    }

    #[tokio::test]
    async fn writes_that_progress_do_not_fail() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut w = StallGuard::new(a, Some(Duration::from_millis(200)));
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            // Slow but steady: each read within the limit.
            let mut buf = [0u8; 64];
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match tokio::io::AsyncReadExt::read(&mut b, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.extend_from_slice(&buf[..n]),
                }
            }
            sink.len()
        });
        w.write_all(&[1u8; 2048]).await.expect("written");
        w.shutdown().await.expect("shut down");
        drop(w);
        assert_eq!(reader.await.expect("joined"), 2048);
    }
}
