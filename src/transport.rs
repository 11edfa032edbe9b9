//! Transports: the sockets that listeners accept and the client connects,
//! shared by both.
//!
//! - TCP, always;
//! - kernel SCTP ([`sctp`], feature `sctp`): one-to-one style sockets, whole
//!   messages on several streams; its settings are [`SctpOptions`];
//! - TLS over TCP ([`tls`], feature `tls`): rustls with the ring provider.
//!
//! A listener is configured with a [`Transport`] and a protocol; the
//! protocol gets the connected socket as a
//! [`listener::Socket`](crate::listener::Socket).

mod kind;
mod sctp_options;

#[cfg(feature = "sctp")]
pub mod sctp;
#[cfg(feature = "tls")]
pub mod tls;

pub use kind::Transport;
pub use sctp_options::SctpOptions;
