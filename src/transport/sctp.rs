//! Kernel SCTP through tokio-sctp: one-to-one style sockets (one association
//! per accepted socket, like TCP), their options, and whole-message I/O.
//!
//! One SCTP message is one body: [`messages`] yields whole messages with the
//! stream they came in on, [`MessageSink`] sends each body as one message on
//! the stream it is given.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::unix::io::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Sink, Stream};
use tokio_sctp::{InitMsg, RecvFlags, SctpListener, SctpSocket, SctpStream, SendOptions};

use super::SctpOptions;

/// Why SCTP cannot be used on this machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SctpUnavailable {
    /// The kernel has no SCTP (`socket()` answered `EPROTONOSUPPORT` or a
    /// similar error).
    #[error(
        "this kernel has no SCTP (socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP): {0}); \
         load the module with `modprobe sctp` (as root), or use transport = \"tcp\""
    )]
    NoKernelSupport(#[source] io::Error),
}

/// Checks that the kernel can open an SCTP socket.
pub fn probe() -> Result<(), SctpUnavailable> {
    socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::from(libc::IPPROTO_SCTP)),
    )
    .map(drop)
    .map_err(SctpUnavailable::NoKernelSupport)
}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: fd is an open socket; the option value is a valid c_int.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt_int(fd: i32, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: fd is an open socket; value and len are valid for writing.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut value as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a buffer size; past the kernel's maximum, asks again with the FORCE
/// option (allowed with CAP_NET_ADMIN). The kernel doubles what it is given
/// and reports the doubled value.
fn set_buffer(fd: i32, name: i32, force: i32, bytes: usize) -> io::Result<()> {
    let want = bytes.min(i32::MAX as usize / 2) as i32;
    setsockopt_int(fd, libc::SOL_SOCKET, name, want)?;
    if getsockopt_int(fd, libc::SOL_SOCKET, name)? < want {
        if let Err(e) = setsockopt_int(fd, libc::SOL_SOCKET, force, want) {
            tracing::debug!(error = %e, bytes, "SCTP buffer capped by the kernel's maximum");
        }
    }
    Ok(())
}

/// A new SCTP socket for `domain` with the options applied (before bind or
/// connect, so that accepted sockets inherit them).
fn socket(addr: SocketAddr, opts: &SctpOptions) -> io::Result<SctpSocket> {
    let s = SctpSocket::new(socket2_04::Domain::for_address(addr))?;
    let fd = s.as_raw_fd();
    set_buffer(
        fd,
        libc::SO_SNDBUF,
        libc::SO_SNDBUFFORCE,
        opts.send_buffer_bytes,
    )?;
    set_buffer(
        fd,
        libc::SO_RCVBUF,
        libc::SO_RCVBUFFORCE,
        opts.recv_buffer_bytes,
    )?;
    s.set_sctp_initmsg(&InitMsg {
        num_ostreams: opts.ostreams.max(1),
        max_instreams: opts.instreams.max(1),
        max_attempts: 0,
        max_init_timeout: 0,
    })?;
    s.set_nodelay(opts.nodelay)?;
    Ok(s)
}

/// Binds a listening SCTP socket on `addr` and the extra addresses (same
/// port), with the options applied and a listen backlog of `backlog`.
pub fn bind(addr: SocketAddr, opts: &SctpOptions, backlog: u32) -> io::Result<SctpListener> {
    let s = socket(addr, opts)?;
    s.set_reuseaddr(true)?;
    let fd = s.as_raw_fd();
    let listener = bind_addresses(s, addr, opts)?;
    // tokio-sctp listens with the kernel's default backlog; listening again
    // on a listening SCTP socket sets the backlog. `fd` is owned by `listener`.
    // SAFETY: fd is the open listening socket.
    if unsafe { libc::listen(fd, backlog.min(i32::MAX as u32) as i32) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

fn bind_addresses(s: SctpSocket, addr: SocketAddr, opts: &SctpOptions) -> io::Result<SctpListener> {
    let extra_ips = opts.extra_ips();
    if extra_ips.is_empty() {
        return SctpListener::bind_from(s, addr);
    }
    s.bind_sys(addr)?;
    let port = s.local_addr()?.port();
    let mut extra = Vec::with_capacity(extra_ips.len());
    for ip in &extra_ips {
        if !ip.is_ipv4() || !addr.is_ipv4() {
            // tokio-sctp's bindx packs `struct sockaddr` (16 bytes): IPv4 only.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("extra SCTP address {ip}: only IPv4 extra addresses on an IPv4 listener"),
            ));
        }
        extra.push(SocketAddr::new(*ip, port));
    }
    SctpListener::bindx_from(s, &extra)
}

/// Connects an SCTP association to `addr` with the options applied.
pub async fn connect(addr: SocketAddr, opts: &SctpOptions) -> io::Result<SctpStream> {
    let s = socket(addr, opts)?;
    s.connect(addr).await
}

/// One incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A whole message and the stream it came in on.
    Message(Bytes, u16),
    /// A message longer than the limit (at least this many bytes); nothing
    /// more is read after it.
    TooLarge(usize),
}

