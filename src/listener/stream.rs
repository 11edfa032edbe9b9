//! [`ByteStream`]: any byte-stream socket a listener hands over (TCP, TLS
//! over TCP), so a protocol serves them all without matching each
//! transport.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connected byte stream of any transport that has one: TCP, or TLS over
/// TCP (decrypted). It reads and writes as the socket it wraps; get one
/// with [`Socket::into_byte_stream`](super::Socket::into_byte_stream).
#[derive(Debug)]
pub struct ByteStream(Inner);

#[derive(Debug)]
enum Inner {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ByteStream {
    /// The TCP socket underneath (peer address, `TCP_NODELAY`, ...). Do not
    /// read or write it directly under TLS.
    pub fn tcp(&self) -> &TcpStream {
        match &self.0 {
            Inner::Tcp(s) => s,
            #[cfg(feature = "tls")]
            Inner::Tls(s) => s.get_ref().0,
        }
    }

    /// True when the stream is TLS.
    pub fn is_tls(&self) -> bool {
        match &self.0 {
            Inner::Tcp(_) => false,
            #[cfg(feature = "tls")]
            Inner::Tls(_) => true,
        }
    }

    /// The protocol the client and server agreed on by ALPN during the TLS
    /// handshake (`b"h2"`, `b"http/1.1"`), if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.0 {
            Inner::Tcp(_) => None,
            #[cfg(feature = "tls")]
            Inner::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }
}

impl From<TcpStream> for ByteStream {
    fn from(s: TcpStream) -> Self {
        ByteStream(Inner::Tcp(s))
    }
}

#[cfg(feature = "tls")]
impl From<tokio_rustls::server::TlsStream<TcpStream>> for ByteStream {
    fn from(s: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        ByteStream(Inner::Tls(Box::new(s)))
    }
}

#[cfg(feature = "tls")]
impl From<Box<tokio_rustls::server::TlsStream<TcpStream>>> for ByteStream {
    fn from(s: Box<tokio_rustls::server::TlsStream<TcpStream>>) -> Self {
        ByteStream(Inner::Tls(s))
    }
}

/// Calls `$method` on whichever stream `$self` holds.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match &mut $self.get_mut().0 {
            Inner::Tcp($s) => {
                let $s = Pin::new($s);
                $call
            }
            #[cfg(feature = "tls")]
            Inner::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $call
            }
        }
    };
}

impl AsyncRead for ByteStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        dispatch!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for ByteStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.0 {
            Inner::Tcp(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, s => s.poll_shutdown(cx))
    }
}
