//! Kernel SCTP through tokio-sctp: one-to-one style sockets (one association
//! per accepted socket, like TCP), their options, and whole-message I/O.
//!
//! One SCTP message is one body: an [`Association`] gives its [`Messages`],
//! whole, with the stream each came in on, and a [`MessageSink`] that sends
//! each body as one message on the stream it is given. Both move several
//! messages per system call (`recvmmsg`, `sendmmsg`); the unsafe code of
//! those calls is in one small private module.

mod sys;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Sink, Stream};
use tokio::io::unix::AsyncFd;
use tokio_sctp::{InitMsg, SctpListener, SctpSocket, SctpStream};

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

/// Sets a buffer size; past the kernel's maximum, asks again with the FORCE
/// option (allowed with CAP_NET_ADMIN). The kernel doubles what it is given
/// and reports the doubled value.
fn set_buffer(fd: i32, name: i32, force: i32, bytes: usize) -> io::Result<()> {
    let want = bytes.min(i32::MAX as usize / 2) as i32;
    sys::setsockopt_int(fd, libc::SOL_SOCKET, name, want)?;
    if sys::getsockopt_int(fd, libc::SOL_SOCKET, name)? < want {
        if let Err(e) = sys::setsockopt_int(fd, libc::SOL_SOCKET, force, want) {
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
    sys::listen(fd, backlog)?;
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

/// An association's socket, registered with the runtime: the source of its
/// [`Messages`] and [`MessageSink`]. Cheap to clone; the clones, the
/// messages and the sinks share the socket, which closes when the last of
/// them goes.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use bytes::Bytes;
/// use corral::transport::{sctp, SctpOptions};
/// use futures::{SinkExt, StreamExt};
///
/// let stream = sctp::connect("127.0.0.1:7071".parse().unwrap(), &SctpOptions::default()).await?;
/// let assoc = sctp::Association::new(stream)?;
/// let (mut tx, mut rx) = (assoc.sink(), assoc.messages(1 << 20));
/// // Both go out together (bundled), each on its own stream.
/// tx.feed((Bytes::from_static(b"one"), 1)).await?;
/// tx.feed((Bytes::from_static(b"two"), 2)).await?;
/// tx.flush().await?;
/// while let Some(msg) = rx.next().await {
///     println!("{:?}", msg?);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Association {
    fd: Arc<AsyncFd<OwnedFd>>,
    /// Send-buffer bytes a batch may take to go out bundled (see
    /// [`MessageSink`]): a quarter of the buffer.
    cork_budget: usize,
}

impl Association {
    /// Takes over `stream`'s socket. Must be called within a Tokio runtime
    /// (as `stream` was made in one).
    pub fn new(stream: SctpStream) -> io::Result<Self> {
        // tokio-sctp keeps its registration to itself: this descriptor of
        // the same socket gets one of its own, and `stream` (with its
        // registration and descriptor) goes.
        let fd = sys::dup(&stream)?;
        drop(stream);
        let sndbuf = sys::getsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF)?;
        Ok(Association {
            fd: Arc::new(sys::register(fd)?),
            cork_budget: usize::try_from(sndbuf).unwrap_or(0) / 4,
        })
    }

    /// The association's messages, whole, up to `max_message_bytes` each.
    /// Take them from one [`Messages`] at a time: two would share them out.
    pub fn messages(&self, max_message_bytes: usize) -> Messages {
        Messages {
            fd: self.fd.clone(),
            rx: Receiver {
                max_message_bytes,
                ready: VecDeque::new(),
                out: BytesMut::new(),
                part: None,
                done: false,
            },
        }
    }

    /// A sink of messages on this association.
    pub fn sink(&self) -> MessageSink {
        MessageSink {
            fd: self.fd.clone(),
            cork_budget: self.cork_budget,
            queue: VecDeque::new(),
            queued_bytes: 0,
            sent: 0,
            shut: false,
        }
    }
}

impl AsFd for Association {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

impl AsRawFd for Association {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
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

thread_local! {
    /// Where `recvmmsg` puts a batch before its messages are copied out,
    /// packed, into the association's own buffer: one per thread rather
    /// than a batch's worth of room held by every association.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The messages of an association, whole, until the peer shuts it down
/// (the stream ends) or it fails (an error, then the end); see
/// [`Association::messages`].
///
/// Every message waiting is taken at once (`recvmmsg`, up to 32 a call),
/// then handed out one by one. A message larger than one entry of the
/// batch (16 KiB) arrives in parts up to `MSG_EOR`; with fragment
/// interleave off (the kernel's default, left alone here) no other message
/// comes between them, so the parts are simply appended, the later ones
/// read straight into the message's buffer.
#[derive(Debug)]
pub struct Messages {
    fd: Arc<AsyncFd<OwnedFd>>,
    rx: Receiver,
}

/// What [`Messages`] holds besides the socket.
#[derive(Debug)]
struct Receiver {
    max_message_bytes: usize,
    /// Received and not yet handed out, in order.
    ready: VecDeque<io::Result<Incoming>>,
    /// Where small messages are packed (each split off as it completes).
    out: BytesMut,
    /// The message being assembled from parts, and its stream.
    part: Option<(BytesMut, u16)>,
    /// Nothing more to read (end, error or a message too large).
    done: bool,
}

/// Room reserved for each read of a message's later parts.
const PART_ROOM: usize = 64 * 1024;

impl Receiver {
    /// One `recvmmsg`: the messages completed go to `ready`. Returns false
    /// when the batch was not full (the socket was drained).
    fn recv_batch(&mut self, fd: BorrowedFd<'_>) -> io::Result<bool> {
        let mut entries = [sys::Received::default(); sys::RECV_BATCH];
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < sys::RECV_BATCH * sys::RECV_SLOT {
                // Zeroed pages from the allocator: only what the kernel
                // writes into is ever touched.
                *scratch = vec![0; sys::RECV_BATCH * sys::RECV_SLOT];
            }
            let n = sys::recv_batch(fd, &mut scratch, &mut entries)?;
            let whole: usize = entries[..n]
                .iter()
                .filter(|e| e.eor && !e.notification)
                .map(|e| e.len)
                .sum();
            self.out.reserve(whole);
            for (i, e) in entries[..n].iter().enumerate() {
                let data = &scratch[i * sys::RECV_SLOT..][..e.len.min(sys::RECV_SLOT)];
                self.take(*e, data);
                if self.done {
                    break;
                }
            }
            Ok(n == sys::RECV_BATCH)
        })
    }

    /// What one entry (or read) brought: a whole message, a part, a
    /// notification (skipped) or the end.
    fn take(&mut self, e: sys::Received, data: &[u8]) {
        if e.notification {
            return;
        }
        if e.len == 0 {
            // The peer shut the association down (SCTP has no empty
            // messages); a message cut short by it is dropped.
            self.done = true;
            return;
        }
        let len = match &mut self.part {
            Some((part, _)) => {
                part.extend_from_slice(data);
                part.len()
            }
            None if e.eor => {
                if data.len() > self.max_message_bytes {
                    self.too_large(data.len());
                    return;
                }
                self.out.extend_from_slice(data);
                let body = self.out.split().freeze();
                self.ready.push_back(Ok(Incoming::Message(body, e.stream)));
                return;
            }
            None => {
                self.part = Some((BytesMut::from(data), e.stream));
                data.len()
            }
        };
        if len > self.max_message_bytes {
            self.part = None;
            self.too_large(len);
        } else if e.eor {
            if let Some((part, stream)) = self.part.take() {
                self.ready
                    .push_back(Ok(Incoming::Message(part.freeze(), stream)));
            }
        }
    }

    fn too_large(&mut self, len: usize) {
        self.ready.push_back(Ok(Incoming::TooLarge(len)));
        self.done = true;
    }

    /// Reads the next part of the message being assembled straight into
    /// its buffer.
    fn recv_part(&mut self, fd: BorrowedFd<'_>) -> io::Result<bool> {
        let Some((part, _)) = self.part.as_mut() else {
            return Ok(false);
        };
        let before = part.len();
        let e = sys::recv_into(fd, part, PART_ROOM)?;
        if e.notification {
            part.truncate(before);
            return Ok(true);
        }
        let len = part.len();
        if e.len == 0 {
            self.done = true;
        } else if len > self.max_message_bytes {
            self.part = None;
            self.too_large(len);
        } else if e.eor {
            if let Some((part, stream)) = self.part.take() {
                self.ready
                    .push_back(Ok(Incoming::Message(part.freeze(), stream)));
            }
        }
        Ok(true)
    }
}

impl Stream for Messages {
    type Item = io::Result<Incoming>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Messages { fd, rx } = self.get_mut();
        loop {
            if let Some(item) = rx.ready.pop_front() {
                return Poll::Ready(Some(item));
            }
            if rx.done {
                return Poll::Ready(None);
            }
            let mut guard = match ready!(fd.poll_read_ready(cx)) {
                Ok(g) => g,
                Err(e) => {
                    rx.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            };
            let raw = fd.get_ref().as_fd();
            let r = if rx.part.is_some() {
                rx.recv_part(raw)
            } else {
                rx.recv_batch(raw)
            };
            match r {
                // A batch that was not full drained the socket: wait for
                // the next readiness rather than ask again for nothing
                // (tokio's own streams do the same after a short read).
                Ok(false) => guard.clear_ready(),
                Ok(true) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    rx.done = true;
                    rx.ready.push_back(Err(e));
                }
            }
        }
    }
}

/// Queued bytes at which [`MessageSink`] sends before taking more.
const SEND_QUEUE_BYTES: usize = 256 * 1024;
/// Queued messages at which [`MessageSink`] sends before taking more.
const SEND_QUEUE_MESSAGES: usize = 1024;

/// Sends each `(body, stream)` as one message on that stream; closing it
/// shuts the association down gracefully (after what is queued). See
/// [`Association::sink`].
///
/// Messages are queued until a flush (or until 256 KiB or 1024 messages
/// wait), then sent up to 64 per system call (`sendmmsg`), in order; what
/// the send buffer cannot take waits for it to drain. A batch that takes
/// at most a quarter of the send buffer goes out bundled in as few packets
/// as fit it (`MSG_MORE` on all but its last message, one more system
/// call), even with SCTP_NODELAY, which otherwise sends each message in a
/// packet of its own.
pub struct MessageSink {
    fd: Arc<AsyncFd<OwnedFd>>,
    cork_budget: usize,
    queue: VecDeque<(Bytes, u16)>,
    queued_bytes: usize,
    /// Messages sent so far.
    sent: u64,
    shut: bool,
}

impl std::fmt::Debug for MessageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSink")
            .field("queued", &self.queue.len())
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl MessageSink {
    /// Messages sent so far (handed to the kernel).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Sends until the queue is empty.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.queue.is_empty() {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let batch = self.queue.iter().map(|(b, s)| (&b[..], *s));
            let cork = self.cork_budget;
            match guard.try_io(|fd| sys::send_batch(fd.get_ref().as_fd(), batch, cork)) {
                Ok(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => {
                    for (body, _) in self.queue.drain(..n) {
                        self.queued_bytes -= body.len();
                    }
                    self.sent += n as u64;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {} // readiness cleared: wait for it
            }
        }
        if self.queue.capacity() > sys::SEND_BATCH {
            // After a burst: an idle association keeps no large queue.
            self.queue = VecDeque::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl Sink<(Bytes, u16)> for MessageSink {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.queued_bytes >= SEND_QUEUE_BYTES || this.queue.len() >= SEND_QUEUE_MESSAGES {
            ready!(this.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, (body, stream): (Bytes, u16)) -> io::Result<()> {
        let this = self.get_mut();
        if body.is_empty() {
            // An empty message cannot be sent; there is nothing to say.
            return Ok(());
        }
        this.queued_bytes += body.len();
        this.queue.push_back((body, stream));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        if !this.shut {
            this.shut = true;
            match socket2::SockRef::from(this.fd.get_ref()).shutdown(Shutdown::Write) {
                Err(e) if e.kind() != io::ErrorKind::NotConnected => return Poll::Ready(Err(e)),
                _ => {}
            }
        }
        Poll::Ready(Ok(()))
    }
}
