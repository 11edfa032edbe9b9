//! A chat client that survives the loss of its node: [`ChatSession`] over
//! several addresses.
//!
//! ```sh
//! cargo run --example chat_failover                       # two nodes started here
//! cargo run --example chat_failover -- 127.0.0.1:7071,127.0.0.1:7072,127.0.0.1:7073
//! ```
//!
//! With no argument it starts two nodes in this process (single-node mode,
//! each with its own store and the channel `general`), publishes through the
//! first, shuts it down, and publishes again: the session moves to the
//! second node, logs in again, resubscribes and retries the write with its
//! `client_id`. With addresses (a cluster started by `scripts/cluster`) it
//! publishes one message a second until Ctrl-C, printing the node it is on:
//! kill a node to watch it move.

use std::time::Duration;

use corral::client::{ChatSession, Client, Codec, SessionOptions};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::Node;
use corral::transport::Transport;
use serde_json::json;

type BoxError = Box<dyn std::error::Error>;

/// A node on a free port with the chat in `dir` and the channel `general`.
async fn node(dir: &std::path::Path) -> Result<(Node, String), BoxError> {
    let mut config = Config::embedded_default();
    config.listeners = vec![ListenerConfig::new(
        "rpc",
        Transport::Tcp,
        ProtocolKind::Rpc,
        0,
    )];
    config.node.data_dir = dir.to_path_buf();
    let node = Node::start(config).await?;
    let addr = node.local_addr("rpc").ok_or("no rpc listener")?;
    Client::connect(addr, Codec::Json)
        .await?
        .call("channel", json!({"channel": "general"}))
        .await?;
    Ok((node, addr.to_string()))
}

async fn demo() -> Result<(), BoxError> {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (a, addr_a) = node(dir_a.path()).await?;
    let (_b, addr_b) = node(dir_b.path()).await?;
    let session = ChatSession::new(SessionOptions::new([&addr_a, &addr_b])?);
    session.login("ada").await?;
    session.subscribe("general").await?;
    let r = session.publish("general", "before").await?;
    println!("published seq {} on {:?}", r["seq"], session.node());
    println!("shutting down {addr_a}");
    a.shutdown().await;
    let r = session.publish("general", "after").await?;
    println!(
        "published seq {} on {:?} after {} failover(s)",
        r["seq"],
        session.node(),
        session.failovers()
    );
    Ok(())
}

async fn forever(addrs: &str) -> Result<(), BoxError> {
    let session = ChatSession::new(SessionOptions::new([addrs])?);
    println!("connected to {}", session.connect().await?);
    session.login("failover_demo").await?;
    if let Err(e) = session.call("channel", json!({"channel": "general"})).await {
        if e.code() != Some("CONFLICT") {
            return Err(e.into());
        }
    }
    for i in 0u64.. {
        let r = session.publish("general", &format!("tick {i}")).await?;
        println!(
            "tick {i}: seq {} on {} (failovers {})",
            r["seq"],
            session.node().unwrap_or_default(),
            session.failovers()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    match std::env::args().nth(1) {
        Some(addrs) => forever(&addrs).await,
        None => demo().await,
    }
}
