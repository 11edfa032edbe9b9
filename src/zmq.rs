//! The ZeroMQ front: ZMTP 3.x (NULL security) endpoints for the clients of
//! the chat systems corral replaces, which speak ZeroMQ with MessagePack.
//!
//! Two listener protocols of the same tree, each connection its own
//! temporary actor as for every listener:
//!
//! - [`ZmqRouter`] (`protocol = "zmq_router"`, the seeds' broker port
//!   5555): REQ and DEALER peers send the same request envelopes as on TCP
//!   (`{"service": .., "data": {..}}`, MessagePack or JSON) and get the
//!   reply in their encoding, behind the envelope their message came with.
//! - [`ZmqXpub`] (`protocol = "zmq_xpub"`, the seeds' proxy port 5558): SUB
//!   peers subscribe by topic prefix and get each chat publication or
//!   private message as a topic frame (the channel's or user's name) and the
//!   event's MessagePack body.
//!
//! Both are off by default; one config block turns them on:
//!
//! ```toml
//! [[listener]]
//! name = "zmq"
//! protocol = "zmq_router"
//! port = 5555
//!
//! [[listener]]
//! name = "zmq_pub"
//! protocol = "zmq_xpub"
//! port = 5558
//! ```
//!
//! The framing and handshake are our own codec on tokio-util
//! (`src/zmq/codec.rs`): the published ZMTP crates own their sockets (zeromq,
//! rzmq) or are unmaintained (zmtp), and a listener of the tree must own
//! the accepted socket itself. Hostile input (a bad greeting, another
//! mechanism, a socket type that cannot talk to the endpoint, oversize or
//! malformed frames, a handshake never finished) closes that connection
//! with a log line, and nothing else.

pub(crate) mod codec;
pub(crate) mod handshake;
mod router;
mod settings;
mod xpub;

pub use codec::ZmtpError;
pub use router::{ZmqConnError, ZmqRouter};
pub use settings::ZmqSettings;
pub use xpub::ZmqXpub;
