//! The transport a listener binds or a client connects over.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The transport a listener binds or a client connects over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
#[non_exhaustive]
pub enum Transport {
    /// TCP: a byte stream.
    Tcp,
    /// Kernel SCTP, one-to-one style: messages on several streams.
    Sctp,
    /// TLS over TCP (rustls): a byte stream, encrypted; the listener does
    /// the handshake and hands the protocol the decrypted stream.
    Tls,
}

impl Transport {
    /// True for the transports that carry a byte stream (TCP, TLS), as
    /// opposed to whole messages (SCTP).
    pub fn is_stream(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// Its name in configuration files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Sctp => "sctp",
            Transport::Tls => "tls",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Transport {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "sctp" => Ok(Transport::Sctp),
            "tls" => Ok(Transport::Tls),
            other => Err(format!(
                "unknown transport {other:?}, expected \"tcp\", \"sctp\" or \"tls\""
            )),
        }
    }
}
