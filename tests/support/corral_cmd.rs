//! The real binary as a command that ends by itself (`corral store ...`):
//! built with a data directory and quiet logs, run to its end under a guard.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Generous bound on a command that should end by itself: a guard against
/// a hung process, not a measurement.
const GUARD: Duration = Duration::from_secs(120);

/// `corral ARGS` with `node.data_dir` set to `data_dir`, logs at error,
/// stdout and stderr piped.
pub(crate) fn corral(args: &[&str], data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(args)
        .env("CORRAL__NODE__DATA_DIR", data_dir)
        .env("CORRAL__LOG__LEVEL", "error")
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to its end (killed past the guard, which fails the test).
pub(crate) fn run(mut cmd: Command) -> Output {
    let mut child = cmd.spawn().expect("corral runs");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > GUARD {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "corral did not end within {GUARD:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
