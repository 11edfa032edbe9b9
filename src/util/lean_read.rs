//! [`LeanFramedRead`]: a `FramedRead` whose read buffer exists only while
//! there are bytes to read.
//!
//! `FramedRead` allocates its buffer when it is made (8 KiB) and keeps it for
//! the life of the stream, so an idle connection holds a read buffer it does
//! not use. Here the buffer is released whenever a read finds the socket
//! empty with nothing left in the buffer (between frames), and allocated
//! again, at `capacity`, on the next poll. The buffer is only borrowed by a
//! read that returns `Pending`, never kept, so releasing it then loses
//! nothing; under load a read rarely finds the buffer empty with the socket
//! drained, and then the allocation is the one `FramedRead` makes anyway once
//! the frames it returned still share the old buffer.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::{Decoder, FramedRead};

/// A `FramedRead` that holds no buffer while idle (see the module docs).
#[derive(Debug)]
pub(crate) struct LeanFramedRead<R, D> {
    inner: FramedRead<R, D>,
    capacity: usize,
}

impl<R: AsyncRead, D: Decoder> LeanFramedRead<R, D> {
    /// Frames of `decoder` read from `io`, into a buffer of `capacity`
    /// bytes (more when a frame needs it) that exists only while bytes wait.
    pub(crate) fn new(io: R, decoder: D, capacity: usize) -> Self {
        LeanFramedRead {
            inner: FramedRead::with_capacity(io, decoder, 0),
            capacity: capacity.max(1),
        }
    }

    /// The bytes read and not decoded yet.
    #[cfg(test)]
    pub(crate) fn buffer(&self) -> &BytesMut {
        self.inner.read_buffer()
    }
}

impl<R: AsyncRead + Unpin, D: Decoder + Unpin> Stream for LeanFramedRead<R, D> {
    type Item = Result<D::Item, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let buf = this.inner.read_buffer_mut();
        if buf.capacity() == 0 {
            buf.reserve(this.capacity);
        }
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        if polled.is_pending() && this.inner.read_buffer().is_empty() {
            *this.inner.read_buffer_mut() = BytesMut::new();
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::LinesCodec;

    #[tokio::test]
    async fn no_buffer_while_idle_and_frames_across_reads() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut lines = LeanFramedRead::new(server, LinesCodec::new(), 4096);
        assert_eq!(lines.buffer().capacity(), 0, "a buffer before any read");
        let idle = futures::poll!(lines.next());
        assert!(idle.is_pending());
        assert_eq!(lines.buffer().capacity(), 0, "a buffer kept while idle");
        // Half a line: the buffer stays while it holds bytes.
        client.write_all(b"hel").await.expect("write");
        assert!(futures::poll!(lines.next()).is_pending());
        assert_eq!(&lines.buffer()[..], b"hel");
        client.write_all(b"lo\nworld\n").await.expect("write");
        assert_eq!(
            lines.next().await.and_then(Result::ok).as_deref(),
            Some("hello")
        );
        assert_eq!(
            lines.next().await.and_then(Result::ok).as_deref(),
            Some("world")
        );
        assert!(futures::poll!(lines.next()).is_pending());
        assert_eq!(
            lines.buffer().capacity(),
            0,
            "a buffer kept after the frames"
        );
        // A line longer than the buffer's capacity still comes through.
        let long = "x".repeat(10_000);
        let writer = tokio::spawn(async move {
            client
                .write_all(format!("{long}\n").as_bytes())
                .await
                .expect("write");
            client
        });
        let got = lines.next().await.and_then(Result::ok).unwrap_or_default();
        assert_eq!(got.len(), 10_000);
        drop(writer.await);
        assert!(lines.next().await.is_none(), "the end of the stream");
    }
}