/// The messages of an association, whole, until the peer shuts it down
/// (the stream ends) or it fails (an error, then the end).
///
/// A message larger than one read arrives in parts up to `MSG_EOR`; with
/// fragment interleave off (the kernel's default, left alone here) no other
/// message comes between them, so the parts are simply appended.
pub fn messages(
    stream: Arc<SctpStream>,
    max_message_bytes: usize,
) -> impl Stream<Item = io::Result<Incoming>> + Send + 'static {
    futures::stream::unfold(Some((stream, BytesMut::new())), move |state| async move {
        let (stream, mut buf) = state?;
        buf.clear();
        loop {
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            match stream.recvmsg_buf(&mut buf).await {
                Ok((0, _, _)) => return None, // the peer shut the association down
                Ok((_, info, flags)) => {
                    if buf.len() > max_message_bytes {
                        return Some((Ok(Incoming::TooLarge(buf.len())), None));
                    }
                    if flags.contains(RecvFlags::NOTIFICATION) {
                        buf.clear();
                        continue;
                    }
                    if flags.contains(RecvFlags::EOR) {
                        let body = buf.split().freeze();
                        let item = Incoming::Message(body, info.stream);
                        return Some((Ok(item), Some((stream, buf))));
                    }
                }
                Err(e) => return Some((Err(e), None)),
            }
        }
    })
}

type SendFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// Sends each `(body, stream)` as one message on that stream; closing it
/// shuts the association down gracefully (after what is queued).
pub struct MessageSink {
    stream: Arc<SctpStream>,
    pending: Option<SendFuture>,
    shut: bool,
}

impl std::fmt::Debug for MessageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSink").finish_non_exhaustive()
    }
}

impl MessageSink {
    /// A sink sending on `stream`.
    pub fn new(stream: Arc<SctpStream>) -> Self {
        MessageSink {
            stream,
            pending: None,
            shut: false,
        }
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(f) = self.pending.as_mut() {
            let r = ready!(f.as_mut().poll(cx));
            self.pending = None;
            r?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Sink<(Bytes, u16)> for MessageSink {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, (body, stream): (Bytes, u16)) -> io::Result<()> {
        let this = self.get_mut();
        if body.is_empty() {
            // An empty message cannot be sent; there is nothing to say.
            return Ok(());
        }
        let s = this.stream.clone();
        this.pending = Some(Box::pin(async move {
            let opts = SendOptions {
                stream,
                ..SendOptions::default()
            };
            s.sendmsg(&body, None, &opts).await.map(drop)
        }));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if !this.shut {
            this.shut = true;
            match this.stream.shutdown(Shutdown::Write) {
                Err(e) if e.kind() != io::ErrorKind::NotConnected => return Poll::Ready(Err(e)),
                _ => {}
            }
        }
        Poll::Ready(Ok(()))
    }
}
