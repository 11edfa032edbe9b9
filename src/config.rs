//! Typed settings, loaded in layers with the `config` crate.
//!
//! A node's settings come from, lowest to highest precedence:
//!
//! 1. a base: the file given with `--config`, or the embedded default (the
//!    text of `config/sys.toml`, compiled into the binary);
//! 2. the environment's file beside it (`--env dev` reads `<dir>/dev.toml`);
//! 3. `CORRAL__SECTION__KEY` environment variables (for example
//!    `CORRAL__RPC__MAX_FRAME_BYTES=65536`, `CORRAL__NODE__NAME=a`). A list
//!    given this way is comma-separated:
//!    `CORRAL__CLUSTER__SERVERS=nats://127.0.0.1:4222,nats://127.0.0.1:4223`
//!    (`cluster.servers` is the one list key read so).
//!
//! 4. [`Overrides`]: the command line's shorthands (`corral serve --host H
//!    --port P --workers N`), over everything else.
//!
//! Tables merge key by key; arrays (the `[[listener]]` list) are replaced as a
//! whole by a higher layer that has one. Every field has a default, so a file
//! may hold only what it changes.
//!
//! A bad value (wrong type, unknown key, unknown transport, port out of range,
//! zero `max_connections`, duplicate listener names, ...) is a [`ConfigError`]
//! whose message names the key (`listener[0].max_connections`) and where the
//! value came from (a file, `environment variable CORRAL__...`, or the
//! embedded default).
//!
//! ```
//! let config = corral::config::Config::load(None, None).expect("embedded default is valid");
//! assert_eq!(config.node.name, "corral");
//! assert_eq!(config.listeners[0].port, 7070);
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Environment, File, FileFormat};
use serde::{Deserialize, Serialize};

#[cfg(feature = "chat")]
use crate::chat::ChatSettings;
#[cfg(feature = "cluster")]
use crate::cluster::ClusterSettings;
#[cfg(feature = "http")]
use crate::http::{CacheSettings, HttpSettings};
#[cfg(feature = "http")]
use crate::observer::ObserverSettings;
use crate::rpc::RpcSettings;
use crate::transport::{SctpOptions, Transport};
#[cfg(feature = "zmq")]
use crate::zmq::ZmqSettings;

/// The text of `config/sys.toml`: the embedded default and the reference for
/// every key.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/sys.toml");

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "CORRAL";

/// Separator between prefix, section and key in those variables.
pub const ENV_SEPARATOR: &str = "__";

