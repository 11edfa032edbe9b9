//! `corral store check` and `corral store backup`: the chat store of a
//! stopped node, from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use corral::chat::Store;

use super::ConfigArgs;

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
    /// every table from one read transaction.
    Backup {
        /// The new store file.
        #[arg(value_name = "DEST")]
        dest: PathBuf,
        #[command(flatten)]
        at: StoreAt,
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
        StoreCommand::Backup { dest, at } => {
            let path = at.file()?;
            Store::backup_file(&path, &dest)?;
            super::print_stdout(&format!(
                "backed up {} to {}\n",
                path.display(),
                dest.display()
            ));
        }
    }
    Ok(())
}
