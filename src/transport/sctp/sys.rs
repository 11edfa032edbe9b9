//! The system calls of SCTP message I/O that tokio-sctp does not offer:
//! several messages per call (`sendmmsg(2)`, `recvmmsg(2)`), each with its
//! stream in its ancillary data, and the socket options set by hand. All the
//! unsafe code of the SCTP transport is here, each block with its SAFETY
//! argument; everything above it is safe.
//!
//! On a one-to-one SCTP socket each `mmsghdr` is one SCTP message: sending,
//! its `SCTP_SNDINFO` names the stream; receiving, the kernel reads one
//! message (or a part of one, without `MSG_EOR`) per entry and reports its
//! stream in `SCTP_SNDRCV` (what tokio-sctp's sockets subscribe to) or
//! `SCTP_RCVINFO`.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;

/// `cmsg_type` of `struct sctp_sndrcvinfo` (RFC 6458 5.3.2, deprecated but
/// what `SCTP_EVENTS` with `sctp_data_io_event` delivers).
const SCTP_SNDRCV: libc::c_int = 1;
/// `cmsg_type` of `struct sctp_sndinfo` (RFC 6458 5.3.4).
const SCTP_SNDINFO: libc::c_int = 2;
/// `cmsg_type` of `struct sctp_rcvinfo` (RFC 6458 5.3.5).
const SCTP_RCVINFO: libc::c_int = 3;
/// `msg_flags` of a notification rather than data (linux/sctp.h).
const MSG_NOTIFICATION: libc::c_int = 0x8000;

/// Most messages handed to one `sendmmsg`.
pub(super) const SEND_BATCH: usize = 64;
/// Most messages (or parts) taken by one `recvmmsg`.
pub(super) const RECV_BATCH: usize = 32;
/// Bytes of each `recvmmsg` entry: a longer message arrives in parts.
pub(super) const RECV_SLOT: usize = 16 * 1024;
/// Room for the ancillary data of one received message (an
/// `sctp_sndrcvinfo`, 32 bytes, takes 48; an `sctp_rcvinfo` besides, 48).
const RECV_CMSG_BYTES: usize = 128;

/// `struct sctp_sndinfo`.
#[repr(C)]
#[derive(Clone, Copy)]
struct SndInfo {
    snd_sid: u16,
    snd_flags: u16,
    snd_ppid: u32,
    snd_context: u32,
    snd_assoc_id: i32,
}

/// One `SCTP_SNDINFO` control message: the header, then the data at
/// `CMSG_DATA` (the header's size, already aligned, on Linux).
#[repr(C)]
struct SndCmsg {
    hdr: libc::cmsghdr,
    info: SndInfo,
}

/// The ancillary data buffer of one received message, aligned for
/// `cmsghdr`.
#[repr(C, align(8))]
struct RecvCmsg([u8; RECV_CMSG_BYTES]);

/// A new descriptor for `fd`'s socket (`F_DUPFD_CLOEXEC`): the socket stays
/// open until both are closed.
pub(super) fn dup(fd: &impl AsRawFd) -> io::Result<OwnedFd> {
    // SAFETY: `fd` is borrowed for this call, so its descriptor is open
    // until the call returns, and the BorrowedFd does not outlive it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
    borrowed.try_clone_to_owned()
}

/// Registers `fd` with the current Tokio runtime's reactor (must be called
/// within one).
pub(super) fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd's descriptor is open and stays its own (the same
    // open file description) until the OwnedFd, here owned by the AsyncFd,
    // is dropped.
    Ok(unsafe { AsyncFd::register(fd) }?)
}

/// Send-buffer bytes the kernel charges for one queued message besides its
/// data (the chunk's buffer and bookkeeping), an upper estimate.
const CHUNK_CHARGE: usize = 1024;

