//! ZMTP 3.x framing (RFC 23 and 37): the greeting, commands and multipart
//! messages, as a tokio-util [`Decoder`] / [`Encoder`] pair.
//!
//! ```text
//! greeting = %xFF 8OCTET %x7F  major minor  mechanism(20)  as-server  filler(31)
//! frame    = flags size body   flags: bit 0 MORE, bit 1 LONG (8-octet size),
//!                              bit 2 COMMAND; the other bits are zero
//! command  = name-size name data
//! ```
//!
//! The decoder checks sizes before it buffers anything: a frame whose
//! header announces more than the message limit is refused at once, as is
//! a message of too many parts, so a hostile peer never makes the node
//! allocate what it announces.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Length of a ZMTP 3 greeting.
pub(crate) const GREETING_LEN: usize = 64;
/// Most parts a message may have (envelope frames and body).
pub(crate) const MAX_PARTS: usize = 32;

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;

/// What went wrong on a ZMTP connection. Every one of them closes the
/// connection (with a log line); none concerns any other connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZmtpError {
    /// The first bytes are not a ZMTP 3 greeting.
    #[error("not a ZMTP 3 greeting: {0}")]
    Greeting(&'static str),
    /// The peer asks for a security mechanism other than NULL.
    #[error("security mechanism {0:?} is not supported (only NULL)")]
    Mechanism(String),
    /// The peer's socket type cannot talk to this endpoint.
    #[error("a {peer} socket cannot connect to this {ours} endpoint")]
    SocketType {
        /// The peer's `Socket-Type`.
        peer: String,
        /// This endpoint's socket type.
        ours: &'static str,
    },
    /// The handshake did not go as ZMTP says.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The handshake was not finished in time.
    #[error("handshake not finished within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// A frame or message larger than the limit.
    #[error("message of {size} bytes or more exceeds the limit of {max}")]
    TooLarge {
        /// Bytes announced so far.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A message of more than 32 parts (envelope frames and body).
    #[error("message of more than {MAX_PARTS} parts")]
    TooManyParts,
    /// Malformed traffic: reserved flag bits, a command inside a message.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The peer closed in the middle of a frame or of the greeting.
    #[error("peer closed mid-frame")]
    Truncated,
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What the decoder gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// The peer's greeting: its version and mechanism.
    Greeting(Greeting),
    /// A command (READY, ERROR, PING, SUBSCRIBE, ...): name and data.
    Command(Command),
    /// A whole message: its parts, in order.
    Message(Vec<Bytes>),
}

/// A peer's greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Greeting {
    pub(crate) major: u8,
    pub(crate) minor: u8,
    pub(crate) mechanism: String,
}

/// A command frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) name: Bytes,
    pub(crate) data: Bytes,
}

impl Command {
    /// A command named `name` carrying `data`.
    pub(crate) fn new(name: &'static str, data: Bytes) -> Self {
        Command {
            name: Bytes::from_static(name.as_bytes()),
            data,
        }
    }

    /// A READY command announcing `socket_type`.
    pub(crate) fn ready(socket_type: &str) -> Self {
        let mut data = BytesMut::new();
        put_property(&mut data, "Socket-Type", socket_type.as_bytes());
        Command::new("READY", data.freeze())
    }

    /// An ERROR command (the peer should not reconnect at once).
    pub(crate) fn error(reason: &str) -> Self {
        let reason = &reason.as_bytes()[..reason.len().min(255)];
        let mut data = BytesMut::with_capacity(1 + reason.len());
        data.put_u8(reason.len() as u8);
        data.put_slice(reason);
        Command::new("ERROR", data.freeze())
    }

