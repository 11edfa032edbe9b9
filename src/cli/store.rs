//! `corral store check` and `corral store backup`: the chat store from the
//! command line. `check` works on a stopped node's store (or a backup);
//! `backup` copies a stopped node's store itself, and asks a running node
//! (service `store_backup`, loopback only) for a copy of its store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use corral::chat::{Store, StoreError};
use corral::client::{Client, ClientError, Codec};
use corral::config::{Config, ProtocolKind};
use corral::transport::Transport;
use serde_json::{json, Value};

use super::ConfigArgs;

/// The RPC address asked when the configuration names none.
const DEFAULT_ADDR: &str = "127.0.0.1:7070";

/// `corral store ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Open the chat store, check redb's integrity and read every record;
    /// print what it holds (exit 1, with what to do, when it is damaged).
    Check {
        #[command(flatten)]
        at: StoreAt,
        /// Check this store file instead (a backup, say).
        #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
        file: Option<PathBuf>,
    },
    /// Copy the chat store into a new store file DEST (never overwritten):
    /// every table from one read transaction. A stopped node's store is
    /// copied here; when a running node holds it, that node (at --addr,
    /// reached over loopback) writes the copy into its backup_dir and it is
    /// moved to DEST.
    Backup {
        /// The new store file.
        #[arg(value_name = "DEST")]
        dest: PathBuf,
        #[command(flatten)]
        at: StoreAt,
        /// RPC address (TCP) of the running node that holds the store
        /// [default: the configuration's first TCP RPC listener, on
        /// loopback: 127.0.0.1:7070 in the default configuration].
        #[arg(long, value_name = "ADDR")]
        addr: Option<String>,
        /// Give up waiting for a running node's backup after this many
        /// seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
        timeout: f64,
    },
}

/// Where the store is: `<data_dir>/chat.redb`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreAt {
    /// The node's data directory (default: `node.data_dir` of the
    /// configuration).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArgs,
}

impl StoreAt {
    fn file(&self) -> anyhow::Result<PathBuf> {
        let dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => self.config.load()?.node.data_dir,
        };
        Ok(dir.join("chat.redb"))
    }
}

/// Runs a `store` subcommand: exit 0, or 1 with the error on stderr.
pub(crate) fn run(command: StoreCommand) -> ExitCode {
    match run_inner(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Check { at, file } => {
            let path = match file {
                Some(f) => f,
                None => at.file()?,
            };
            let report = Store::check(&path)?;
            super::print_stdout(&format!("{report}\n"));
        }
        StoreCommand::Backup {
            dest,
            at,
            addr,
            timeout,
        } => backup(&dest, &at, addr, timeout)?,
    }
    Ok(())
}

/// The refusal of an existing DEST.
fn exists(dest: &Path) -> StoreError {
    StoreError::Exists {
        path: dest.to_path_buf(),
    }
}