/// Sends each `(body, stream)` as one message on that stream, up to
/// [`SEND_BATCH`] of them in one `sendmmsg`. Returns how many were sent,
/// the first ones (fewer than given when the send buffer filled up: the
/// rest is for another call), or the error of the first.
///
/// With SCTP_NODELAY each message would leave in a packet of its own. When
/// the batch would take at most `cork_budget` bytes of the send buffer, all
/// but its last message go with `MSG_MORE` (the kernel holds them, up to a
/// full packet), and the last one without, which sends them all, bundled.
/// The budget keeps what is held well inside the send buffer: a batch cut
/// short leaves a few messages held, and the buffer must still have room
/// for the rest of it (or data in flight whose acknowledgements make room).
///
/// Empty bodies are not allowed (SCTP has no empty messages): the call
/// fails with `EINVAL` at the first one.
pub(super) fn send_batch<'a>(
    fd: BorrowedFd<'_>,
    msgs: impl IntoIterator<Item = (&'a [u8], u16)>,
    cork_budget: usize,
) -> io::Result<usize> {
    // SAFETY: all-zero bytes are a valid value of these plain C structs
    // (null pointers, zero lengths and flags).
    let (mut hdrs, mut iovs, mut cmsgs): (
        [libc::mmsghdr; SEND_BATCH],
        [libc::iovec; SEND_BATCH],
        [SndCmsg; SEND_BATCH],
    ) = unsafe { (mem::zeroed(), mem::zeroed(), mem::zeroed()) };
    let mut count = 0;
    let mut charge = 0;
    for (body, stream) in msgs.into_iter().take(SEND_BATCH) {
        let cmsg = &mut cmsgs[count];
        cmsg.hdr.cmsg_level = libc::IPPROTO_SCTP;
        cmsg.hdr.cmsg_type = SCTP_SNDINFO;
        cmsg.hdr.cmsg_len = cmsg_len(mem::size_of::<SndInfo>()) as _;
        cmsg.info.snd_sid = stream;
        iovs[count] = libc::iovec {
            // The kernel only reads through it (sendmsg).
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        };
        charge += 2 * body.len() + CHUNK_CHARGE;
        count += 1;
    }
    if count == 0 {
        return Ok(0);
    }
    for ((hdr, iov), cmsg) in hdrs.iter_mut().zip(&mut iovs).zip(&mut cmsgs).take(count) {
        hdr.msg_hdr.msg_iov = iov;
        hdr.msg_hdr.msg_iovlen = 1;
        hdr.msg_hdr.msg_control = (cmsg as *mut SndCmsg).cast();
        hdr.msg_hdr.msg_controllen = mem::size_of::<SndCmsg>() as _;
    }
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    if count == 1 || charge > cork_budget {
        return sendmmsg(fd, &mut hdrs[..count], flags);
    }
    let held = sendmmsg(fd, &mut hdrs[..count - 1], flags | libc::MSG_MORE)?;
    if held < count - 1 {
        return Ok(held);
    }
    match sendmmsg(fd, &mut hdrs[count - 1..count], flags) {
        Ok(n) => Ok(held + n),
        // The held ones went; this one's error comes back on the next call
        // (which sends it without MSG_MORE, releasing them).
        Err(_) => Ok(held),
    }
}

/// `sendmmsg(2)` of `hdrs`, which must be set up as in [`send_batch`].
fn sendmmsg(
    fd: BorrowedFd<'_>,
    hdrs: &mut [libc::mmsghdr],
    flags: libc::c_int,
) -> io::Result<usize> {
    // SAFETY: `hdrs` are valid msghdrs (send_batch) whose iovecs point into
    // bodies borrowed for send_batch's call and whose control buffers are
    // on send_batch's frame, all alive for this call; the kernel writes
    // only each entry's `msg_len`.
    let n = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            flags,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// What one `recvmmsg` entry (or one `recvmsg`) received.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Received {
    /// Bytes received (0 with no flags: the peer shut the association down).
    pub(super) len: usize,
    /// The stream the message came in on (0 if the kernel did not say).
    pub(super) stream: u16,
    /// The last part of a message (`MSG_EOR`).
    pub(super) eor: bool,
    /// An SCTP notification rather than data.
    pub(super) notification: bool,
}

impl Received {
    fn new(len: usize, hdr: &libc::msghdr, cmsg: &RecvCmsg) -> Self {
        Received {
            len,
            stream: stream_of(cmsg, hdr.msg_controllen as _),
            eor: hdr.msg_flags & libc::MSG_EOR != 0,
            notification: hdr.msg_flags & MSG_NOTIFICATION != 0,
        }
    }
}