/// Where a setting came from; named in every [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The default compiled into the binary (`config/sys.toml`).
    Embedded,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A built-in default value that no layer set.
    Default,
    /// A command-line flag (its name, `--port`), applied over every layer.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Embedded => f.write_str("embedded default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Default => f.write_str("built-in default"),
            Origin::Flag(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file is not valid TOML.
    #[error("syntax error in {origin}: {message}")]
    Parse {
        /// The file (or the embedded default).
        origin: Origin,
        /// The parser's message.
        message: String,
    },
    /// A key has a bad value, or is unknown.
    #[error("invalid `{key}` in {origin}: {message}")]
    Invalid {
        /// The key, as a path: `rpc.max_frame_bytes`, `listener[0].port`.
        key: String,
        /// Where the bad value came from.
        origin: Origin,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// The key named by the error, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A section's own check: `Err((key within the section, what is wrong))`.
type Checked = Result<(), (String, String)>;

/// A node's whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`: the node as a whole.
    pub node: NodeConfig,
    /// `[[listener]]`: the listeners, in start order.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// `[rpc]`: the RPC protocol.
    pub rpc: RpcSettings,
    /// `[http]`: the HTTP protocol.
    #[cfg(feature = "http")]
    pub http: HttpSettings,
    /// Read and ignored in a build without HTTP.
    #[cfg(not(feature = "http"))]
    #[serde(skip_serializing)]
    http: serde::de::IgnoredAny,
    /// `[sctp]`: kernel SCTP, for every listener with transport "sctp".
    pub sctp: SctpOptions,
    /// `[cache]`: the static file cache.
    #[cfg(feature = "http")]
    pub cache: CacheSettings,
    #[cfg(not(feature = "http"))]
    #[serde(skip_serializing)]
    cache: serde::de::IgnoredAny,
    /// `[chat]`: the chat services, hub and store.
    #[cfg(feature = "chat")]
    pub chat: ChatSettings,
    #[cfg(not(feature = "chat"))]
    #[serde(skip_serializing)]
    chat: serde::de::IgnoredAny,
    /// `[cluster]`: the chat replicated across nodes on NATS JetStream.
    #[cfg(feature = "cluster")]
    pub cluster: ClusterSettings,
    #[cfg(not(feature = "cluster"))]
    #[serde(skip_serializing)]
    cluster: serde::de::IgnoredAny,
    /// `[zmq]`: the ZeroMQ endpoints.
    #[cfg(feature = "zmq")]
    pub zmq: ZmqSettings,
    #[cfg(not(feature = "zmq"))]
    #[serde(skip_serializing)]
    zmq: serde::de::IgnoredAny,
    /// `[observer]`: the live view at `/observer/` and its actions.
    #[cfg(feature = "http")]
    pub observer: ObserverSettings,
    #[cfg(not(feature = "http"))]
    #[serde(skip_serializing)]
    observer: serde::de::IgnoredAny,
    /// `[metrics]`: Prometheus metrics.
    pub metrics: MetricsConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
}

impl Default for Config {
    /// The built-in defaults; equal to [`Config::embedded_default`].
    fn default() -> Self {
        Config {
            node: NodeConfig::default(),
            listeners: vec![
                ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 7070),
                ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 8080),
            ],
            rpc: RpcSettings::default(),
            http: Default::default(),
            sctp: SctpOptions::default(),
            cache: Default::default(),
            chat: Default::default(),
            cluster: Default::default(),
            zmq: Default::default(),
            observer: Default::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// `[node]`: the node as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The node's name (logs, metrics, cluster later). Default `"corral"`.
    pub name: String,
    /// How long a whole node may take to shut down, in ms: every listener
    /// stops accepting at once and all drain in parallel, then the tree
    /// stops; what is left in the last tenth (at most 1 s) is killed.
    /// Default 10000.
    pub shutdown_timeout_ms: u64,
    /// Directory for durable data. Default `"./data"`.
    pub data_dir: PathBuf,
    /// Threads of the node's async runtime, the scheduler threads that run
    /// every actor and connection (Erlang's `+S`, nginx's
    /// `worker_processes`). 0, the default, means one per CPU.
    pub worker_threads: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "corral".into(),
            shutdown_timeout_ms: 10_000,
            data_dir: PathBuf::from("./data"),
            worker_threads: 0,
        }
    }
}

impl NodeConfig {
    /// [`NodeConfig::shutdown_timeout_ms`] as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// The runtime's thread count: [`NodeConfig::worker_threads`], or the
    /// number of CPUs when it is 0.
    pub fn effective_worker_threads(&self) -> usize {
        if self.worker_threads > 0 {
            self.worker_threads
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}

/// The protocol a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum ProtocolKind {
    /// The length-framed JSON / MessagePack RPC protocol (core and chat services).
    Rpc,
    /// HTTP/1.1.
    Http,
    /// ZeroMQ's request endpoint (a ROUTER socket for REQ and DEALER
    /// peers), serving the RPC and chat services (module `zmq`).
    ZmqRouter,
    /// ZeroMQ's publication endpoint (an XPUB socket for SUB peers),
    /// publishing the chat (module `zmq`).
    ZmqXpub,
}

impl ProtocolKind {
    /// True when this build serves the protocol (its cargo feature is on).
    pub fn is_built(self) -> bool {
        match self {
            ProtocolKind::Rpc => true,
            ProtocolKind::Http => cfg!(feature = "http"),
            ProtocolKind::ZmqRouter | ProtocolKind::ZmqXpub => cfg!(feature = "zmq"),
        }
    }