    /// The metadata properties of a READY command, in order.
    pub(crate) fn properties(&self) -> Result<Vec<(Bytes, Bytes)>, ZmtpError> {
        let mut props = Vec::new();
        let mut rest = self.data.clone();
        while !rest.is_empty() {
            let n = usize::from(rest[0]);
            if rest.len() < 1 + n + 4 {
                return Err(ZmtpError::Handshake("READY metadata cut short".into()));
            }
            rest.advance(1);
            let name = rest.split_to(n);
            let len = rest.get_u32() as usize;
            if rest.len() < len {
                return Err(ZmtpError::Handshake("READY metadata cut short".into()));
            }
            props.push((name, rest.split_to(len)));
        }
        Ok(props)
    }
}

fn put_property(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_u8(name.len() as u8);
    out.put_slice(name.as_bytes());
    out.put_u32(value.len() as u32);
    out.put_slice(value);
}

/// What the encoder sends.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// Our greeting (version 3.0, mechanism NULL, as server).
    Greeting,
    /// A command.
    Command(Command),
    /// A message of these parts.
    Message(Vec<Bytes>),
}

/// Our greeting: ZMTP 3.0, NULL, as-server. 3.0 rather than 3.1 so that
/// every 3.x peer sends subscriptions as messages (3.1 peers understand
/// a 3.0 endpoint); the decoder takes 3.1's SUBSCRIBE/CANCEL commands too.
fn greeting() -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 0;
    g[12..16].copy_from_slice(b"NULL");
    g[32] = 1;
    g
}

/// The ZMTP codec of one connection.
#[derive(Debug)]
pub(crate) struct ZmtpCodec {
    max_message: usize,
    greeted: bool,
    parts: Vec<Bytes>,
    size: usize,
}

impl ZmtpCodec {
    /// A codec refusing messages larger than `max_message` bytes (all
    /// parts together).
    pub(crate) fn new(max_message: usize) -> Self {
        ZmtpCodec {
            max_message,
            greeted: false,
            parts: Vec::new(),
            size: 0,
        }
    }

    fn decode_greeting(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, ZmtpError> {
        // Refuse what is not ZMTP as soon as its first bytes show it.
        if let Some(&b) = src.first() {
            if b != 0xFF {
                return Err(ZmtpError::Greeting("the first byte is not 0xFF"));
            }
        }
        if src.len() >= 10 && src[9] & 0x01 == 0 {
            return Err(ZmtpError::Greeting("a ZMTP 1.0 peer (not supported)"));
        }
        if src.len() >= 11 && src[10] < 3 {
            return Err(ZmtpError::Greeting("a ZMTP 2.0 peer (not supported)"));
        }
        if src.len() < GREETING_LEN {
            return Ok(None);
        }
        let g = src.split_to(GREETING_LEN);
        let mech = &g[12..32];
        let end = mech.iter().position(|&b| b == 0).unwrap_or(mech.len());
        let mechanism = String::from_utf8_lossy(&mech[..end]).into_owned();
        self.greeted = true;
        Ok(Some(Incoming::Greeting(Greeting {
            major: g[10],
            minor: g[11],
            mechanism,
        })))
    }
}

impl Decoder for ZmtpCodec {
    type Item = Incoming;
    type Error = ZmtpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, ZmtpError> {
        if !self.greeted {
            return self.decode_greeting(src);
        }
        loop {
            let Some(&flags) = src.first() else {
                return Ok(None);
            };
            if flags & !(MORE | LONG | COMMAND) != 0 {
                return Err(ZmtpError::Malformed("reserved flag bits set"));
            }
            let (head, size) = if flags & LONG != 0 {
                if src.len() < 9 {
                    return Ok(None);
                }
                let mut s = [0u8; 8];
                s.copy_from_slice(&src[1..9]);
                (9, u64::from_be_bytes(s))
            } else {
                if src.len() < 2 {
                    return Ok(None);
                }
                (2, u64::from(src[1]))
            };
            let total = (self.size as u64).saturating_add(size);
            if total > self.max_message as u64 {
                return Err(ZmtpError::TooLarge {
                    size: total,
                    max: self.max_message,
                });
            }
            let size = size as usize;
            if src.len() < head + size {
                src.reserve(head + size - src.len());
                return Ok(None);
            }
            src.advance(head);
            let body = src.split_to(size).freeze();
            if flags & COMMAND != 0 {
                if !self.parts.is_empty() {
                    return Err(ZmtpError::Malformed("a command inside a multipart message"));
                }
                if flags & MORE != 0 {
                    return Err(ZmtpError::Malformed("a command with the MORE flag"));
                }
                return command(body).map(|c| Some(Incoming::Command(c)));
            }
            if self.parts.len() == MAX_PARTS {
                return Err(ZmtpError::TooManyParts);
            }
            self.size += size;
            self.parts.push(body);
            if flags & MORE == 0 {
                self.size = 0;
                return Ok(Some(Incoming::Message(std::mem::take(&mut self.parts))));
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, ZmtpError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() && self.parts.is_empty() => Ok(None),
            None => Err(ZmtpError::Truncated),
        }
    }
}

fn command(mut body: Bytes) -> Result<Command, ZmtpError> {
    let Some(&n) = body.first() else {
        return Err(ZmtpError::Malformed("an empty command"));
    };
    let n = usize::from(n);
    if body.len() < 1 + n || n == 0 {
        return Err(ZmtpError::Malformed("a command name cut short"));
    }
    body.advance(1);
    let name = body.split_to(n);
    Ok(Command { name, data: body })
}

fn put_frame(dst: &mut BytesMut, flags: u8, body: &[u8]) {
    if body.len() > 255 {
        dst.reserve(9 + body.len());
        dst.put_u8(flags | LONG);
        dst.put_u64(body.len() as u64);
    } else {
        dst.reserve(2 + body.len());
        dst.put_u8(flags);
        dst.put_u8(body.len() as u8);
    }
    dst.put_slice(body);
}

impl Encoder<Outgoing> for ZmtpCodec {
    type Error = ZmtpError;

