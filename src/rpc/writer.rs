//! Writing a byte-stream connection: replies and push batches as
//! length-prefixed frames, with vectored writes straight from their bodies.
//!
//! A push batch is shared by every subscriber it goes to, and so are the
//! encoded bodies of its pushes. Copying each body into a per-connection
//! buffer would copy the whole fan-out once more in user space; instead the
//! writer queues the items and hands the kernel the bodies themselves
//! (`writev`). A push's shared encoding holds its 4-byte length prefix; a
//! reply gets one made on the fly.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::Sink;
use tokio::io::AsyncWrite;

use super::codec::{FrameError, HEADER_LEN};
use super::envelope::Encoding;
use super::push::Pushes;

/// Most frames handed to one `writev` (one slice for a push, whose shared
/// encoding holds its length prefix; two for another body).
const FRAMES_PER_WRITE: usize = 512;

/// What a connection writes: a reply (or any body), or a batch of pushes
/// in the connection's encoding.
pub(crate) enum Outgoing {
    /// One encoded body.
    Body(Bytes),
    /// Pushes, each written as its own frame or message from the push's
    /// shared encoding.
    Pushes(Pushes, Encoding),
}

impl Outgoing {
    /// Frame `i` of this item: `None` past the last frame, `Some(None)` for
    /// a push that is not written (it cannot be encoded or is larger than a
    /// frame), else the bytes and whether they hold the length prefix
    /// already (a push's shared frame) or are a bare body.
    fn frame(&self, i: usize, max_push_bytes: usize) -> Option<Option<(&[u8], bool)>> {
        match self {
            Outgoing::Body(b) => (i == 0).then_some(Some((&b[..], false))),
            Outgoing::Pushes(p, enc) => p
                .iter()
                .nth(i)
                .map(|p| p.frame_within(*enc, max_push_bytes).map(|f| (&f[..], true))),
        }
    }

    /// The bodies written for this item, in order, logging those skipped
    /// (for message transports: one message each).
    #[cfg_attr(not(feature = "sctp"), allow(dead_code))]
    pub(crate) fn bodies(&self, max_push_bytes: usize) -> Vec<&Bytes> {
        match self {
            Outgoing::Body(b) => vec![b],
            Outgoing::Pushes(p, enc) => p
                .iter()
                .filter_map(|p| p.encoded_within(*enc, max_push_bytes))
                .collect(),
        }
    }
}

/// A sink of [`Outgoing`] items over a byte stream: each body becomes a
/// frame (4-byte big-endian length, then the body).
pub(crate) struct FrameWriter<W> {
    io: W,
    queue: VecDeque<Outgoing>,
    /// The next frame of the front item to write, and how many of its bytes
    /// (prefix included) are written already.
    frame: usize,
    offset: usize,
    /// Bytes queued and not yet written.
    queued: usize,
    /// Queued bytes at which `poll_ready` writes before taking more.
    boundary: usize,
    max_push_bytes: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer that starts writing once `boundary` bytes are queued, and
    /// skips pushes larger than `max_push_bytes` (with a warning).
    pub(crate) fn new(io: W, boundary: usize, max_push_bytes: usize) -> Self {
        FrameWriter {
            io,
            queue: VecDeque::new(),
            frame: 0,
            offset: 0,
            queued: 0,
            boundary,
            max_push_bytes,
        }
    }

    /// Writes until the queue is empty.
    fn poll_write_queue(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        while !self.queue.is_empty() {
            // The frames of this write: where each is (item, frame) and its
            // length with the prefix, so that the cursor can move past the
            // bytes written without walking the items again.
            let mut at = [(0usize, 0usize, 0usize); FRAMES_PER_WRITE];
            let (n, count) = {
                // The prefix made for a bare body; none for a push's frame.
                let mut heads = [None::<[u8; HEADER_LEN]>; FRAMES_PER_WRITE];
                let mut bodies: [&[u8]; FRAMES_PER_WRITE] = [&[]; FRAMES_PER_WRITE];
                let mut count = 0;
                let (mut item, mut frame) = (0, self.frame);
                'gather: while let Some(out) = self.queue.get(item) {
                    while let Some(body) = out.frame(frame, self.max_push_bytes) {
                        frame += 1;
                        let Some((body, framed)) = body else { continue };
                        heads[count] = if framed { None } else { Some(frame_len(body)?) };
                        let len = body.len() + heads[count].map_or(0, |h| h.len());
                        bodies[count] = body;
                        at[count] = (item, frame - 1, len);
                        count += 1;
                        if count == FRAMES_PER_WRITE {
                            break 'gather;
                        }
                    }
                    item += 1;
                    frame = 0;
                }
                if count == 0 {
                    // Only skipped pushes are left.
                    self.queue.clear();
                    self.queued = 0;
                    self.frame = 0;
                    self.offset = 0;
                    break;
                }
                let mut slices = Vec::with_capacity(count * 2);
                let mut skip = self.offset;
                for (head, body) in heads.iter().zip(&bodies).take(count) {
                    let head = head.as_ref().map_or(&[][..], |h| &h[..]);
                    for part in [head, body] {
                        if part.is_empty() {
                            continue;
                        }
                        if skip >= part.len() {
                            skip -= part.len();
                        } else {
                            slices.push(IoSlice::new(&part[skip..]));
                            skip = 0;
                        }
                    }
                }
                let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices))?;
                (n, count)
            };
            if n == 0 {
                return Poll::Ready(Err(FrameError::Io(io::ErrorKind::WriteZero.into())));
            }
            self.advance(n, &at[..count]);
        }
        Poll::Ready(Ok(()))
    }

    /// Moves the cursor past `n` bytes written from the frames `at`.
    fn advance(&mut self, mut n: usize, at: &[(usize, usize, usize)]) {
        self.queued = self.queued.saturating_sub(n);
        let mut offset = self.offset;
        // Where the cursor ends: the item and frame after the last written.
        let mut next = None;
        for &(item, frame, len) in at {
            let left = len - offset;
            if n < left {
                next = Some((item, frame, offset + n));
                break;
            }
            n -= left;
            offset = 0;
            next = Some((item, frame + 1, 0));
        }
        if let Some((item, frame, offset)) = next {
            self.queue.drain(..item);
            self.frame = frame;
            self.offset = offset;
            // Drop the front item if nothing of it is left to write.
            while let Some(out) = self.queue.front() {
                let mut f = self.frame;
                let rest = loop {
                    match out.frame(f, self.max_push_bytes) {
                        None => break false,
                        Some(None) => f += 1,
                        Some(Some(_)) => break true,
                    }
                };
                if rest {
                    self.frame = f;
                    break;
                }
                self.queue.pop_front();
                self.frame = 0;
                self.offset = 0;
            }
        }
    }
}