    /// The port a listener of this protocol gets when its `port` is not set.
    pub fn default_port(self) -> u16 {
        match self {
            ProtocolKind::Rpc => 7070,
            ProtocolKind::Http => 8080,
            ProtocolKind::ZmqRouter => 5555,
            ProtocolKind::ZmqXpub => 5558,
        }
    }
}

impl fmt::Display for ProtocolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolKind::Rpc => "rpc",
            ProtocolKind::Http => "http",
            ProtocolKind::ZmqRouter => "zmq_router",
            ProtocolKind::ZmqXpub => "zmq_xpub",
        })
    }
}

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawListener")]
pub struct ListenerConfig {
    /// Unique name (metrics label, supervisor name). Defaults to the protocol's name.
    pub name: String,
    /// `"tcp"` (default), `"sctp"` or `"tls"`.
    pub transport: Transport,
    /// `"rpc"` (default) or `"http"`.
    pub protocol: ProtocolKind,
    /// Address to bind. Default `"127.0.0.1"`.
    pub address: String,
    /// Port to bind; 0 picks a free port. Defaults to 7070 for rpc, 8080 for http.
    pub port: u16,
    /// Listen backlog. Default 1024.
    pub backlog: u32,
    /// Most connections open at once; more wait in the backlog. Default 10000.
    pub max_connections: usize,
    /// How long connections may take to finish at shutdown, in ms. Default 5000.
    pub drain_timeout_ms: u64,
    /// PEM file of the TLS certificate chain: required with transport
    /// `"tls"`, refused with any other. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the TLS private key (PKCS#8, PKCS#1 or SEC1): required
    /// with transport `"tls"`, refused with any other. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// How long a client may take to complete the TLS handshake, in ms
    /// (transport `"tls"`). Default 10000.
    pub tls_handshake_timeout_ms: u64,
}

impl ListenerConfig {
    /// A listener with the default address, backlog, limits and timeouts.
    pub fn new(name: &str, transport: Transport, protocol: ProtocolKind, port: u16) -> Self {
        ListenerConfig {
            name: name.into(),
            transport,
            protocol,
            address: "127.0.0.1".into(),
            port,
            backlog: 1024,
            max_connections: 10_000,
            drain_timeout_ms: 5_000,
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_ms: 10_000,
        }
    }

    /// This listener on transport `"tls"` with the certificate chain and
    /// private key in these PEM files.
    pub fn with_tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.transport = Transport::Tls;
        self.tls_cert = Some(cert.into());
        self.tls_key = Some(key.into());
        self
    }

    /// [`ListenerConfig::tls_handshake_timeout_ms`] as a duration.
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls_handshake_timeout_ms)
    }

    /// [`ListenerConfig::drain_timeout_ms`] as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// `address:port`, bracketing IPv6 addresses, ready for `ToSocketAddrs`.
    pub fn bind_address(&self) -> String {
        if self.address.contains(':') && !self.address.starts_with('[') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// The on-disk shape of a listener: every field optional, unknown keys refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Option<String>,
    transport: Option<Transport>,
    protocol: Option<ProtocolKind>,
    address: Option<String>,
    port: Option<u16>,
    backlog: Option<u32>,
    max_connections: Option<usize>,
    drain_timeout_ms: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_handshake_timeout_ms: Option<u64>,
}

impl From<RawListener> for ListenerConfig {
    fn from(raw: RawListener) -> Self {
        let protocol = raw.protocol.unwrap_or(ProtocolKind::Rpc);
        let transport = raw.transport.unwrap_or(Transport::Tcp);
        let name = raw.name.unwrap_or_else(|| protocol.to_string());
        let mut l = ListenerConfig::new(
            &name,
            transport,
            protocol,
            raw.port.unwrap_or(protocol.default_port()),
        );
        if let Some(a) = raw.address {
            l.address = a;
        }
        if let Some(b) = raw.backlog {
            l.backlog = b;
        }
        if let Some(m) = raw.max_connections {
            l.max_connections = m;
        }
        if let Some(d) = raw.drain_timeout_ms {
            l.drain_timeout_ms = d;
        }
        l.tls_cert = raw.tls_cert;
        l.tls_key = raw.tls_key;
        if let Some(t) = raw.tls_handshake_timeout_ms {
            l.tls_handshake_timeout_ms = t;
        }
        l
    }
}

/// `[metrics]`: Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Collect metrics and serve `/metrics` on HTTP listeners. Default true.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        })
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing_subscriber::EnvFilter` directive (`info`, `corral=debug,info`).
    /// `RUST_LOG` overrides it. Default `"info"`.
    pub level: String,
    /// `"pretty"` (default) or `"json"`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Pretty,
        }
    }
}

impl TryFrom<String> for ProtocolKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "rpc" => Ok(ProtocolKind::Rpc),
            "http" => Ok(ProtocolKind::Http),
            "zmq_router" => Ok(ProtocolKind::ZmqRouter),
            "zmq_xpub" => Ok(ProtocolKind::ZmqXpub),
            other => Err(format!(
                "unknown protocol {other:?}, expected \"rpc\", \"http\", \"zmq_router\" or \"zmq_xpub\""
            )),
        }
    }
}

impl TryFrom<String> for LogFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}, expected \"pretty\" or \"json\""
            )),
        }
    }
}

/// Settings given on the command line (`corral serve --host H --port P
/// --workers N`), applied over every other layer: a flag wins over the files
/// and the `CORRAL__` variables. `--host` and `--port` set the RPC listener
/// of [`Config::rpc_listener_index`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--host`: the RPC listener's `address` (an IP address or host name).
    pub rpc_address: Option<String>,
    /// `--port`: the RPC listener's `port`, 1 to 65535 (no "any free port").
    pub rpc_port: Option<u16>,
    /// `--workers`: `rpc.compute_workers`, the compute pool (at least 1).
    pub compute_workers: Option<usize>,
}

