//! Large cached files go out with `sendfile(2)`, as nginx sends them.
//!
//! The file cache keeps a file's bytes in memory, and hyper writes a
//! response's body with `writev` from them: the kernel copies them into the
//! socket. For a large file that copy is most of the cost of an answer
//! (100 KiB: ~3 µs of system time per response more than nginx, which
//! `sendfile`s). `sendfile` hands the page cache's pages to the socket
//! instead, with no copy.
//!
//! hyper knows nothing of files: it writes slices of memory. So the cache
//! keeps a large file open beside its bytes and [`register`]s the bytes'
//! address range with that file ([`OnDisk`]); [`SendfileStream`], under
//! hyper on plain TCP, looks each large slice it is asked to write up in
//! that registry, and sends the slice's part of the file instead of the
//! memory. The bytes sent are the same: the file is used only while its
//! identity (device, inode, ctime: the kernel updates ctime on every write)
//! is still the one the bytes were read with, checked before each send;
//! a file changed since, shorter, or gone is sent from memory as before.
//! Small slices (headers, small files) never touch the registry.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::cache::{file_id, FileId};
use crate::listener::ByteStream;

/// Slices shorter than this are written from memory: below it the copy
/// costs less than the lookup and the identity check.
pub(crate) const MIN_BYTES: usize = 32 * 1024;

/// A cached file's bytes and the open file they were read from.
#[derive(Debug)]
pub(crate) struct OnDisk {
    file: File,
    id: FileId,
    /// Where the bytes are in memory.
    start: usize,
    len: usize,
}

/// The registry: address of each registered copy's first byte -> its file.
static REGIONS: RwLock<BTreeMap<usize, Arc<OnDisk>>> = RwLock::new(BTreeMap::new());

fn regions_mut() -> std::sync::RwLockWriteGuard<'static, BTreeMap<usize, Arc<OnDisk>>> {
    REGIONS.write().unwrap_or_else(|e| e.into_inner())
}

/// Keeps `bytes` registered with `file` while it lives. The cache entry
/// holding the bytes holds it, and drops it before its own handle of the
/// bytes: a registration never outlives the memory it names.
#[derive(Debug)]
pub(crate) struct Registration(Arc<OnDisk>);

impl Drop for Registration {
    fn drop(&mut self) {
        let mut regions = regions_mut();
        if regions
            .get(&self.0.start)
            .is_some_and(|d| Arc::ptr_eq(d, &self.0))
        {
            regions.remove(&self.0.start);
        }
    }
}

/// Registers `bytes`, read from `file` while it was version `id`, if they
/// are large enough to gain from `sendfile` and the file is still that
/// version (a write during the read would make the bytes and the file
/// differ).
pub(crate) fn register(file: File, id: FileId, bytes: &Bytes) -> Option<Registration> {
    if bytes.len() < MIN_BYTES || file_id(&file.metadata().ok()?)? != id {
        return None;
    }
    let start = bytes.as_ptr() as usize;
    let on_disk = Arc::new(OnDisk {
        file,
        id,
        start,
        len: bytes.len(),
    });
    // Two live copies never share an address: the one registered here is
    // `bytes`, which the caller keeps as long as the registration.
    regions_mut().insert(start, on_disk.clone());
    Some(Registration(on_disk))
}

/// The file and offset holding the `len` bytes at `ptr`, if they are a
/// registered copy's.
fn find(ptr: usize, len: usize) -> Option<(Arc<OnDisk>, u64)> {
    let regions = REGIONS.read().unwrap_or_else(|e| e.into_inner());
    let (_, d) = regions.range(..=ptr).next_back()?;
    let end = ptr.checked_add(len)?;
    (end <= d.start + d.len).then(|| (d.clone(), (ptr - d.start) as u64))
}

impl OnDisk {
    /// True while the file is still the version the bytes were read from.
    fn unchanged(&self) -> bool {
        self.file
            .metadata()
            .ok()
            .and_then(|m| file_id(&m))
            .is_some_and(|id| id == self.id)
    }
}

