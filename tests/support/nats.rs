//! A real NATS JetStream cluster for the tests: `n` nats-server processes
//! (Debian's package, installed by scripts/setup) clustered on loopback,
//! random ports, each with its store in a temp dir. Servers are killed
//! (SIGKILL) and restarted on the same ports and store by index; all are
//! killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound on the cluster forming (a guard against a hang, not a
/// measurement).
const FORM_GUARD: Duration = Duration::from_secs(60);

/// One server's ports and its process, when running.
struct Server {
    port: u16,
    cluster_port: u16,
    monitor_port: u16,
    child: Option<Child>,
}

/// `n` clustered nats-server processes.
pub(crate) struct NatsCluster {
    /// The cluster's name, unique to it: servers of two tests running at
    /// once never join each other.
    name: String,
    dir: tempfile::TempDir,
    servers: Vec<Server>,
}

/// A port free at the time of asking.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl NatsCluster {
    /// Starts `n` servers (JetStream on, file storage) and waits until each
    /// says it is healthy (JetStream's meta group has a leader). Panics
    /// with a clear message when nats-server is not installed. A server
    /// that exits while the cluster forms (a port picked free was taken
    /// meanwhile, by another test's client connection for one) makes it
    /// start again on other ports, twice at most.
    pub(crate) fn start(n: usize) -> NatsCluster {
        assert!(
            Command::new("nats-server")
                .arg("--version")
                .output()
                .is_ok(),
            "nats-server is not installed (scripts/setup installs Debian's nats-server)"
        );
        let mut tries = 0;
        loop {
            let dir = tempfile::tempdir().expect("temp dir");
            let servers = (0..n)
                .map(|_| Server {
                    port: free_port(),
                    cluster_port: free_port(),
                    monitor_port: free_port(),
                    child: None,
                })
                .collect();
            let name = format!(
                "corral_test_{}",
                dir.path()
                    .file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or("x")
                    .trim_start_matches('.')
            );
            let mut c = NatsCluster { name, dir, servers };
            for i in 0..n {
                c.start_server(i);
            }
            match c.form() {
                None => {
                    c.wait_healthy();
                    return c;
                }
                Some(exited) if tries < 2 => {
                    tries += 1;
                    eprintln!("{exited}; starting the cluster again on other ports");
                }
                Some(exited) => panic!("{exited}"),
            }
        }
    }

    /// Waits until every server is healthy, or one has exited (then says
    /// which, with the end of its log).
    fn form(&mut self) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < FORM_GUARD {
            for i in 0..self.servers.len() {
                let exited = self.servers[i]
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited {
                    let log = std::fs::read_to_string(self.dir.path().join(format!("n{i}.log")))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    return Some(format!("nats-server n{i} exited: {tail:?}"));
                }
            }
            if (0..self.servers.len()).all(|i| self.healthy(i)) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Not formed in time: wait_healthy says so.
        None
    }

    fn conf_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}.conf"))
    }

    /// Starts server `i` (not running) on its ports and store, without
    /// waiting.
    pub(crate) fn start_server(&mut self, i: usize) {
        let routes: Vec<String> = self
            .servers
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, s)| format!("nats-route://127.0.0.1:{}", s.cluster_port))
            .collect();
        let s = &self.servers[i];
        let store = self.dir.path().join(format!("n{i}"));
        let conf = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\n\
             jetstream {{ store_dir: {:?} }}\n\
             cluster {{ name: {}\n listen: 127.0.0.1:{}\n routes: [{}] }}\n",
            s.port,
            s.monitor_port,
            store.display().to_string(),
            self.name,
            s.cluster_port,
            routes.join(", "),
        );
        let path = self.conf_path(i);
        std::fs::write(&path, conf).expect("write nats conf");
        let log = std::fs::File::create(self.dir.path().join(format!("n{i}.log")))
            .expect("nats log file");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.servers[i].child = Some(child);
    }

    /// True when server `i` answers its health check (JetStream ready).
    fn healthy(&self, i: usize) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.servers[i].monitor_port))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
    }

    /// Waits until every running server is healthy.
    pub(crate) fn wait_healthy(&self) {
        let start = Instant::now();
        loop {
            let running = (0..self.servers.len()).filter(|&i| self.servers[i].child.is_some());
            let sick: Vec<usize> = running.filter(|&i| !self.healthy(i)).collect();
            if sick.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < FORM_GUARD,
                "nats-server(s) {sick:?} not healthy after {FORM_GUARD:?}; logs in {}",
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The client URL of server `i`.
    pub(crate) fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].port)
    }

    /// Every server's client URL.
    pub(crate) fn urls(&self) -> Vec<String> {
        (0..self.servers.len()).map(|i| self.url(i)).collect()
    }

    /// Kills server `i` with SIGKILL (its store stays).
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts server `i` again, on its ports and store, and waits until the
    /// running servers are healthy.
    pub(crate) fn restart(&mut self, i: usize) {
        self.kill(i);
        self.start_server(i);
        self.wait_healthy();
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}