impl Overrides {
    /// True when no flag is set.
    pub fn is_empty(&self) -> bool {
        self.rpc_address.is_none() && self.rpc_port.is_none() && self.compute_workers.is_none()
    }

    /// The flags set, as named on the command line: `--host, --port`.
    pub fn describe(&self) -> String {
        let mut flags = Vec::new();
        if let Some(h) = &self.rpc_address {
            flags.push(format!("--host {h}"));
        }
        if let Some(p) = self.rpc_port {
            flags.push(format!("--port {p}"));
        }
        if let Some(w) = self.compute_workers {
            flags.push(format!("--workers {w}"));
        }
        flags.join(", ")
    }
}

/// One layer of configuration and where it came from.
struct Layer {
    origin: Origin,
    config: config::Config,
}

impl Config {
    /// Loads the configuration: the file at `path` (or the embedded default),
    /// then `<dir of path>/<env>.toml` (or `config/<env>.toml` without a path)
    /// over it, then `CORRAL__SECTION__KEY` environment variables; and
    /// validates the result.
    pub fn load(path: Option<&Path>, env: Option<&str>) -> Result<Config, ConfigError> {
        Self::load_with_vars(path, env, std::env::vars())
    }

    /// Like [`Config::load`], but takes the environment variables from `vars`
    /// instead of the process environment (for tests and embedding). Only
    /// variables starting with `CORRAL__` are used.
    pub fn load_with_vars(
        path: Option<&Path>,
        env: Option<&str>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Self::load_with_overrides(path, env, vars, &Overrides::default())
    }

    /// Like [`Config::load_with_vars`], then the command line's
    /// `overrides` over the result, before it is validated. A bad flag is
    /// an error naming it ([`Origin::Flag`]).
    pub fn load_with_overrides(
        path: Option<&Path>,
        env: Option<&str>,
        vars: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut layers = Vec::with_capacity(3);
        match path {
            Some(p) => layers.push(file_layer(p)?),
            None => layers.push(toml_layer(Origin::Embedded, EMBEDDED_DEFAULT)?),
        }
        if let Some(env) = env {
            if env.is_empty() || env.contains(['/', '\\']) || env.starts_with('.') {
                return Err(ConfigError::Invalid {
                    key: "--env".into(),
                    origin: Origin::Default,
                    message: format!("{env:?} is not an environment name"),
                });
            }
            let dir = match path {
                Some(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
                None => PathBuf::from("config"),
            };
            layers.push(file_layer(&dir.join(format!("{env}.toml")))?);
        }
        let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
        let vars: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.to_ascii_uppercase().starts_with(&prefix))
            .collect();
        if !vars.is_empty() {
            let source = Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                // Lists: a comma-separated value, for these keys only.
                .list_separator(",")
                .with_list_parse_key("cluster.servers")
                .source(Some(vars.into_iter().collect()));
            let config = config::Config::builder()
                .add_source(source)
                .build()
                .map_err(|e| ConfigError::Parse {
                    origin: Origin::Env(format!("{prefix}*")),
                    message: e.to_string(),
                })?;
            layers.push(Layer {
                origin: Origin::Env(String::new()),
                config,
            });
        }

        // Each layer alone must deserialize: this names the layer of a bad value.
        for layer in &layers {
            if let Err(e) = layer.config.clone().try_deserialize::<Config>() {
                let (key, message) = split_error(e);
                let origin = match &layer.origin {
                    Origin::Env(_) => Origin::Env(env_var_name(&key)),
                    o => o.clone(),
                };
                return Err(ConfigError::Invalid {
                    key,
                    origin,
                    message,
                });
            }
        }

        let mut builder = config::Config::builder();
        for layer in &layers {
            builder = builder.add_source(layer.config.clone());
        }
        let mut merged = builder
            .build()
            .and_then(|c| c.try_deserialize::<Config>())
            .map_err(|e| {
                let (key, message) = split_error(e);
                let origin = origin_of(&layers, &key);
                ConfigError::Invalid {
                    key,
                    origin,
                    message,
                }
            })?;
        // The embedded default lists a listener per protocol; a build
        // without one of them serves the others.
        if origin_of(&layers, "listener") == Origin::Embedded {
            merged.listeners.retain(|l| l.protocol.is_built());
        }
        let before = (!overrides.is_empty()).then(|| merged.clone());
        let applied = merged.apply(overrides)?;
        if let Err((key, message)) = merged.check() {
            let origin = match applied.iter().find(|(k, _)| *k == key) {
                Some((_, flag)) => Origin::Flag((*flag).to_string()),
                // Valid without the flags: they made the conflict (a port
                // another listener has), so they are named.
                None if before.is_some_and(|c| c.check().is_ok()) => Origin::Flag(
                    applied
                        .iter()
                        .map(|(_, flag)| *flag)
                        .collect::<Vec<_>>()
                        .join(" and "),
                ),
                None => origin_of(&layers, &key),
            };
            return Err(ConfigError::Invalid {
                key,
                origin,
                message,
            });
        }
        Ok(merged)
    }

