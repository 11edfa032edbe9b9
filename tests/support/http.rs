//! A node with one HTTP listener on a free port, serving a docroot.

use std::net::SocketAddr;

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::{Node, NodeBuilder};
use corral::transport::Transport;

/// A config with one HTTP listener (`http`) on a free port serving `root`.
pub(crate) fn config(root: &std::path::Path) -> Config {
    let mut c = Config::embedded_default();
    c.chat.enabled = false;
    let mut l = ListenerConfig::new("http", Transport::Tcp, ProtocolKind::Http, 0);
    l.drain_timeout_ms = 1_000;
    c.listeners = vec![l];
    c.http.docroot = root.to_path_buf();
    c.http.header_read_timeout_ms = 5_000;
    c.http.idle_timeout_ms = 10_000;
    c
}

/// Starts the node and returns it with the address of its `http` listener.
pub(crate) async fn start(builder: NodeBuilder) -> (Node, SocketAddr) {
    let node = builder.start().await.expect("the node starts");
    let addr = node.local_addr("http").expect("bound");
    (node, addr)
}
