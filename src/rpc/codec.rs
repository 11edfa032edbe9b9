//! Frame codec for byte-stream transports: a 4-byte big-endian length, then
//! that many bytes of body.
//!
//! Built on [`tokio_util::codec::LengthDelimitedCodec`]; the only parsing done
//! here is a peek at the length of a frame that has not started yet, so that a
//! frame announced larger than `max_frame_bytes` comes out as
//! [`Frame::TooLarge`] (the server answers FRAME_TOO_LARGE and closes: the body
//! of such a frame cannot be skipped safely). After that the codec yields
//! nothing more and discards what it is given.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Bytes of the length prefix.
pub(crate) const HEADER_LEN: usize = 4;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A complete body.
    Body(Bytes),
    /// A frame whose announced length (the value) exceeds the limit. The
    /// stream cannot be resynchronised after it.
    TooLarge(usize),
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer closed the stream in the middle of a frame.
    #[error("stream closed in the middle of a frame ({0} bytes pending)")]
    Truncated(usize),
    /// A reply or push larger than the frame limit (a bug or a misconfiguration).
    #[error("outgoing frame of {0} bytes exceeds the limit")]
    OutgoingTooLarge(usize),
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Length-prefixed frame codec with a size limit.
#[derive(Debug)]
pub(super) struct FrameCodec {
    inner: LengthDelimitedCodec,
    max: usize,
    /// The inner codec has consumed a header and waits for the body.
    in_frame: bool,
    /// A too-large frame was reported; nothing more is decoded.
    poisoned: bool,
}

impl FrameCodec {
    /// A codec accepting bodies of up to `max_frame_bytes` bytes.
    pub(super) fn new(max_frame_bytes: usize) -> Self {
        let max = max_frame_bytes.min(u32::MAX as usize);
        let inner = LengthDelimitedCodec::builder()
            .big_endian()
            .length_field_length(HEADER_LEN)
            .max_frame_length(max)
            .new_codec();
        FrameCodec {
            inner,
            max,
            in_frame: false,
            poisoned: false,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.poisoned {
            // Discard: the server only reads on to close gracefully.
            src.clear();
            return Ok(None);
        }
        if !self.in_frame {
            let Some(head) = src.get(..HEADER_LEN) else {
                return Ok(None);
            };
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if len > self.max {
                self.poisoned = true;
                return Ok(Some(Frame::TooLarge(len)));
            }
        }
        // With a whole header available, the inner codec either returns the
        // frame or consumes the header and waits for the rest of the body.
        match self.inner.decode(src)? {
            Some(body) => {
                self.in_frame = false;
                Ok(Some(Frame::Body(body.freeze())))
            }
            None => {
                self.in_frame = true;
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if self.poisoned || (src.is_empty() && !self.in_frame) {
            Ok(None)
        } else {
            Err(FrameError::Truncated(src.len()))
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        if body.len() > self.max {
            return Err(FrameError::OutgoingTooLarge(body.len()));
        }
        self.inner.encode(body, dst)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&(body.len() as u32).to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn decodes_whole_and_split_frames() {
        let mut c = FrameCodec::new(16);
        let mut buf = framed(b"hello");
        buf.extend_from_slice(&framed(b"")); // empty body is a frame too
        assert_eq!(
            c.decode(&mut buf).ok().flatten(),
            Some(Frame::Body(Bytes::from_static(b"hello")))
        );
        assert_eq!(
            c.decode(&mut buf).ok().flatten(),
            Some(Frame::Body(Bytes::new()))
        );
        assert_eq!(c.decode(&mut buf).ok().flatten(), None);

        // Byte by byte.
        let whole = framed(b"abc");
        let mut buf = BytesMut::new();
        let mut got = None;
        for b in whole.iter() {
            buf.extend_from_slice(&[*b]);
            if let Some(f) = c.decode(&mut buf).ok().flatten() {
                got = Some(f);
            }
        }
        assert_eq!(got, Some(Frame::Body(Bytes::from_static(b"abc"))));
        assert!(buf.is_empty());
    }

    #[test]
    fn exactly_max_is_accepted_one_more_is_too_large() {
        let mut c = FrameCodec::new(4);
        let mut buf = framed(b"1234");
        assert_eq!(
            c.decode(&mut buf).ok().flatten(),
            Some(Frame::Body(Bytes::from_static(b"1234")))
        );
        let mut buf = framed(b"12345");
        assert_eq!(c.decode(&mut buf).ok().flatten(), Some(Frame::TooLarge(5)));
        // Poisoned: nothing more, even valid frames.
        buf.extend_from_slice(&framed(b"1"));
        assert_eq!(c.decode(&mut buf).ok().flatten(), None);
        assert!(matches!(c.decode_eof(&mut buf), Ok(None)));
    }

    #[test]
    fn too_large_is_reported_from_the_header_alone() {
        let mut c = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert_eq!(
            c.decode(&mut buf).ok().flatten(),
            Some(Frame::TooLarge(u32::MAX as usize))
        );
    }

    #[test]
    fn eof_mid_frame_is_truncated() {
        let mut c = FrameCodec::new(64);
        let mut buf = framed(b"abcdef");
        buf.truncate(6);
        assert_eq!(c.decode(&mut buf).ok().flatten(), None);
        assert!(matches!(
            c.decode_eof(&mut buf),
            Err(FrameError::Truncated(2))
        ));
        // Half a header.
        let mut c = FrameCodec::new(64);
        let mut buf = BytesMut::from(&[0u8, 0][..]);
        assert!(matches!(
            c.decode_eof(&mut buf),
            Err(FrameError::Truncated(2))
        ));
        // Clean end.
        let mut c = FrameCodec::new(64);
        assert!(matches!(c.decode_eof(&mut BytesMut::new()), Ok(None)));
    }

    #[test]
    fn encodes_with_prefix_and_refuses_oversize() {
        let mut c = FrameCodec::new(4);
        let mut out = BytesMut::new();
        assert!(c.encode(Bytes::from_static(b"ab"), &mut out).is_ok());
        assert_eq!(&out[..], &[0, 0, 0, 2, b'a', b'b']);
        assert!(matches!(
            c.encode(Bytes::from_static(b"abcde"), &mut out),
            Err(FrameError::OutgoingTooLarge(5))
        ));
    }
}