    /// The listener that `--host` and `--port` set: the first
    /// `[[listener]]` whose protocol is "rpc" on transport "tcp", else the
    /// first whose protocol is "rpc" (TLS or SCTP); `None` without one.
    pub fn rpc_listener_index(&self) -> Option<usize> {
        let rpc = |l: &&ListenerConfig| l.protocol == ProtocolKind::Rpc;
        self.listeners
            .iter()
            .position(|l| rpc(&l) && l.transport == Transport::Tcp)
            .or_else(|| self.listeners.iter().position(|l| rpc(&l)))
    }

    /// Sets what `overrides` gives; returns the keys set and the flag that
    /// set each. Refuses the values [`Config::check`] would let through but
    /// a flag may not have (port 0, no workers) and flags with no RPC
    /// listener to apply to.
    fn apply(&mut self, o: &Overrides) -> Result<Vec<(String, &'static str)>, ConfigError> {
        let flag_error = |key: String, flag: &str, message: String| ConfigError::Invalid {
            key,
            origin: Origin::Flag(flag.to_string()),
            message,
        };
        let mut applied = Vec::new();
        if let Some(workers) = o.compute_workers {
            let key = "rpc.compute_workers".to_string();
            if workers == 0 {
                let message = "must be at least 1".to_string();
                return Err(flag_error(key, "--workers", message));
            }
            self.rpc.compute_workers = workers;
            applied.push((key, "--workers"));
        }
        let listener_flags = [
            ("--host", o.rpc_address.is_some()),
            ("--port", o.rpc_port.is_some()),
        ];
        for (flag, set) in listener_flags {
            if set && self.rpc_listener_index().is_none() {
                let message = "no listener has protocol \"rpc\" for it to set".to_string();
                return Err(flag_error("listener".into(), flag, message));
            }
        }
        let Some(i) = self.rpc_listener_index() else {
            return Ok(applied);
        };
        let listener = &mut self.listeners[i];
        if let Some(address) = &o.rpc_address {
            listener.address.clone_from(address);
            applied.push((format!("listener[{i}].address"), "--host"));
        }
        if let Some(port) = o.rpc_port {
            let key = format!("listener[{i}].port");
            if port == 0 {
                let message = "must be between 1 and 65535".to_string();
                return Err(flag_error(key, "--port", message));
            }
            listener.port = port;
            applied.push((key, "--port"));
        }
        Ok(applied)
    }

    /// The embedded default (`config/sys.toml`), as parsed from its text.
    pub fn embedded_default() -> Config {
        // The embedded text is checked by the tests; should it ever fail,
        // fall back to the identical built-in defaults rather than panic.
        Self::load_with_vars(None, None, std::iter::empty()).unwrap_or_default()
    }

    /// The listeners as the node serves them: [`Config::listeners`], except
    /// that while the deprecated `[http] tls_cert` and `tls_key` are set, an
    /// HTTP listener on transport `"tcp"` is served on `"tls"` with those
    /// files (as before listeners had TLS of their own).
    pub fn served_listeners(&self) -> Vec<ListenerConfig> {
        #[cfg_attr(not(feature = "http"), allow(unused_mut))]
        let mut listeners = self.listeners.clone();
        #[cfg(feature = "http")]
        if let (Some(cert), Some(key)) = (&self.http.tls_cert, &self.http.tls_key) {
            for l in &mut listeners {
                if l.protocol == ProtocolKind::Http && l.transport == Transport::Tcp {
                    *l = l.clone().with_tls(cert.clone(), key.clone());
                    l.tls_handshake_timeout_ms = self.http.header_read_timeout_ms;
                }
            }
        }
        listeners
    }

