//! Command-line only code: argument groups, logging set-up, and the `call`,
//! `check-config`, `bench`, `client`, `bot`, `observe` and `store` subcommands. Not part
//! of the library.

pub(crate) mod bench;
pub(crate) mod bot;
pub(crate) mod call;
pub(crate) mod chat_client;
pub(crate) mod logging;
pub(crate) mod observe;
pub(crate) mod store;
pub(crate) mod tls;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use corral::config::{Config, LogFormat, Overrides};

/// `--config` and `--env`: which configuration to load.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConfigArgs {
    /// Base configuration file (default: the embedded default, config/sys.toml).
    #[arg(long, short = 'c', value_name = "FILE", env = "CORRAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Environment whose file is read over the base: `<dir of FILE>/<ENV>.toml`
    /// (config/<ENV>.toml without --config).
    #[arg(long, short = 'e', value_name = "ENV", env = "CORRAL_ENV")]
    pub env: Option<String>,
}

impl ConfigArgs {
    /// Loads and validates the configuration these arguments name.
    pub(crate) fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref(), self.env.as_deref())?)
    }

    /// Loads the configuration with the command line's `overrides` over it,
    /// and validates the result.
    pub(crate) fn load_with(&self, overrides: &Overrides) -> anyhow::Result<Config> {
        Ok(Config::load_with_overrides(
            self.config.as_deref(),
            self.env.as_deref(),
            std::env::vars(),
            overrides,
        )?)
    }

    /// Describes the layers, for messages: `config/sys.toml + config/dev.toml`.
    pub(crate) fn describe(&self) -> String {
        let base = match &self.config {
            Some(p) => p.display().to_string(),
            None => "embedded default".to_string(),
        };
        match &self.env {
            Some(env) => {
                let dir = match &self.config {
                    Some(p) => p.parent().map(|d| d.to_path_buf()).unwrap_or_default(),
                    None => PathBuf::from("config"),
                };
                format!("{base} + {}", dir.join(format!("{env}.toml")).display())
            }
            None => base,
        }
    }
}

/// `--host`, `--port`, `--workers`: ThreadCenter's server command line, as
/// shorthands over the configuration (applied after the files and the
/// `CORRAL__` variables: a flag wins). Taken as text and checked here, so
/// that a bad value is refused as a bad configuration is (exit status 1,
/// the flag named), not as a usage error.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ServeFlags {
    /// Address of the RPC listener: an IP address or a host name. Sets the
    /// `address` of the first [[listener]] with protocol "rpc" on transport
    /// "tcp" (without one, the first with protocol "rpc").
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Port of the RPC listener (1-65535): the same listener as --host.
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Threads of the compute pool (`[rpc] compute_workers`), 1-1024.
    #[arg(long, value_name = "N")]
    pub workers: Option<String>,
}

impl ServeFlags {
    /// The flags as configuration overrides; a value that is not a number
    /// in range is an error naming its flag.
    pub(crate) fn overrides(&self) -> anyhow::Result<Overrides> {
        let port = match self.port.as_deref().map(str::trim) {
            None => None,
            Some(text) => match text.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => bail!("invalid `--port {text}`: a port is a number from 1 to 65535"),
            },
        };
        let workers = match self.workers.as_deref().map(str::trim) {
            None => None,
            Some(text) => match text.parse::<usize>() {
                Ok(w) if w > 0 => Some(w),
                _ => bail!("invalid `--workers {text}`: the compute pool needs 1 to 1024 threads"),
            },
        };
        Ok(Overrides {
            rpc_address: self.host.as_deref().map(|h| h.trim().to_string()),
            rpc_port: port,
            compute_workers: workers,
        })
    }
}

/// `corral serve`'s arguments: which configuration, and the flags over it.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub flags: ServeFlags,
}

impl ServeArgs {
    /// Loads the configuration, the flags over it, and validates the result.
    pub(crate) fn load(&self) -> anyhow::Result<Config> {
        self.config.load_with(&self.flags.overrides()?)
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Pretty => LogFormat::Pretty,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// `corral check-config`: prints `OK` and a summary, or the error (exit 1).
pub(crate) fn check_config(args: &ServeArgs, print: bool) -> ExitCode {
    let loaded = args
        .flags
        .overrides()
        .and_then(|o| args.config.load_with(&o).map(|c| (c, o)));
    let (config, overrides) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let env_vars: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CORRAL__"))
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "OK: {}", args.config.describe());
    if !env_vars.is_empty() {
        let _ = writeln!(out, "  overridden by: {}", env_vars.join(", "));
    }
    if !overrides.is_empty() {
        let _ = writeln!(out, "  command line: {}", overrides.describe());
    }
    let _ = writeln!(
        out,
        "  node {:?}: data_dir {}, shutdown_timeout {} ms",
        config.node.name,
        config.node.data_dir.display(),
        config.node.shutdown_timeout_ms
    );
    for l in &config.served_listeners() {
        let _ = writeln!(
            out,
            "  listener {:?}: {} {} on {} (backlog {}, max_connections {}, drain {} ms)",
            l.name,
            l.protocol,
            l.transport,
            l.bind_address(),
            l.backlog,
            l.max_connections,
            l.drain_timeout_ms
        );
        if let (Some(cert), Some(key)) = (&l.tls_cert, &l.tls_key) {
            let _ = writeln!(
                out,
                "    tls: cert {}, key {}, handshake timeout {} ms",
                cert.display(),
                key.display(),
                l.tls_handshake_timeout_ms
            );
        }
    }
    if config.http.tls_cert.is_some() {
        let _ = writeln!(
            out,
            "  warning: [http] tls_cert and tls_key are deprecated: give the HTTP \
             listeners transport = \"tls\" and their own tls_cert and tls_key"
        );
    }
    let _ = writeln!(
        out,
        "  rpc: max_frame_bytes {}, max_in_flight {}, idle_timeout {} ms, \
         write_stall_timeout {} ms, compute_workers {}",
        config.rpc.max_frame_bytes,
        config.rpc.max_in_flight,
        config.rpc.idle_timeout_ms,
        config.rpc.write_stall_timeout_ms,
        config.rpc.effective_compute_workers()
    );
    let _ = writeln!(
        out,
        "  metrics: {}; log: {} ({})",
        if config.metrics.enabled { "on" } else { "off" },
        config.log.level,
        config.log.format
    );
    if print {
        match serde_json::to_string_pretty(&config) {
            Ok(s) => {
                let _ = writeln!(out, "{s}");
            }
            Err(e) => {
                eprintln!("error: cannot print the configuration: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    print_stdout(&out);
    ExitCode::SUCCESS
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
