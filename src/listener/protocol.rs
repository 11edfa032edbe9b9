//! The plug-in point: a [`Protocol`] serves one connection in its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::inbox::{Inbox, InboxSender};
use super::stream::ByteStream;

/// The error a protocol's `serve` may end with. The connection then ends
/// with reason `shutdown: <error>` (logged at debug level, not a failure:
/// clients misbehave); a panic is a failure of that connection only, logged
/// as an error.
pub type ProtocolError = Box<dyn std::error::Error + Send + Sync>;

/// A connection protocol: RPC, HTTP, or one of your own.
///
/// `serve` runs once per connection, in that connection's task (a temporary
/// child of the listener's `acceptor_sup`, as Ranch's connection processes
/// are: no mailbox of its own; the node reaches it through
/// [`ConnectionRef`]). It owns the
/// socket and returns when the connection is done. Messages from the rest of
/// the node (`Self::Msg`, for example publications to push) arrive on
/// [`Connection::inbox`]; at shutdown [`Connection::draining`] is cancelled
/// and the protocol should finish what it started and return.
///
/// ```
/// use corral::async_trait;
/// use corral::listener::{Connection, Protocol, ProtocolError};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// /// Answers every chunk with the same bytes, over TCP or TLS.
/// struct Echo;
///
/// #[async_trait]
/// impl Protocol for Echo {
///     type Msg = ();
///     async fn serve(&self, mut conn: Connection<()>) -> Result<(), ProtocolError> {
///         let Some(socket) = conn.take_socket() else { return Ok(()) };
///         let Ok(mut stream) = socket.into_byte_stream() else {
///             return Err("a byte stream (TCP, TLS) is needed".into());
///         };
///         let mut buf = [0u8; 4096];
///         loop {
///             tokio::select! {
///                 n = stream.read(&mut buf) => {
///                     let n = n?;
///                     if n == 0 { return Ok(()) }
///                     stream.write_all(&buf[..n]).await?;
///                 }
///                 _ = conn.draining().cancelled() => return Ok(()),
///             }
///         }
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Protocol: Send + Sync + 'static {
    /// What the rest of the node can send to a connection of this protocol.
    type Msg: Send + 'static;

    /// Serves one connection until it ends.
    async fn serve(&self, conn: Connection<Self::Msg>) -> Result<(), ProtocolError>;
}

/// A connected socket, by transport.
///
/// A protocol that serves any byte stream (TCP, TLS) need not match each
/// variant: [`Socket::into_byte_stream`] gives one [`ByteStream`] for all of
/// them, and hands back the message transports (SCTP).
#[derive(Debug)]
#[non_exhaustive]
pub enum Socket {
    /// A TCP connection.
    Tcp(TcpStream),
    /// An SCTP association (one-to-one style socket): message boundaries
    /// kept, several streams; see [`crate::transport::sctp`].
    #[cfg(feature = "sctp")]
    Sctp(tokio_sctp::SctpStream),
    /// A TLS connection over TCP, its handshake done by the listener (see
    /// [`ListenerSpec::tls`](super::ListenerSpec::tls)); ALPN's choice is
    /// in `get_ref().1.alpn_protocol()`.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Socket {
    /// The socket as a [`ByteStream`] if its transport is a byte stream
    /// (TCP, TLS); otherwise (SCTP) the socket itself, back.
    pub fn into_byte_stream(self) -> Result<ByteStream, Socket> {
        match self {
            Socket::Tcp(s) => Ok(s.into()),
            #[cfg(feature = "tls")]
            Socket::Tls(s) => Ok(s.into()),
            #[allow(unreachable_patterns)]
            other => Err(other),
        }
    }

    /// The transport this socket came over.
    pub fn transport(&self) -> crate::transport::Transport {
        use crate::transport::Transport;
        match self {
            Socket::Tcp(_) => Transport::Tcp,
            #[cfg(feature = "sctp")]
            Socket::Sctp(_) => Transport::Sctp,
            #[cfg(feature = "tls")]
            Socket::Tls(_) => Transport::Tls,
        }
    }
}

/// One accepted connection, handed to [`Protocol::serve`].
#[derive(Debug)]
pub struct Connection<M> {
    pub(crate) socket: Option<Socket>,
    pub(crate) peer: SocketAddr,
    pub(crate) listener: Arc<str>,
    pub(crate) draining: CancellationToken,
    pub(crate) inbox: Inbox<M>,
    pub(crate) handle: ConnectionRef<M>,
}

impl<M: Send + 'static> Connection<M> {
    /// Takes the socket (once).
    pub fn take_socket(&mut self) -> Option<Socket> {
        self.socket.take()
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// Cancelled when the connection should finish and close: the listener is
    /// draining for shutdown, or the connection was asked to drain.
    pub fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    /// Messages sent to this connection by the rest of the node.
    pub fn inbox(&mut self) -> &mut Inbox<M> {
        &mut self.inbox
    }

    /// A handle others can use to send this connection messages.
    pub fn handle(&self) -> ConnectionRef<M> {
        self.handle.clone()
    }

    /// Splits off the parts a protocol usually keeps: socket, inbox, drain token.
    pub fn into_parts(self) -> (Option<Socket>, Inbox<M>, CancellationToken) {
        (self.socket, self.inbox, self.draining)
    }
}

/// A handle to a connection: send it messages, ask it to drain.
#[derive(Debug)]
pub struct ConnectionRef<M> {
    pub(crate) tx: InboxSender<M>,
    pub(crate) draining: CancellationToken,
    pub(crate) peer: SocketAddr,
}

impl<M> Clone for ConnectionRef<M> {
    fn clone(&self) -> Self {
        ConnectionRef {
            tx: self.tx.clone(),
            draining: self.draining.clone(),
            peer: self.peer,
        }
    }
}

/// Why a message could not be delivered to a connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection's inbox is full: it is not keeping up.
    #[error("the connection's inbox is full")]
    Full,
    /// The connection is gone.
    #[error("the connection is closed")]
    Closed,
}

impl<M> ConnectionRef<M> {
    /// Delivers a message without waiting; a full inbox is an error, so a slow
    /// connection never stalls the sender.
    pub fn try_send(&self, msg: M) -> Result<(), SendError> {
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    /// Delivers a message, waiting for room in the inbox.
    pub async fn send(&self, msg: M) -> Result<(), SendError> {
        self.tx.send(msg).await.map_err(|_| SendError::Closed)
    }

    /// Asks the connection to finish and close.
    pub fn drain(&self) {
        self.draining.cancel();
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}