/// Receives up to `entries.len()` messages (at most [`RECV_BATCH`]) with
/// one `recvmmsg`, entry `i` into `scratch[i * RECV_SLOT..][..RECV_SLOT]`
/// (so `scratch` must hold `entries.len()` slots). Returns how many entries
/// were filled; `WouldBlock` when nothing was waiting.
pub(super) fn recv_batch(
    fd: BorrowedFd<'_>,
    scratch: &mut [u8],
    entries: &mut [Received],
) -> io::Result<usize> {
    let count = entries.len().min(RECV_BATCH).min(scratch.len() / RECV_SLOT);
    if count == 0 {
        return Ok(0);
    }
    // SAFETY: all-zero bytes are a valid value of these plain C structs
    // and of the byte arrays.
    let (mut hdrs, mut iovs, mut cmsgs): (
        [libc::mmsghdr; RECV_BATCH],
        [libc::iovec; RECV_BATCH],
        [RecvCmsg; RECV_BATCH],
    ) = unsafe { (mem::zeroed(), mem::zeroed(), mem::zeroed()) };
    for (i, slot) in scratch.chunks_exact_mut(RECV_SLOT).take(count).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: slot.as_mut_ptr().cast(),
            iov_len: slot.len(),
        };
    }
    for ((hdr, iov), cmsg) in hdrs.iter_mut().zip(&mut iovs).zip(&mut cmsgs).take(count) {
        hdr.msg_hdr.msg_iov = iov;
        hdr.msg_hdr.msg_iovlen = 1;
        hdr.msg_hdr.msg_control = cmsg.0.as_mut_ptr().cast();
        hdr.msg_hdr.msg_controllen = RECV_CMSG_BYTES as _;
    }
    // SAFETY: `hdrs[..count]` are valid msghdrs whose iovecs are disjoint
    // slots of the exclusively borrowed `scratch` and whose control
    // buffers are the matching `cmsgs`, all alive on this frame for the
    // whole call; the kernel writes at most each iovec's and control
    // buffer's length, and each entry's `msg_len` and flags.
    let n = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for ((entry, hdr), cmsg) in entries.iter_mut().zip(&hdrs).zip(&cmsgs).take(n) {
        *entry = Received::new(hdr.msg_len as usize, &hdr.msg_hdr, cmsg);
    }
    Ok(n)
}

/// Receives one message, or the next part of one, with `recvmsg` into the
/// spare capacity of `buf` (at least `min_room` bytes of it, reserved
/// first), appending what arrived.
pub(super) fn recv_into(
    fd: BorrowedFd<'_>,
    buf: &mut BytesMut,
    min_room: usize,
) -> io::Result<Received> {
    buf.reserve(min_room);
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    let mut cmsg = RecvCmsg([0; RECV_CMSG_BYTES]);
    // SAFETY: all-zero bytes are a valid msghdr (null pointers, zeros).
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = cmsg.0.as_mut_ptr().cast();
    hdr.msg_controllen = RECV_CMSG_BYTES as _;
    // SAFETY: `hdr`'s iovec is the spare capacity of the exclusively
    // borrowed `buf` and its control buffer is `cmsg`, both alive for the
    // call; the kernel writes at most their lengths.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut hdr, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare
    // capacity (`n` is at most its length).
    unsafe { buf.set_len(buf.len() + n.min(iov.iov_len)) };
    Ok(Received::new(n, &hdr, &cmsg))
}

