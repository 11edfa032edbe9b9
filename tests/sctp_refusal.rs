//! A node configured with an SCTP listener, on a kernel without SCTP (this
//! development machine's, many containers), refuses to start and says why
//! and what to do; `corral serve` exits non-zero with that message.
//!
//! On a kernel WITH SCTP the refusal cannot happen: there the tests check
//! the equivalent positive fact instead (the same config starts a node whose
//! SCTP listener is bound), and say so on stderr.

use std::process::Command;

use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::node::{Node, NodeError};
use corral::transport::sctp;
use corral::transport::Transport;

fn sctp_config() -> Config {
    let mut c = Config::embedded_default();
    c.chat.enabled = false;
    c.listeners = vec![ListenerConfig::new(
        "rpc-sctp",
        Transport::Sctp,
        ProtocolKind::Rpc,
        0,
    )];
    c
}

#[tokio::test]
async fn node_refuses_an_sctp_listener_without_kernel_sctp() {
    let kernel_has_sctp = sctp::probe().is_ok();
    match Node::start(sctp_config()).await {
        Err(e) => {
            assert!(!kernel_has_sctp, "the kernel has SCTP, yet: {e}");
            assert!(
                matches!(e, NodeError::Transport { ref listener, .. } if listener == "rpc-sctp"),
                "{e:?}"
            );
            let msg = e.to_string();
            assert!(msg.contains("rpc-sctp"), "names the listener: {msg}");
            assert!(msg.contains("no SCTP"), "says why: {msg}");
            assert!(msg.contains("modprobe sctp"), "says what to do: {msg}");
            assert!(msg.contains("transport = \"tcp\""), "offers TCP: {msg}");
        }
        Ok(node) => {
            assert!(
                kernel_has_sctp,
                "a node started an SCTP listener without kernel SCTP"
            );
            eprintln!("this kernel has SCTP: checked that the SCTP listener starts instead");
            assert!(node.local_addr("rpc-sctp").is_some());
            node.shutdown().await;
        }
    }
}

#[test]
fn serve_exits_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sctp.toml");
    std::fs::write(
        &file,
        "[[listener]]\nname = \"rpc-sctp\"\ntransport = \"sctp\"\nport = 0\n",
    )
    .expect("write config");
    if sctp::probe().is_ok() {
        eprintln!(
            "this kernel has SCTP: `corral serve` would start; refusal not testable here (skipped)"
        );
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .expect("run corral serve");
    assert!(!out.status.success(), "corral serve must refuse to start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rpc-sctp"), "{stderr}");
    assert!(stderr.contains("modprobe sctp"), "{stderr}");
}

#[test]
fn sctp_config_is_validated() {
    let mut c = sctp_config();
    c.validate()
        .expect("an SCTP rpc listener is a valid config");
    assert_eq!(c.sctp.send_buffer_bytes, 4 << 20);
    assert_eq!(c.sctp.recv_buffer_bytes, 4 << 20);

    c.listeners[0].protocol = ProtocolKind::Http;
    let e = c.validate().expect_err("http over sctp");
    assert_eq!(e.key(), Some("listener[0].transport"), "{e}");

    let mut c = sctp_config();
    c.sctp.extra_addresses = vec!["10.0.0.1".into(), "not-an-ip".into()];
    let e = c.validate().expect_err("bad extra address");
    assert_eq!(e.key(), Some("sctp.extra_addresses[1]"), "{e}");

    let mut c = sctp_config();
    c.sctp.ostreams = 0;
    assert_eq!(
        c.validate().expect_err("no streams").key(),
        Some("sctp.ostreams")
    );
}
