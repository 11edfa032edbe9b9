//! A node with the chat on a temporary data_dir, its clients, and calls
//! expected to succeed.

use corral::client::{Client, Codec, IncomingPush};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use serde_json::Value;
use tokio::sync::mpsc;

/// A running node and the temporary directory holding its data.
pub(crate) struct ChatNode {
    pub(crate) node: Node,
    /// Kept for the node's lifetime; removed when dropped.
    _dir: tempfile::TempDir,
}

/// The embedded default, one RPC listener on a free port, chat on `dir`.
fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::embedded_default();
    let mut l = ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c.node.data_dir = dir.to_path_buf();
    c
}

pub(crate) async fn start_with(edit: impl FnOnce(&mut Config)) -> ChatNode {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    edit(&mut c);
    let node = Node::start(c).await.expect("the node starts");
    ChatNode { node, _dir: dir }
}

pub(crate) async fn start() -> ChatNode {
    start_with(|_| {}).await
}

impl ChatNode {
    pub(crate) async fn client(&self, codec: Codec) -> (Client, mpsc::Receiver<IncomingPush>) {
        let addr = self.node.local_addr("rpc").expect("bound");
        let c = Client::connect(addr, codec).await.expect("connects");
        let p = c.pushes().expect("pushes receiver");
        (c, p)
    }
}

pub(crate) async fn ok(c: &Client, service: &str, data: Value) -> Value {
    match c.call(service, data.clone()).await {
        Ok(v) => v,
        Err(e) => panic!("{service} {data}: {e}"),
    }
}
