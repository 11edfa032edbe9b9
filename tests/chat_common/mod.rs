//! Shared by tests/chat_*.rs: a node with the chat on a temporary data_dir.
#![allow(dead_code)]

use corral::client::{Client, ClientError, Codec, IncomingPush};
use corral::config::{Config, ListenerConfig, ProtocolKind, Transport};
use corral::node::Node;
use serde_json::Value;
use tokio::sync::mpsc;

/// A running node and the temporary directory holding its data.
pub struct ChatNode {
    pub node: Node,
    pub dir: tempfile::TempDir,
}

/// The embedded default, one RPC listener on a free port, chat on `dir`.
pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::embedded_default();
    let mut l = ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0);
    l.drain_timeout_ms = 500;
    c.listeners = vec![l];
    c.node.data_dir = dir.to_path_buf();
    c
}

pub async fn start_with(edit: impl FnOnce(&mut Config)) -> ChatNode {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    edit(&mut c);
    let node = Node::start(c).await.expect("the node starts");
    ChatNode { node, dir }
}

pub async fn start() -> ChatNode {
    start_with(|_| {}).await
}

impl ChatNode {
    pub async fn client(&self, codec: Codec) -> (Client, mpsc::Receiver<IncomingPush>) {
        let addr = self.node.local_addr("rpc").expect("bound");
        let c = Client::connect(addr, codec).await.expect("connects");
        let p = c.pushes().expect("pushes receiver");
        (c, p)
    }
}

/// The error code of a call expected to fail.
pub fn code(r: Result<Value, ClientError>) -> String {
    match r {
        Err(ClientError::Rpc { code, .. }) => code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

pub async fn ok(c: &Client, service: &str, data: Value) -> Value {
    match c.call(service, data.clone()).await {
        Ok(v) => v,
        Err(e) => panic!("{service} {data}: {e}"),
    }
}