    /// Checks the values that types alone cannot: ranges, names, conflicts.
    /// On failure returns the key and what is wrong with it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|(key, message)| ConfigError::Invalid {
            key,
            origin: Origin::Default,
            message,
        })
    }

    fn check(&self) -> Result<(), (String, String)> {
        fn bad(key: impl Into<String>, msg: impl Into<String>) -> Result<(), (String, String)> {
            Err((key.into(), msg.into()))
        }
        if self.node.name.trim().is_empty() {
            return bad("node.name", "must not be empty");
        }
        if self.node.data_dir.as_os_str().is_empty() {
            return bad("node.data_dir", "must not be empty");
        }
        if self.node.worker_threads > 1024 {
            return bad(
                "node.worker_threads",
                "must be at most 1024 (0 = one per CPU)",
            );
        }
        let sections: Vec<(&str, Checked)> = vec![
            ("rpc", self.rpc.check()),
            #[cfg(feature = "http")]
            ("http", self.http.check()),
            #[cfg(feature = "http")]
            ("cache", self.cache.check()),
            #[cfg(feature = "chat")]
            ("chat", self.chat.check()),
            #[cfg(feature = "cluster")]
            ("cluster", self.cluster.check()),
            #[cfg(feature = "zmq")]
            ("zmq", self.zmq.check()),
            #[cfg(feature = "http")]
            ("observer", self.observer.check()),
        ];
        for (section, checked) in sections {
            if let Err((key, message)) = checked {
                return bad(format!("{section}.{key}"), message);
            }
        }
        #[cfg(feature = "cluster")]
        if self.cluster.enabled {
            if !self.chat.enabled {
                return bad(
                    "cluster.enabled",
                    "the cluster replicates the chat: it needs chat.enabled = true",
                );
            }
            // The node's name is its key in the members bucket.
            let kv_key = |b: u8| b.is_ascii_alphanumeric() || b"-_=".contains(&b);
            if !self.node.name.bytes().all(kv_key) {
                return bad(
                    "node.name",
                    "in a cluster, a node's name is made of letters, digits, -, _ and =",
                );
            }
        }
        let mut names = HashSet::new();
        let mut binds = HashSet::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let k = |f: &str| format!("listener[{i}].{f}");
            if l.name.trim().is_empty() {
                return bad(k("name"), "must not be empty");
            }
            if !names.insert(l.name.as_str()) {
                return bad(k("name"), format!("duplicate listener name {:?}", l.name));
            }
            if !valid_address(&l.address) {
                return bad(
                    k("address"),
                    format!("{:?} is not an IP address or host name", l.address),
                );
            }
            // TCP and TLS listeners share TCP's ports.
            let space = if l.transport == Transport::Sctp {
                Transport::Sctp
            } else {
                Transport::Tcp
            };
            if l.port != 0 && !binds.insert((space, l.address.as_str(), l.port)) {
                return bad(
                    k("port"),
                    format!(
                        "{} {}:{} is already used by another listener",
                        l.transport, l.address, l.port
                    ),
                );
            }
            if l.backlog == 0 {
                return bad(k("backlog"), "must be at least 1");
            }
            if l.max_connections == 0 {
                return bad(k("max_connections"), "must be at least 1");
            }
            if !l.protocol.is_built() {
                return bad(
                    k("protocol"),
                    format!(
                        "this build of corral has no {:?} protocol (cargo feature \"{}\")",
                        l.protocol.to_string(),
                        l.protocol
                    ),
                );
            }
            if l.transport == Transport::Sctp && !cfg!(feature = "sctp") {
                return bad(
                    k("transport"),
                    "this build of corral has no SCTP (cargo feature \"sctp\")",
                );
            }
            let zmq = matches!(l.protocol, ProtocolKind::ZmqRouter | ProtocolKind::ZmqXpub);
            if zmq && l.transport != Transport::Tcp {
                return bad(
                    k("transport"),
                    format!(
                        "protocol {:?} is served over transport \"tcp\" only (ZeroMQ's tcp://)",
                        l.protocol.to_string()
                    ),
                );
            }
            #[cfg(feature = "chat")]
            if l.protocol == ProtocolKind::ZmqXpub && !self.chat.enabled {
                return bad(
                    k("protocol"),
                    "\"zmq_xpub\" publishes the chat: it needs chat.enabled = true",
                );
            }
            if l.transport == Transport::Sctp && l.protocol != ProtocolKind::Rpc {
                return bad(
                    k("transport"),
                    format!(
                        "transport \"sctp\" serves protocol \"rpc\" only, not {:?}",
                        l.protocol.to_string()
                    ),
                );
            }
            if l.transport == Transport::Tls {
                if !cfg!(feature = "tls") {
                    return bad(
                        k("transport"),
                        "this build of corral has no TLS (cargo feature \"tls\")",
                    );
                }
                if l.tls_cert.is_none() {
                    return bad(k("tls_cert"), "must be set with transport \"tls\"");
                }
                if l.tls_key.is_none() {
                    return bad(k("tls_key"), "must be set with transport \"tls\"");
                }
            } else {
                for (key, set) in [("tls_cert", &l.tls_cert), ("tls_key", &l.tls_key)] {
                    if set.is_some() {
                        return bad(
                            k(key),
                            format!(
                                "is for transport \"tls\" only (this listener's is {:?})",
                                l.transport.to_string()
                            ),
                        );
                    }
                }
            }
            for (key, path) in [("tls_cert", &l.tls_cert), ("tls_key", &l.tls_key)] {
                if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                    return bad(k(key), "must not be empty");
                }
            }
            if l.tls_handshake_timeout_ms == 0 {
                return bad(k("tls_handshake_timeout_ms"), "must be at least 1");
            }
        }
        #[cfg(feature = "http")]
        if self.http.tls_cert.is_some() && !cfg!(feature = "tls") {
            return bad(
                "http.tls_cert",
                "this build of corral has no TLS (cargo feature \"tls\")",
            );
        }
        if let Err((key, message)) = self.sctp.check() {
            return bad(format!("sctp.{key}"), message);
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.level) {
            return bad("log.level", format!("not a valid filter directive: {e}"));
        }
        Ok(())
    }
}