/// The stream in a received message's ancillary data (`controllen` bytes
/// of `cmsg`, as the kernel reported): the first field of both
/// `sctp_sndrcvinfo` and `sctp_rcvinfo`; 0 if there is none. Walks the
/// headers itself, checking every length, rather than trust them to
/// `CMSG_NXTHDR`.
fn stream_of(cmsg: &RecvCmsg, controllen: usize) -> u16 {
    let buf = &cmsg.0[..controllen.min(RECV_CMSG_BYTES)];
    let head = cmsg_len(0);
    let align = mem::size_of::<usize>();
    let field = |at: usize, off: usize| -> Option<i32> {
        let b = buf.get(at + off..at + off + 4)?;
        Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut at = 0;
    while at + head <= buf.len() {
        let mut len = [0u8; mem::size_of::<usize>()];
        len.copy_from_slice(&buf[at..at + align]);
        let len = usize::from_ne_bytes(len);
        if len < head || len > buf.len() - at {
            break;
        }
        let level = field(at, mem::offset_of!(libc::cmsghdr, cmsg_level));
        let ty = field(at, mem::offset_of!(libc::cmsghdr, cmsg_type));
        if level == Some(libc::IPPROTO_SCTP)
            && (ty == Some(SCTP_SNDRCV) || ty == Some(SCTP_RCVINFO))
            && len >= head + 2
        {
            return u16::from_ne_bytes([buf[at + head], buf[at + head + 1]]);
        }
        // The next header starts at the next aligned offset.
        at += len.div_ceil(align) * align;
    }
    0
}

/// `CMSG_LEN(len)`.
fn cmsg_len(len: usize) -> usize {
    // SAFETY: CMSG_LEN is arithmetic on its argument only.
    unsafe { libc::CMSG_LEN(len as libc::c_uint) as usize }
}

/// Sets an integer socket option.
pub(super) fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value is a valid c_int for the call; a bad `fd`
    // is an error (EBADF), not undefined behaviour.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an integer socket option.
pub(super) fn getsockopt_int(fd: i32, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: value and len are valid for writing for the call.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut i32).cast(), &mut len) };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `listen(2)` again on a listening socket: sets its backlog.
pub(super) fn listen(fd: i32, backlog: u32) -> io::Result<()> {
    // SAFETY: listen takes no pointers; a bad `fd` is an error.
    if unsafe { libc::listen(fd, backlog.min(i32::MAX as u32) as i32) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn control_message_layouts_match_the_kernel() {
        // sctp_sndinfo is 16 bytes; its cmsg is CMSG_SPACE of that, with
        // the data right after the (aligned) header.
        assert_eq!(mem::size_of::<SndInfo>(), 16);
        // SAFETY: CMSG_SPACE / CMSG_LEN are arithmetic only.
        let (space, data_at) =
            unsafe { (libc::CMSG_SPACE(16) as usize, libc::CMSG_LEN(0) as usize) };
        assert_eq!(mem::size_of::<SndCmsg>(), space);
        assert_eq!(mem::offset_of!(SndCmsg, info), data_at);
        assert!(RECV_CMSG_BYTES >= unsafe { libc::CMSG_SPACE(32) } as usize);
        assert_eq!(
            mem::align_of::<RecvCmsg>() % mem::align_of::<libc::cmsghdr>(),
            0
        );
    }

    /// A control buffer holding `(level, type, data)` messages, as the
    /// kernel lays them out.
    fn control(msgs: &[(i32, i32, &[u8])]) -> RecvCmsg {
        let mut buf = RecvCmsg([0; RECV_CMSG_BYTES]);
        let mut at = 0;
        for (level, ty, data) in msgs {
            let hdr = libc::cmsghdr {
                cmsg_len: cmsg_len(data.len()) as _,
                cmsg_level: *level,
                cmsg_type: *ty,
            };
            // SAFETY: `hdr` is a plain struct read as its bytes.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    (&hdr as *const libc::cmsghdr).cast::<u8>(),
                    mem::size_of_val(&hdr),
                )
            };
            buf.0[at..at + bytes.len()].copy_from_slice(bytes);
            let data_at = at + cmsg_len(0);
            buf.0[data_at..data_at + data.len()].copy_from_slice(data);
            // SAFETY: arithmetic only.
            at += unsafe { libc::CMSG_SPACE(data.len() as u32) } as usize;
        }
        buf
    }

    fn stream_in(cmsg: &mut RecvCmsg, controllen: usize) -> u16 {
        stream_of(cmsg, controllen)
    }

    #[test]
    fn the_stream_is_read_from_sndrcv_or_rcvinfo_and_nothing_else() {
        let sndrcv = [7u8, 1, 0xaa, 0xbb];
        let mut c = control(&[(libc::IPPROTO_SCTP, SCTP_SNDRCV, &sndrcv)]);
        assert_eq!(stream_in(&mut c, RECV_CMSG_BYTES), 0x0107);
        // Another level or type first is skipped.
        let mut c = control(&[
            (libc::SOL_SOCKET, SCTP_SNDRCV, &[9, 9]),
            (libc::IPPROTO_SCTP, 42, &[8, 8]),
            (libc::IPPROTO_SCTP, SCTP_RCVINFO, &[3, 0]),
        ]);
        assert_eq!(stream_in(&mut c, RECV_CMSG_BYTES), 3);
        // None, a header too short for a stream, or a truncated buffer: 0.
        let mut c = control(&[(libc::IPPROTO_SCTP, SCTP_SNDRCV, &[5])]);
        assert_eq!(stream_in(&mut c, RECV_CMSG_BYTES), 0);
        let mut c = control(&[(libc::IPPROTO_SCTP, SCTP_SNDRCV, &[5, 0])]);
        assert_eq!(stream_in(&mut c, cmsg_len(0) - 1), 0);
        let mut c = RecvCmsg([0; RECV_CMSG_BYTES]);
        assert_eq!(stream_in(&mut c, 0), 0);
        // Garbage lengths stop the walk rather than run past the buffer.
        let mut c = RecvCmsg([0xff; RECV_CMSG_BYTES]);
        assert_eq!(stream_in(&mut c, RECV_CMSG_BYTES), 0);
        assert_eq!(stream_in(&mut c, usize::MAX), 0);
        let mut c = control(&[(libc::IPPROTO_SCTP, 42, &[1; 8])]);
        c.0[cmsg_len(8)..].fill(0xff);
        assert_eq!(stream_in(&mut c, RECV_CMSG_BYTES), 0);
    }

    /// The batch calls on a datagram socket pair (no SCTP in this kernel
    /// needed; Linux ignores the SCTP control messages on a Unix socket):
    /// whole datagrams in order, each in its own entry, stream 0 (no SCTP
    /// ancillary data back), partial sends, `WouldBlock` when empty.
    #[test]
    fn batches_move_whole_datagrams_in_order() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().expect("socketpair");
        // A small send buffer (the kernel's least): few datagrams fit.
        setsockopt_int(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 1).expect("SO_SNDBUF");
        let bodies: Vec<Vec<u8>> = (0..200u8).map(|i| vec![i; 1 + i as usize * 3]).collect();
        let mut scratch = vec![0u8; RECV_BATCH * RECV_SLOT];
        let mut entries = [Received::default(); RECV_BATCH];
        let (mut sent, mut got, mut partial) = (0, Vec::new(), false);
        while got.len() < bodies.len() {
            // The socket's queue holds only a few datagrams: a batch is
            // sent in part, and the rest on a later call.
            let batch = bodies[sent..].iter().map(|b| (&b[..], 9u16));
            let cork = if sent % 2 == 0 { usize::MAX } else { 0 };
            match send_batch(a.as_fd(), batch, cork) {
                Ok(n) => {
                    assert!(n <= SEND_BATCH);
                    partial |= n < SEND_BATCH.min(bodies.len() - sent);
                    sent += n;
                }
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
            match recv_batch(b.as_fd(), &mut scratch, &mut entries) {
                Ok(n) => {
                    assert!(n > 0 && n <= RECV_BATCH);
                    for (i, e) in entries[..n].iter().enumerate() {
                        assert_eq!((e.stream, e.notification), (0, false));
                        got.push(scratch[i * RECV_SLOT..][..e.len].to_vec());
                    }
                }
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
        }
        assert!(partial, "some sendmmsg was cut short");
        assert_eq!(got, bodies);
        let e = recv_batch(b.as_fd(), &mut scratch, &mut entries).expect_err("empty");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(send_batch(a.as_fd(), [], usize::MAX).ok(), Some(0));
        // Too little scratch for one slot: nothing asked, nothing read.
        assert_eq!(
            recv_batch(b.as_fd(), &mut scratch[..10], &mut entries).ok(),
            Some(0)
        );
        // recv_into appends.
        a.send(b"tail").expect("send");
        let mut buf = BytesMut::from(&b"head-"[..]);
        let r = recv_into(b.as_fd(), &mut buf, 64).expect("recvmsg");
        assert_eq!(r.len, 4);
        assert_eq!(&buf[..], b"head-tail");
    }
}
