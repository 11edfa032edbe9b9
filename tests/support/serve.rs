//! The real binary: a `corral serve` process on config/sys.toml (`--env
//! test`, JSON logs at info), its log lines read on a thread, killed when
//! dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// How long a test waits for one log line: a guard against a hung node,
/// not a measurement.
const LINE_GUARD: Duration = Duration::from_secs(60);

pub(crate) struct Serve {
    pub(crate) child: Child,
    lines: Receiver<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `corral serve` with the environment variables `vars` set.
    pub(crate) fn start(vars: &[(&str, &str)]) -> Serve {
        Serve::start_with_args(&[], vars)
    }

    /// Starts `corral serve ARGS` (after `--config` and `--env`) with the
    /// environment variables `vars` set.
    pub(crate) fn start_with_args(args: &[&str], vars: &[(&str, &str)]) -> Serve {
        let manifest = env!("CARGO_MANIFEST_DIR");
        let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(format!("{manifest}/config/sys.toml"))
            .args(["--env", "test"])
            .args(args)
            .env("CORRAL__LOG__LEVEL", "info")
            .env_remove("RUST_LOG")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("corral serve starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Serve { child, lines }
    }

    /// Reads log lines until one (a JSON object) satisfies `f`.
    pub(crate) fn wait_for<T>(&self, mut f: impl FnMut(&serde_json::Value) -> Option<T>) -> T {
        loop {
            let line = self.lines.recv_timeout(LINE_GUARD).expect("a log line");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(t) = f(&v) {
                    return t;
                }
            }
        }
    }

    /// The address of listener `name`, from its "listening" log line.
    pub(crate) fn listening(&self, name: &str) -> SocketAddr {
        self.wait_for(|v| {
            let fields = &v["fields"];
            (fields["message"] == "listening" && fields["listener"] == name)
                .then(|| fields["addr"].as_str().and_then(|a| a.parse().ok()))
                .flatten()
        })
    }
}
