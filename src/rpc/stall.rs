//! The write-stall timeout: a peer that reads nothing of what the
//! connection writes for `write_stall_timeout_ms` is cut.
//!
//! [`StallTimer`] is armed when a write cannot proceed (the socket's send
//! buffer is full) and disarmed by any progress; a write still blocked when
//! it fires fails with [`Stalled`]. [`StallGuard`] applies it to a byte
//! stream (progress = any byte written), [`StallSink`] to a sink of whole
//! messages (progress = a message sent).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Sink;
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

/// The error a stalled write fails with (inside an [`io::Error`] of kind
/// `TimedOut`).
#[derive(Debug, thiserror::Error)]
#[error("no write progress for {0:?}")]
pub(crate) struct Stalled(pub(crate) Duration);

impl Stalled {
    /// The stall in `e`, if `e` is one.
    pub(crate) fn find(e: &io::Error) -> Option<Duration> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<Stalled>())
            .map(|s| s.0)
    }
}

/// Armed while writes are blocked; fires `timeout` after the first blocked
/// write with no progress since.
///
/// Its sleep is made the first time a write blocks: a connection whose
/// writes never wait has no timer.
#[derive(Debug)]
pub(crate) struct StallTimer {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl StallTimer {
    pub(crate) fn new(timeout: Duration) -> Self {
        StallTimer {
            timeout,
            sleep: None,
            armed: false,
        }
    }

    /// Counts progress made inside a write that is still blocked (part of
    /// a batch went): the timer starts again from the next blocked poll.
    #[cfg_attr(not(feature = "sctp"), allow(dead_code))]
    fn progressed(&mut self) {
        self.armed = false;
    }

    /// Passes on the outcome of a write `r`: progress (ready) disarms the
    /// timer; a blocked write arms it, or fails once it has fired.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.armed = false;
            return r;
        }
        if !self.armed {
            self.armed = true;
            let deadline = Instant::now() + self.timeout;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                Stalled(self.timeout),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A writer whose writes fail once no byte could be written for the
/// timeout.
#[derive(Debug)]
pub(crate) struct StallGuard<W> {
    io: W,
    timer: StallTimer,
}

impl<W> StallGuard<W> {
    pub(crate) fn new(io: W, timeout: Duration) -> Self {
        StallGuard {
            io,
            timer: StallTimer::new(timeout),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for StallGuard<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.timer.watch(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.timer.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.timer.watch(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        this.timer.watch(cx, r)
    }
}

/// A sink that counts the messages it has sent, so that a flush blocked
/// after sending part of its queue counts as progress.
#[cfg_attr(not(feature = "sctp"), allow(dead_code))]
pub(crate) trait SentCount {
    /// Messages sent so far.
    fn sent(&self) -> u64;
}

#[cfg(feature = "sctp")]
impl SentCount for crate::transport::sctp::MessageSink {
    fn sent(&self) -> u64 {
        crate::transport::sctp::MessageSink::sent(self)
    }
}

/// A sink of messages whose sends fail once no message could be sent for
/// the timeout.
#[cfg_attr(not(feature = "sctp"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct StallSink<S> {
    sink: S,
    timer: StallTimer,
}

#[cfg_attr(not(feature = "sctp"), allow(dead_code))]
impl<S> StallSink<S> {
    pub(crate) fn new(sink: S, timeout: Duration) -> Self {
        StallSink {
            sink,
            timer: StallTimer::new(timeout),
        }
    }
}

impl<S: SentCount> StallSink<S> {
    /// Polls `f` on the sink, watching for progress.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        let before = self.sink.sent();
        let r = f(Pin::new(&mut self.sink), cx);
        if r.is_pending() && self.sink.sent() != before {
            self.timer.progressed();
        }
        self.timer.watch(cx, r)
    }
}

impl<S, I> Sink<I> for StallSink<S>
where
    S: Sink<I, Error = io::Error> + SentCount + Unpin,
{
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().watch(cx, |s, cx| s.poll_ready(cx))
    }

    fn start_send(self: Pin<&mut Self>, item: I) -> io::Result<()> {
        Pin::new(&mut self.get_mut().sink).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().watch(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().watch(cx, |s, cx| s.poll_close(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_writer_nobody_reads_fails_and_progress_rearms() {
        let (a, mut b) = tokio::io::duplex(16);
        let mut w = StallGuard::new(a, Duration::from_millis(50));
        // Fills the pipe, then stalls.
        let r = w.write_all(&[0u8; 64]).await;
        assert_eq!(
            r.map_err(|e| Stalled::find(&e)),
            Err(Some(Duration::from_millis(50)))
        );
        // A reader makes progress possible again.
        let mut w = StallGuard::new(w.io, Duration::from_millis(50));
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut b, &mut all).await;
            all.len()
        });
        assert!(w.write_all(&[1u8; 4096]).await.is_ok());
        drop(w);
        assert!(reader.await.unwrap_or(0) >= 4096);
    }
}
