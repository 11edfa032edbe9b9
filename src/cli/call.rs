//! `corral call SERVICE [JSON]`: one request, the reply printed as JSON.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use corral::client::{ClientError, Codec};
use serde_json::Value;

use super::tls::ClientTransport;

/// Arguments of `corral call`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CallArgs {
    /// The service to call (`ping`, `echo`, `compute`, `stats`, ...).
    pub service: String,
    /// The request's `data`, as JSON (default `{}`).
    pub data: Option<String>,
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub addr: String,
    /// Transport: tcp (length-prefixed frames), sctp (one message per body),
    /// tls (frames over TLS; see --tls-ca) or zmq (a ZeroMQ DEALER to a
    /// `zmq_router` endpoint or the seeds' broker).
    #[arg(long, default_value = "tcp", value_parser = parse_transport)]
    pub transport: ClientTransport,
    #[command(flatten)]
    pub tls: super::tls::TlsArgs,
    /// Body encoding.
    #[arg(long, default_value = "json", value_parser = parse_codec)]
    pub codec: Codec,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

/// Parses `--transport`.
pub(crate) fn parse_transport(s: &str) -> Result<ClientTransport, String> {
    ClientTransport::parse(s)
}

/// Parses `--codec`.
pub(crate) fn parse_codec(s: &str) -> Result<Codec, String> {
    s.parse()
}

/// Runs `corral call`: exit 0 with the reply's data on stdout, or 1 with the
/// error on stderr.
pub(crate) async fn run(args: CallArgs) -> anyhow::Result<ExitCode> {
    let data: Value = match &args.data {
        Some(text) => serde_json::from_str(text)
            .with_context(|| format!("the data argument is not JSON: {text}"))?,
        None => Value::Object(Default::default()),
    };
    let timeout = Duration::try_from_secs_f64(args.timeout).context("bad --timeout")?;
    let connector = args.tls.connector(args.transport)?;
    let outcome = tokio::time::timeout(timeout, async {
        let client = connector.client(args.addr.as_str(), args.codec).await?;
        client.call(&args.service, data).await
    })
    .await;
    match outcome {
        Ok(Ok(reply)) => {
            super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&reply)?));
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(ClientError::Rpc { code, message })) => {
            eprintln!("error: {code}: {message}");
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("calling {}", args.addr))),
        Err(_) => anyhow::bail!("no reply from {} within {:?}", args.addr, timeout),
    }
}
