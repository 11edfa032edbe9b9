//! The `corral` command line: run a node, check a configuration, call a
//! service, benchmark the RPC and chat services.

mod cli;

/// mimalloc: connection and actor churn is many small allocations, where it
/// beats the system allocator (see the supervision benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::bench::chat::BenchChatArgs;
use cli::bench::idle::BenchIdleArgs;
use cli::bench::BenchRpcArgs;
use cli::bot::BotArgs;
use cli::call::CallArgs;
use cli::chat_client::ClientArgs;
use cli::observe::ObserveArgs;
use cli::store::StoreCommand;
use cli::{LogFormatArg, ServeArgs};

/// corral: OTP-style supervision trees on ractor and tokio, and a server
/// built on them (RPC over TCP/TLS/SCTP, HTTP, chat).
#[derive(Debug, Parser)]
#[command(name = "corral", version, about, propagate_version = true)]
struct Cli {
    /// Log output format (overrides the config's `log.format`).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: the supervision tree and its listeners.
    Serve(ServeArgs),
    /// Load and validate a configuration without starting anything.
    CheckConfig {
        #[command(flatten)]
        config: ServeArgs,
        /// Also print the effective configuration as JSON.
        #[arg(long)]
        print: bool,
    },
    /// Call one RPC service and print its reply as JSON.
    Call(CallArgs),
    /// Interactive chat client: commands on stdin, pushes shown as they arrive.
    Client(ClientArgs),
    /// Chat bots: log in, publish batches on random channels, until stopped.
    Bot(BotArgs),
    /// A running node's supervision tree (from its observer's JSON API),
    /// printed once or redrawn with --watch.
    Observe(ObserveArgs),
    /// The chat store of a stopped node: check it, back it up.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Load generators.
    Bench {
        #[command(subcommand)]
        target: BenchTarget,
    },
}

#[derive(Debug, Subcommand)]
enum BenchTarget {
    /// Closed-loop, pipelined load on the RPC service (echo or compute).
    Rpc(BenchRpcArgs),
    /// Pub/sub fan-out through the chat services: one publisher, N subscribers.
    Chat(BenchChatArgs),
    /// Many idle connections (after one exchange each), held open: the
    /// memory a server pays per idle connection.
    Idle(BenchIdleArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.load()?;
            let format = cli.log_format.map_or(config.log.format, Into::into);
            cli::logging::init(&config.log.level, format)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .worker_threads(config.node.effective_worker_threads())
                .thread_name("corral")
                .build()?;
            runtime.block_on(corral::node::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config, print } => Ok(cli::check_config(&config, print)),
        Command::Store { command } => Ok(cli::store::run(command)),
        Command::Call(args) => {
            cli::logging::init_for_tool(cli.log_format)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(cli::call::run(args))
        }
        Command::Client(args) => {
            cli::logging::init_for_tool(cli.log_format)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(cli::chat_client::run(args))
        }
        Command::Observe(args) => {
            cli::logging::init_for_tool(cli.log_format)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(cli::observe::run(args))
        }
        Command::Bot(args) => {
            cli::logging::init_for_tool(cli.log_format)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(cli::bot::run(args))
        }
        Command::Bench {
            target: BenchTarget::Rpc(args),
        } => {
            cli::logging::init_for_tool(cli.log_format)?;
            cli::bench::run(args)
        }
        Command::Bench {
            target: BenchTarget::Chat(args),
        } => {
            cli::logging::init_for_tool(cli.log_format)?;
            cli::bench::chat::run(args)
        }
        Command::Bench {
            target: BenchTarget::Idle(args),
        } => {
            cli::logging::init_for_tool(cli.log_format)?;
            cli::bench::idle::run(args)
        }
    }
}