fn valid_address(a: &str) -> bool {
    if a.parse::<IpAddr>().is_ok() {
        return true;
    }
    !a.is_empty()
        && a.len() <= 253
        && a.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        })
}

fn toml_layer(origin: Origin, text: &str) -> Result<Layer, ConfigError> {
    config::Config::builder()
        .add_source(File::from_str(text, FileFormat::Toml))
        .build()
        .map(|config| Layer {
            origin: origin.clone(),
            config,
        })
        .map_err(|e| ConfigError::Parse {
            origin,
            message: e.to_string().trim().to_string(),
        })
}

fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    toml_layer(Origin::File(path.to_path_buf()), &text)
}

/// The environment variable that sets `key` (`rpc.max_frame_bytes` ->
/// `CORRAL__RPC__MAX_FRAME_BYTES`).
pub fn env_var_name(key: &str) -> String {
    let mut s = String::from(ENV_PREFIX);
    for part in key.split('.') {
        s.push_str(ENV_SEPARATOR);
        s.push_str(&part.to_ascii_uppercase());
    }
    s
}

/// The highest layer that sets `key` (or the nearest parent that is set).
fn origin_of(layers: &[Layer], key: &str) -> Origin {
    let mut k = key;
    loop {
        for layer in layers.iter().rev() {
            if layer.config.get::<config::Value>(k).is_ok() {
                return match &layer.origin {
                    Origin::Env(_) => Origin::Env(env_var_name(k)),
                    o => o.clone(),
                };
            }
        }
        match k.rfind(['.', '[']) {
            Some(i) if i > 0 => k = &k[..i],
            _ => return Origin::Default,
        }
    }
}

/// Splits a `config` error into the key it concerns and a message without
/// the key and origin (which we name ourselves).
fn split_error(e: config::ConfigError) -> (String, String) {
    let (key, message) = split_error_raw(e);
    (normalize_key(&key), message)
}

fn split_error_raw(e: config::ConfigError) -> (String, String) {
    match e {
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => (
            key.unwrap_or_default(),
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, message) = split_error_raw(*error);
            let key = match (key, inner_key.is_empty()) {
                (Some(k), true) => k,
                (Some(k), false) => format!("{k}.{inner_key}"),
                (None, _) => inner_key,
            };
            (key, message)
        }
        config::ConfigError::NotFound(key) => (key, "missing".into()),
        config::ConfigError::Message(m) => {
            // serde's "unknown field `x`, expected ..." names the key inside the message.
            let key = m
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
                .unwrap_or_default()
                .to_string();
            (key, m)
        }
        other => (String::new(), other.to_string()),
    }
}

