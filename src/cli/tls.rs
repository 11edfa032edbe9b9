//! `--tls`, `--tls-ca`, `--tls-insecure`, `--tls-server-name`: how the
//! tools connect over TLS, and the one place that turns the transport
//! arguments into a connection.

use std::path::PathBuf;

use clap::Args;
use corral::client::{Client, ClientError, Codec, FrameConn};
use corral::transport::tls::TlsClientOptions;
use corral::transport::Transport;

/// The TLS arguments shared by `call`, `client`, `bot` and `bench rpc`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TlsArgs {
    /// Connect over TLS (the same as `--transport tls`). Needs --tls-ca, or
    /// --tls-insecure for a self-signed test certificate.
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the CA certificate(s) to check the server's certificate
    /// against (for a self-signed certificate: the certificate itself).
    /// Implies --tls.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Trust any server certificate, unchecked: for tests against a
    /// self-signed certificate only (anyone on the path can pose as the
    /// server). Implies --tls.
    #[arg(long)]
    pub tls_insecure: bool,
    /// The name to check the server's certificate against, and to send as
    /// SNI (default: the host of --addr). Implies --tls.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

/// What `--transport` names: one of the node's transports, or ZeroMQ
/// (a DEALER to a `zmq_router` endpoint, or the seeds' broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientTransport {
    /// TCP, SCTP or TLS, with corral's framing.
    Plain(Transport),
    /// ZeroMQ (ZMTP 3, NULL security) over TCP.
    Zmq,
}

impl ClientTransport {
    /// Parses `tcp`, `sctp`, `tls` or `zmq`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let s = s.to_ascii_lowercase();
        if s == "zmq" {
            return Ok(ClientTransport::Zmq);
        }
        Transport::try_from(s.clone())
            .map(ClientTransport::Plain)
            .map_err(|_| format!("unknown transport {s:?}, expected tcp, sctp, tls or zmq"))
    }
}

/// How a tool connects: a plain transport, TLS with its options, or ZeroMQ.
#[derive(Debug, Clone)]
pub(crate) enum Connector {
    /// TCP or SCTP.
    Plain(Transport),
    /// TLS over TCP.
    Tls(TlsClientOptions),
    /// ZeroMQ: a DEALER connection.
    Zmq,
}

impl TlsArgs {
    fn wants_tls(&self) -> bool {
        self.tls || self.tls_ca.is_some() || self.tls_insecure || self.tls_server_name.is_some()
    }

    /// The connector `transport` and these arguments ask for; an error when
    /// they contradict each other or TLS has nothing to trust. Warns on
    /// stderr about --tls-insecure.
    pub(crate) fn connector(&self, transport: ClientTransport) -> anyhow::Result<Connector> {
        let transport = match transport {
            ClientTransport::Zmq if self.wants_tls() => anyhow::bail!(
                "ZeroMQ's NULL security has no TLS: --tls and its options do not go with \
                 --transport zmq"
            ),
            ClientTransport::Zmq => return Ok(Connector::Zmq),
            ClientTransport::Plain(t) => t,
        };
        let tls = transport == Transport::Tls || self.wants_tls();
        if !tls {
            return Ok(Connector::Plain(transport));
        }
        if transport != Transport::Tls && transport != Transport::Tcp {
            anyhow::bail!(
                "TLS runs over TCP: --tls and its options do not go with --transport {transport}"
            );
        }
        let mut opts = match (&self.tls_ca, self.tls_insecure) {
            (Some(ca), insecure) => TlsClientOptions::ca_file(ca).with_insecure(insecure),
            (None, true) => TlsClientOptions::insecure(),
            (None, false) => anyhow::bail!(
                "TLS needs to know whom to trust: give --tls-ca FILE (the CA, or the \
                 server's self-signed certificate), or --tls-insecure for a test server"
            ),
        };
        if self.tls_insecure {
            eprintln!(
                "warning: --tls-insecure: the server's certificate is not checked; \
                 anyone on the path can pose as the server"
            );
        }
        if let Some(name) = &self.tls_server_name {
            opts = opts.server_name(name);
        }
        Ok(Connector::Tls(opts))
    }
}

impl Connector {
    /// A frame connection to `addr`.
    pub(crate) async fn frames(&self, addr: &str) -> Result<FrameConn, ClientError> {
        match self {
            Connector::Plain(transport) => FrameConn::connect_over(addr, *transport).await,
            Connector::Tls(opts) => FrameConn::connect_tls(addr, opts).await,
            Connector::Zmq => FrameConn::connect_zmq(addr).await,
        }
    }

    /// A pipelined client of `addr`.
    pub(crate) async fn client(&self, addr: &str, codec: Codec) -> Result<Client, ClientError> {
        Ok(Client::new(self.frames(addr).await?, codec))
    }

    /// The transport's name, for summaries.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Connector::Plain(t) => t.as_str(),
            Connector::Tls(_) => "tls",
            Connector::Zmq => "zmq",
        }
    }
}