    fn encode(&mut self, item: Outgoing, dst: &mut BytesMut) -> Result<(), ZmtpError> {
        match item {
            Outgoing::Greeting => dst.put_slice(&greeting()),
            Outgoing::Command(c) => {
                let mut body = BytesMut::with_capacity(1 + c.name.len() + c.data.len());
                body.put_u8(c.name.len() as u8);
                body.put_slice(&c.name);
                body.put_slice(&c.data);
                put_frame(dst, COMMAND, &body);
            }
            Outgoing::Message(parts) => encode_message(&parts, dst),
        }
        Ok(())
    }
}

/// Appends the frames of a message of `parts` to `dst`.
pub(crate) fn encode_message<B: AsRef<[u8]>>(parts: &[B], dst: &mut BytesMut) {
    let last = parts.len().saturating_sub(1);
    for (i, p) in parts.iter().enumerate() {
        put_frame(dst, if i < last { MORE } else { 0 }, p.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut ZmtpCodec, bytes: &[u8]) -> Result<Vec<Incoming>, ZmtpError> {
        let mut src = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(i) = codec.decode(&mut src)? {
            out.push(i);
        }
        Ok(out)
    }

    fn greeted(max: usize) -> ZmtpCodec {
        let mut c = ZmtpCodec::new(max);
        c.greeted = true;
        c
    }

    #[test]
    fn a_greeting_and_a_ready_command_round_trip() {
        let mut enc = ZmtpCodec::new(1024);
        let mut buf = BytesMut::new();
        enc.encode(Outgoing::Greeting, &mut buf).expect("greeting");
        enc.encode(Outgoing::Command(Command::ready("ROUTER")), &mut buf)
            .expect("ready");
        let mut dec = ZmtpCodec::new(1024);
        let got = decode_all(&mut dec, &buf).expect("decodes");
        assert_eq!(
            got[0],
            Incoming::Greeting(Greeting {
                major: 3,
                minor: 0,
                mechanism: "NULL".into()
            })
        );
        let Incoming::Command(c) = &got[1] else {
            panic!("a command: {got:?}")
        };
        assert_eq!(&c.name[..], b"READY");
        let props = c.properties().expect("properties");
        assert_eq!(props.len(), 1);
        assert_eq!(&props[0].0[..], b"Socket-Type");
        assert_eq!(&props[0].1[..], b"ROUTER");
    }

    #[test]
    fn multipart_messages_short_and_long_frames_come_out_whole() {
        let long = vec![7u8; 300];
        let mut buf = BytesMut::new();
        encode_message(&[&b""[..], &long[..]], &mut buf);
        encode_message(&[&b"x"[..]], &mut buf);
        let mut dec = greeted(1024);
        // Fed one byte at a time, as a slow peer would send it.
        let mut src = BytesMut::new();
        let mut got = Vec::new();
        for b in buf.iter() {
            src.put_u8(*b);
            while let Some(i) = dec.decode(&mut src).expect("decodes") {
                got.push(i);
            }
        }
        assert_eq!(
            got,
            vec![
                Incoming::Message(vec![Bytes::new(), Bytes::from(long)]),
                Incoming::Message(vec![Bytes::from_static(b"x")]),
            ]
        );
    }

    #[test]
    fn hostile_input_is_refused_before_anything_is_buffered() {
        // Not ZMTP at all: refused on the first byte.
        let mut c = ZmtpCodec::new(1024);
        assert!(matches!(
            decode_all(&mut c, b"GET / HTTP/1.1\r\n"),
            Err(ZmtpError::Greeting(_))
        ));
        // ZMTP 2.0.
        let mut g = greeting();
        g[10] = 1;
        let mut c = ZmtpCodec::new(1024);
        assert!(matches!(
            decode_all(&mut c, &g),
            Err(ZmtpError::Greeting(_))
        ));
        // A long frame announcing 2^63 bytes: refused on its header.
        let mut c = greeted(1024);
        let mut f = vec![LONG];
        f.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert!(matches!(
            decode_all(&mut c, &f),
            Err(ZmtpError::TooLarge { .. })
        ));
        // Parts adding up over the limit.
        let mut c = greeted(100);
        let mut buf = BytesMut::new();
        encode_message(&[&[0u8; 60][..], &[0u8; 60][..]], &mut buf);
        assert!(matches!(
            decode_all(&mut c, &buf),
            Err(ZmtpError::TooLarge { .. })
        ));
        // Too many parts.
        let mut c = greeted(1 << 20);
        let parts = vec![&b"a"[..]; MAX_PARTS + 1];
        let mut buf = BytesMut::new();
        encode_message(&parts, &mut buf);
        assert!(matches!(
            decode_all(&mut c, &buf),
            Err(ZmtpError::TooManyParts)
        ));
        // Reserved bits, a command inside a message, an empty command.
        for bad in [
            &[0x08u8, 0][..],
            &[MORE, 1, b'a', COMMAND, 1, 0][..],
            &[COMMAND, 0][..],
        ] {
            let mut c = greeted(1024);
            assert!(
                matches!(decode_all(&mut c, bad), Err(ZmtpError::Malformed(_))),
                "{bad:?}"
            );
        }
        // Metadata whose value runs past the end.
        let cmd = Command {
            name: Bytes::from_static(b"READY"),
            data: Bytes::from_static(b"\x0bSocket-Type\x00\x00\x01\x00REQ"),
        };
        assert!(cmd.properties().is_err());
    }

    #[test]
    fn a_peer_gone_mid_frame_is_truncated() {
        let mut c = greeted(1024);
        let mut src = BytesMut::from(&[MORE, 1, b'a'][..]);
        assert!(matches!(c.decode(&mut src), Ok(None)));
        assert!(matches!(c.decode_eof(&mut src), Err(ZmtpError::Truncated)));
    }
}