/// A [`ByteStream`] whose writes of registered bytes go out with
/// `sendfile` (plain TCP only; TLS writes what it encrypted).
#[derive(Debug)]
pub(crate) struct SendfileStream {
    inner: ByteStream,
    /// Counts the bytes sent with `sendfile`.
    sent: IntCounter,
}

impl SendfileStream {
    pub(crate) fn new(inner: ByteStream, sent: IntCounter) -> Self {
        SendfileStream { inner, sent }
    }

    /// The TCP socket underneath (see [`ByteStream::tcp`]).
    pub(crate) fn tcp(&self) -> &tokio::net::TcpStream {
        self.inner.tcp()
    }

    /// True when the stream is TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }

    /// Sends `len` bytes of `d` from `offset`: the bytes sent, or `None`
    /// to send them from memory (the file changed, or ended early).
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        d: &OnDisk,
        offset: u64,
        len: usize,
    ) -> Poll<Option<io::Result<usize>>> {
        if !d.unchanged() {
            return Poll::Ready(None);
        }
        let tcp = self.inner.tcp();
        loop {
            if let Err(e) = ready!(tcp.poll_write_ready(cx)) {
                return Poll::Ready(Some(Err(e)));
            }
            let sent = tcp.try_io(Interest::WRITABLE, || {
                let mut off = libc::off_t::try_from(offset)
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                // SAFETY: both descriptors are open for the call (the socket
                // borrowed from `tcp`, the file from `d`); `off` is a valid
                // place for the kernel to write the new offset.
                let n =
                    unsafe { libc::sendfile(tcp.as_raw_fd(), d.file.as_raw_fd(), &mut off, len) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            return match sent {
                // The file is shorter than it was: memory has the bytes.
                Ok(0) => Poll::Ready(None),
                Ok(n) => {
                    self.sent.inc_by(n as u64);
                    Poll::Ready(Some(Ok(n)))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Poll::Ready(None),
                Err(e) => Poll::Ready(Some(Err(e))),
            };
        }
    }
}

impl SendfileStream {
    /// Writes `bufs` with `MSG_MORE`: the kernel waits for the bytes that
    /// follow before it sends a segment.
    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let tcp = self.inner.tcp();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            let sent = tcp.try_io(Interest::WRITABLE, || {
                // SAFETY: an all-zero msghdr is valid (no name, no control).
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                // IoSlice is an iovec on Unix (std guarantees the layout).
                msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = bufs.len() as _;
                // SAFETY: the socket is open (borrowed from `tcp`) and `msg`
                // points at `bufs`, alive for the call.
                let n = unsafe {
                    libc::sendmsg(tcp.as_raw_fd(), &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL)
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.inner.is_tls() {
            // The first large slice of a registered copy: what comes before
            // it is written first (the next call starts with the slice).
            let found = bufs.iter().enumerate().find_map(|(i, b)| {
                (b.len() >= MIN_BYTES)
                    .then(|| find(b.as_ptr() as usize, b.len()))
                    .flatten()
                    .map(|(d, offset)| (i, d, offset))
            });
            if let Some((i, d, offset)) = found {
                let len = bufs[i].len();
                if i == 0 {
                    return match ready!(self.poll_sendfile(cx, &d, offset, len)) {
                        Some(r) => Poll::Ready(r),
                        None => Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..1]),
                    };
                }
                // The head first, held back (MSG_MORE) to go out in one
                // segment with the file's first bytes.
                let head: usize = bufs[..i].iter().map(|b| b.len()).sum();
                let sent = ready!(self.poll_send_more(cx, &bufs[..i]))?;
                if sent < head {
                    return Poll::Ready(Ok(sent));
                }
                // What could not go now goes at the next call.
                return match self.poll_sendfile(cx, &d, offset, len) {
                    Poll::Ready(Some(Ok(n))) => Poll::Ready(Ok(head + n)),
                    _ => Poll::Ready(Ok(head)),
                };
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
