//! Accept errors such as EMFILE are logged, counted and retried after a
//! short pause; they never crash the listener. This test lowers the
//! process's file descriptor limit (its own test binary, so no other test is
//! affected), fills it with connections until accept(2) fails, then frees
//! descriptors and checks the waiting connection is served.

use corral::client::{Client, Codec};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use std::time::Duration;
use tokio::net::TcpStream;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(64)
}

fn set_nofile(soft: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = soft.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

fn accept_errors(node: &Node) -> u64 {
    node.metrics()
        .accept_errors
        .with_label_values(&["rpc"])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emfile_is_counted_and_retried() {
    let mut config = Config::embedded_default();
    config.chat.enabled = false;
    config.listeners = vec![ListenerConfig::new(
        "rpc",
        Transport::Tcp,
        ProtocolKind::Rpc,
        0,
    )];
    let node = Node::start(config).await.expect("node starts");
    let addr = node.local_addr("rpc").expect("bound");

    // Leave room for a few dozen connections (each costs two descriptors
    // here: the client's and the server's).
    set_nofile(open_fds() + 40);
    let mut clients = Vec::new();
    let mut waited = 0;
    while accept_errors(&node) == 0 {
        match TcpStream::connect(addr).await {
            Ok(s) => clients.push(s),
            // The client side ran out first: wait for the server to hit it too.
            Err(_) => {
                waited += 1;
                assert!(waited < 500, "the listener never reported an accept error");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        assert!(clients.len() < 1000, "the descriptor limit did not apply");
    }
    // The listener is alive and retrying. Free descriptors: every waiting
    // connection is then accepted and served.
    let last = clients.pop().expect("at least one client");
    drop(clients);
    drop(last);
    set_nofile(4096);
    let client = Client::connect(addr, Codec::Json).await.expect("connects");
    let reply = client
        .call("echo", serde_json::json!({"payload": "after emfile"}))
        .await
        .expect("served after EMFILE");
    assert_eq!(reply["payload"], "after emfile");
    assert!(accept_errors(&node) > 0);
    let listener = node.listener("rpc").expect("listener");
    assert!(listener.is_accepting());
    node.shutdown().await;
}
