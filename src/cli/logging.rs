//! Logging set-up: tracing-subscriber with an EnvFilter; `RUST_LOG`
//! overrides the configured level. Logs go to stderr.

use anyhow::{anyhow, Context};
use corral::config::LogFormat;
use tracing_subscriber::EnvFilter;

use super::LogFormatArg;

/// Installs the global subscriber: `RUST_LOG` if set, else `level`.
pub(crate) fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).with_context(|| format!("bad RUST_LOG {v:?}"))?
        }
        _ => EnvFilter::try_new(level).with_context(|| format!("bad log level {level:?}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    }
    .map_err(|e| anyhow!("cannot install the logger: {e}"))
}

/// Logging for the client tools (`call`, `bench`): warnings only, unless
/// `RUST_LOG` says otherwise.
pub(crate) fn init_for_tool(format: Option<LogFormatArg>) -> anyhow::Result<()> {
    init("warn", format.map_or(LogFormat::Pretty, Into::into))
}
