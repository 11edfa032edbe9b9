//! The ZMTP handshake of an accepted connection: greetings both ways, then
//! the NULL mechanism's READY commands, checking the peer's socket type.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::codec::{Command, Incoming, Outgoing, ZmtpCodec, ZmtpError};
use crate::rpc::StallGuard;

/// What this endpoint is and whom it talks to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Role {
    /// Our `Socket-Type`.
    pub(crate) ours: &'static str,
    /// The peer socket types ZeroMQ lets connect to ours.
    pub(crate) peers: &'static [&'static str],
}

/// The seeds' broker port: REQ and DEALER clients (and ROUTER peers).
pub(crate) const ROUTER: Role = Role {
    ours: "ROUTER",
    peers: &["REQ", "DEALER", "ROUTER"],
};

/// The seeds' proxy port: SUB and XSUB peers.
pub(crate) const XPUB: Role = Role {
    ours: "XPUB",
    peers: &["SUB", "XSUB"],
};

/// Runs the handshake on a connection's two halves within `timeout`, on
/// either side (ZMTP's NULL handshake is symmetric):
/// sends our greeting and READY, reads and checks the peer's. On success
/// the connection is ready for traffic, the same reader and writer going on
/// (what the peer sent after its READY stays in the reader's buffer), and
/// the peer's socket type is returned; on failure the peer has been sent an
/// ERROR command where ZMTP has one for the case.
pub(crate) async fn run<R, W>(
    reader: &mut FramedRead<R, ZmtpCodec>,
    writer: &mut FramedWrite<W, ZmtpCodec>,
    role: Role,
    timeout: Duration,
) -> Result<String, ZmtpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, exchange(reader, writer, role)).await {
        Ok(Ok(peer)) => Ok(peer),
        Ok(Err(e)) => {
            if matches!(e, ZmtpError::SocketType { .. }) {
                // Best effort: the peer learns why (libzmq logs it).
                let reason = e.to_string();
                let _ = tokio::time::timeout(
                    Duration::from_millis(200),
                    writer.send(Outgoing::Command(Command::error(&reason))),
                )
                .await;
            }
            Err(e)
        }
        Err(_) => Err(ZmtpError::HandshakeTimeout(timeout)),
    }
}

async fn exchange<R, W>(
    reader: &mut FramedRead<R, ZmtpCodec>,
    writer: &mut FramedWrite<W, ZmtpCodec>,
    role: Role,
) -> Result<String, ZmtpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Our whole greeting at once: a ZMTP 3 peer waits for our signature
    // before it sends the rest of its own.
    writer.send(Outgoing::Greeting).await?;
    match reader.next().await.transpose()? {
        Some(Incoming::Greeting(g)) if g.mechanism == "NULL" => {}
        Some(Incoming::Greeting(g)) => return Err(ZmtpError::Mechanism(g.mechanism)),
        Some(_) => return Err(ZmtpError::Handshake("expected a greeting".into())),
        None => return Err(ZmtpError::Truncated),
    }
    writer
        .send(Outgoing::Command(Command::ready(role.ours)))
        .await?;
    let ready = match reader.next().await.transpose()? {
        Some(Incoming::Command(c)) if &c.name[..] == b"READY" => c,
        Some(Incoming::Command(c)) if &c.name[..] == b"ERROR" => {
            let reason = c.data.get(1..).unwrap_or_default();
            return Err(ZmtpError::Handshake(format!(
                "the peer sent ERROR {:?}",
                String::from_utf8_lossy(reason)
            )));
        }
        Some(Incoming::Command(c)) => {
            return Err(ZmtpError::Handshake(format!(
                "expected READY, got the command {:?}",
                String::from_utf8_lossy(&c.name)
            )))
        }
        Some(_) => return Err(ZmtpError::Handshake("expected READY, got a message".into())),
        None => return Err(ZmtpError::Truncated),
    };
    let socket_type = ready
        .properties()?
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"Socket-Type"))
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
        .ok_or_else(|| ZmtpError::Handshake("READY without a Socket-Type".into()))?;
    if !role.peers.contains(&socket_type.as_str()) {
        return Err(ZmtpError::SocketType {
            peer: socket_type,
            ours: role.ours,
        });
    }
    Ok(socket_type)
}

/// An accepted connection's two halves after the handshake: frames in,
/// frames out (writes cut after the stall timeout).
pub(crate) type Halves<IO> = (
    FramedRead<ReadHalf<IO>, ZmtpCodec>,
    FramedWrite<StallGuard<WriteHalf<IO>>, ZmtpCodec>,
);

/// What an endpoint needs to accept a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accept {
    pub(crate) role: Role,
    /// Largest message, all parts together.
    pub(crate) max_message: usize,
    /// A peer that reads nothing for this long is cut.
    pub(crate) stall: Duration,
    /// The handshake's time limit.
    pub(crate) timeout: Duration,
}

/// Splits an accepted connection and runs the server's side of the
/// handshake: the halves, or `None` when `cancel` (a drain) comes first; a
/// refused handshake is logged with the peer and returned.
pub(crate) async fn accept<IO>(
    io: IO,
    how: Accept,
    cancel: &CancellationToken,
    peer: Option<std::net::SocketAddr>,
) -> Result<Option<Halves<IO>>, ZmtpError>
where
    IO: AsyncRead + AsyncWrite,
{
    let (r, w) = tokio::io::split(io);
    let mut read = FramedRead::new(r, ZmtpCodec::new(how.max_message));
    let mut write = FramedWrite::new(
        StallGuard::new(w, how.stall),
        ZmtpCodec::new(how.max_message),
    );
    let shaken = tokio::select! {
        r = run(&mut read, &mut write, how.role, how.timeout) => r,
        () = cancel.cancelled() => return Ok(None),
    };
    match shaken {
        Ok(peer_type) => {
            tracing::debug!(?peer, %peer_type, endpoint = how.role.ours, "ZeroMQ peer connected");
            Ok(Some((read, write)))
        }
        Err(e) => {
            tracing::info!(?peer, error = %e, endpoint = how.role.ours, "ZeroMQ handshake refused; closing");
            Err(e)
        }
    }
}