fn backup(dest: &Path, at: &StoreAt, addr: Option<String>, timeout: f64) -> anyhow::Result<()> {
    // Refused before anything is copied (and again, atomically, when DEST
    // is created).
    if dest.symlink_metadata().is_ok() {
        return Err(exists(dest).into());
    }
    let path = at.file()?;
    match Store::backup_file(&path, dest) {
        Ok(made) => {
            super::print_stdout(&format!(
                "backed up {} (users {}, channels {}, events {}, last seq {}) to {}\n",
                path.display(),
                made.users,
                made.channels,
                made.events,
                made.last_seq,
                dest.display()
            ));
            Ok(())
        }
        Err(StoreError::InUse { .. }) => {
            let addr = match addr {
                Some(a) => a,
                None => node_addr(&at.config.load()?),
            };
            let timeout = Duration::try_from_secs_f64(timeout).context("bad --timeout")?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let reply = runtime
                .block_on(async {
                    tokio::time::timeout(timeout, ask_node(&path, &addr))
                        .await
                        .unwrap_or_else(|_| {
                            bail!("the node at {addr} made no backup within {timeout:?}")
                        })
                })
                .with_context(|| {
                    format!(
                        "{} is in use by another process (a running node?), so the node at \
                         {addr} was asked for the backup",
                        path.display()
                    )
                })?;
            take_backup(&reply, dest)?;
            super::print_stdout(&format!(
                "backed up the running node's store {} (users {}, channels {}, events {}, \
                 last seq {}) to {}\n",
                path.display(),
                reply["users"],
                reply["channels"],
                reply["events"],
                reply["last_seq"],
                dest.display()
            ));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The address of the configuration's first TCP RPC listener with a fixed
/// port, on loopback when it listens on every address; 127.0.0.1:7070 when
/// there is none.
fn node_addr(config: &Config) -> String {
    config
        .listeners
        .iter()
        .find(|l| l.protocol == ProtocolKind::Rpc && l.transport == Transport::Tcp && l.port != 0)
        .map_or_else(
            || DEFAULT_ADDR.to_owned(),
            |l| match l.address.as_str() {
                "" | "0.0.0.0" => format!("127.0.0.1:{}", l.port),
                "::" | "[::]" => format!("[::1]:{}", l.port),
                a if a.contains(':') && !a.starts_with('[') => format!("[{a}]:{}", l.port),
                a => format!("{a}:{}", l.port),
            },
        )
}

/// Asks the node at `addr` for a backup of its store, which must be
/// `store`; its reply.
async fn ask_node(store: &Path, addr: &str) -> anyhow::Result<Value> {
    let client = Client::connect(addr, Codec::Json).await.map_err(|e| {
        anyhow::anyhow!(
            "no node answers at {addr} ({e}); give the running node's RPC address with --addr"
        )
    })?;
    let named = std::fs::canonicalize(store)
        .or_else(|_| std::path::absolute(store))
        .unwrap_or_else(|_| store.to_path_buf());
    match client
        .call(
            "store_backup",
            json!({ "store": named.display().to_string() }),
        )
        .await
    {
        Ok(reply) => Ok(reply),
        Err(ClientError::Rpc { code, message }) => match code.as_str() {
            "FORBIDDEN" => bail!(
                "the node at {addr} refused: {message}; ask it at a loopback address (--addr \
                 127.0.0.1:<its RPC port>) from its own host"
            ),
            "CONFLICT" => bail!(
                "the node at {addr} does not run this store: {message}; give the address of \
                 the node that runs {} with --addr",
                store.display()
            ),
            "UNKNOWN_SERVICE" => bail!(
                "the node at {addr} has no store_backup service (its chat is disabled, or it \
                 is an older corral): {message}"
            ),
            _ => bail!("the node at {addr} could not make the backup: {code}: {message}"),
        },
        Err(e) => Err(anyhow::Error::new(e).context(format!("asking the node at {addr}"))),
    }
}

/// Moves the backup the node wrote (the reply's `path`) to `dest`, never
/// overwriting it: a hard link, then the node's file removed; a copy when
/// a link cannot be made (another file system).
fn take_backup(reply: &Value, dest: &Path) -> anyhow::Result<()> {
    let Some(made) = reply["path"].as_str().map(PathBuf::from) else {
        bail!("the node's reply names no backup file: {reply}");
    };
    let kept = || format!("the node's backup stays at {}", made.display());
    match std::fs::hard_link(&made, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(anyhow::Error::new(exists(dest)).context(kept()));
        }
        Err(_) => copy_new(&made, dest).with_context(kept)?,
    }
    if let Err(e) = std::fs::remove_file(&made) {
        eprintln!(
            "warning: {} copied to {}, but not removed: {e}",
            made.display(),
            dest.display()
        );
    }
    Ok(())
}

/// Copies `from` into the new file `to` (never overwritten) and syncs it;
/// a failed copy leaves no `to` behind.
fn copy_new(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut src =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::Error::new(exists(to)),
            _ => anyhow::Error::new(e).context(format!("cannot create {}", to.display())),
        })?;
    let copied = std::io::copy(&mut src, &mut out).and_then(|_| out.sync_all());
    if let Err(e) = copied {
        drop(out);
        let _ = std::fs::remove_file(to);
        return Err(anyhow::Error::new(e).context(format!("copying to {}", to.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral::config::ListenerConfig;

    fn with(address: &str, port: u16, transport: Transport) -> Config {
        let mut c = Config::embedded_default();
        let mut l = ListenerConfig::new("rpc", transport, ProtocolKind::Rpc, port);
        l.address = address.into();
        c.listeners = vec![l];
        c
    }

    #[test]
    fn the_node_is_asked_at_its_rpc_listener_on_loopback() {
        assert_eq!(node_addr(&Config::embedded_default()), "127.0.0.1:7070");
        assert_eq!(
            node_addr(&with("0.0.0.0", 7071, Transport::Tcp)),
            "127.0.0.1:7071"
        );
        assert_eq!(node_addr(&with("::", 7072, Transport::Tcp)), "[::1]:7072");
        assert_eq!(node_addr(&with("::1", 7073, Transport::Tcp)), "[::1]:7073");
        assert_eq!(
            node_addr(&with("127.0.0.2", 7074, Transport::Tcp)),
            "127.0.0.2:7074"
        );
        assert_eq!(
            node_addr(&with("127.0.0.1", 0, Transport::Tcp)),
            DEFAULT_ADDR
        );
        assert_eq!(
            node_addr(&with("127.0.0.1", 7075, Transport::Sctp)),
            DEFAULT_ADDR
        );
    }
}