/// `listener[0]port` (as the `config` crate joins an index and a field) ->
/// `listener[0].port`.
fn normalize_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']'
            && chars
                .peek()
                .is_some_and(|n| n.is_alphanumeric() || *n == '_')
        {
            out.push('.');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn embedded_default_equals_builtin_defaults() {
        let c = Config::load_with_vars(None, None, vars(&[])).expect("valid");
        assert_eq!(c, Config::default());
        assert_eq!(Config::embedded_default(), Config::default());
    }

    #[test]
    fn env_vars_override() {
        let c = Config::load_with_vars(
            None,
            None,
            vars(&[
                ("CORRAL__RPC__MAX_FRAME_BYTES", "65536"),
                ("CORRAL__NODE__NAME", "x"),
                ("CORRAL__LOG__FORMAT", "json"),
                ("CORRAL__METRICS__ENABLED", "false"),
                ("OTHER__RPC__MAX_FRAME_BYTES", "1"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.rpc.max_frame_bytes, 65536);
        assert_eq!(c.node.name, "x");
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(!c.metrics.enabled);
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn env_var_lists_are_comma_separated() {
        let c = Config::load_with_vars(
            None,
            None,
            vars(&[
                (
                    "CORRAL__CLUSTER__SERVERS",
                    "nats://127.0.0.1:4222,nats://127.0.0.1:4223",
                ),
                ("CORRAL__NODE__NAME", "a,b"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            c.cluster.servers,
            ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
        );
        // Other keys stay strings, commas and all.
        assert_eq!(c.node.name, "a,b");
        let one = Config::load_with_vars(
            None,
            None,
            vars(&[("CORRAL__CLUSTER__SERVERS", "nats://127.0.0.1:4222")]),
        )
        .expect("valid");
        assert_eq!(one.cluster.servers, ["nats://127.0.0.1:4222"]);
    }

    #[test]
    fn bad_env_var_is_named() {
        let e = Config::load_with_vars(None, None, vars(&[("CORRAL__RPC__MAX_IN_FLIGHT", "lots")]))
            .expect_err("invalid");
        let s = e.to_string();
        assert!(s.contains("rpc.max_in_flight"), "{s}");
        assert!(
            s.contains("environment variable CORRAL__RPC__MAX_IN_FLIGHT"),
            "{s}"
        );
        let e = Config::load_with_vars(None, None, vars(&[("CORRAL__RPC__MAX_IN_FLIGHT", "0")]))
            .expect_err("invalid");
        let s = e.to_string();
        assert!(
            s.contains("environment variable CORRAL__RPC__MAX_IN_FLIGHT"),
            "{s}"
        );
    }

    #[test]
    fn keys_are_normalized() {
        assert_eq!(normalize_key("listener[0]port"), "listener[0].port");
        assert_eq!(normalize_key("listener[0].port"), "listener[0].port");
        assert_eq!(normalize_key("a[1][2]b"), "a[1][2].b");
    }

    #[test]
    fn env_var_names() {
        assert_eq!(
            env_var_name("rpc.max_frame_bytes"),
            "CORRAL__RPC__MAX_FRAME_BYTES"
        );
    }

    #[test]
    fn addresses() {
        assert!(valid_address("127.0.0.1"));
        assert!(valid_address("::1"));
        assert!(valid_address("localhost"));
        assert!(!valid_address("not an address"));
        assert!(!valid_address(""));
    }

    #[test]
    fn bind_address_brackets_ipv6() {
        let mut l = ListenerConfig::new("x", Transport::Tcp, ProtocolKind::Rpc, 1);
        assert_eq!(l.bind_address(), "127.0.0.1:1");
        l.address = "::1".into();
        assert_eq!(l.bind_address(), "[::1]:1");
    }

    #[test]
    fn durations() {
        let c = Config::default();
        assert_eq!(c.rpc.idle_timeout(), Some(Duration::from_secs(60)));
        let rpc = RpcSettings {
            idle_timeout_ms: 0,
            ..RpcSettings::default()
        };
        assert_eq!(rpc.idle_timeout(), None);
        assert!(rpc.effective_compute_workers() >= 1);
    }
}