fn frame_len(body: &[u8]) -> Result<[u8; HEADER_LEN], FrameError> {
    u32::try_from(body.len())
        .map(u32::to_be_bytes)
        .map_err(|_| FrameError::OutgoingTooLarge(body.len()))
}

impl<W: AsyncWrite + Unpin> Sink<Outgoing> for FrameWriter<W> {
    type Error = FrameError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        if this.queued >= this.boundary {
            ready!(this.poll_write_queue(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, out: Outgoing) -> Result<(), FrameError> {
        let this = self.get_mut();
        let bytes = match &out {
            Outgoing::Body(b) => {
                frame_len(b)?;
                HEADER_LEN + b.len()
            }
            Outgoing::Pushes(p, enc) => p
                .iter()
                .filter_map(|p| p.encoded_within(*enc, this.max_push_bytes))
                .map(|b| HEADER_LEN + b.len())
                .sum(),
        };
        this.queued += bytes;
        this.queue.push_back(out);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        ready!(this.poll_write_queue(cx))?;
        // All written: an idle connection keeps no queue.
        this.queue = VecDeque::new();
        Pin::new(&mut this.io)
            .poll_flush(cx)
            .map_err(FrameError::Io)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        ready!(this.poll_write_queue(cx))?;
        Pin::new(&mut this.io)
            .poll_shutdown(cx)
            .map_err(FrameError::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::Push;
    use futures::SinkExt;
    use serde_json::json;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    /// A writer that takes at most `chunk` bytes per write, to exercise
    /// partial writes.
    struct Trickle {
        out: Vec<u8>,
        chunk: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.chunk);
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.chunk;
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(left);
                self.out.extend_from_slice(&b[..k]);
                left -= k;
                n += k;
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while bytes.len() >= HEADER_LEN {
            let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            out.push(bytes[HEADER_LEN..HEADER_LEN + len].to_vec());
            bytes = &bytes[HEADER_LEN + len..];
        }
        assert!(bytes.is_empty(), "a frame cut short");
        out
    }

    #[tokio::test]
    async fn frames_survive_partial_writes_in_order() {
        let big = Push::new("t", json!("x".repeat(100)));
        let pushes: Arc<[Push]> = (0..150)
            .map(|i| Push::new("t", json!(i)))
            .chain([big])
            .collect::<Vec<_>>()
            .into();
        for chunk in [1, 3, 7, 64, 100_000] {
            let mut w = FrameWriter::new(
                Trickle {
                    out: Vec::new(),
                    chunk,
                },
                16,
                64,
            );
            let items = [
                Outgoing::Body(Bytes::from_static(b"first")),
                Outgoing::Pushes(Pushes::batch(pushes.clone()), Encoding::Json),
                Outgoing::Body(Bytes::new()),
                Outgoing::Pushes(Push::new("t", json!("one")).into(), Encoding::MsgPack),
                Outgoing::Body(Bytes::from_static(b"last")),
            ];
            for item in items {
                assert!(w.feed(item).await.is_ok());
            }
            assert!(w.flush().await.is_ok());
            let got = frames(&w.io.out);
            // 3 bodies and 151 pushes; the push over 64 bytes is skipped.
            assert_eq!(got.len(), 154, "chunk {chunk}");
            assert_eq!(got[0], b"first");
            for (i, f) in got[1..151].iter().enumerate() {
                let v: serde_json::Value = serde_json::from_slice(f).unwrap_or_default();
                assert_eq!(v, json!({"topic": "t", "data": i}), "chunk {chunk}");
            }
            assert_eq!(got[151], b"");
            let v: serde_json::Value = rmp_serde::from_slice(&got[152]).unwrap_or_default();
            assert_eq!(v, json!({"topic": "t", "data": "one"}));
            assert_eq!(got.last().map(Vec::as_slice), Some(&b"last"[..]));
            assert_eq!(w.queued, 0);
            assert!(w.queue.is_empty());
        }
    }

    #[tokio::test]
    async fn writes_to_a_real_socket() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut w = FrameWriter::new(a, 1024, 1 << 20);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let _ = b.read_to_end(&mut all).await;
            all
        });
        for i in 0..100 {
            let p: Pushes = Push::new("t", json!(i)).into();
            assert!(w.feed(Outgoing::Pushes(p, Encoding::Json)).await.is_ok());
        }
        assert!(w.close().await.is_ok());
        drop(w);
        let got = frames(&reader.await.unwrap_or_default());
        assert_eq!(got.len(), 100);
    }
}
