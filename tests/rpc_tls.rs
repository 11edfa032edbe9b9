//! RPC over TLS: a node whose RPC listener has transport "tls" (a
//! certificate made with rcgen in a temporary directory), driven by the
//! client library over TLS in JSON and MessagePack, pipelined; clients that
//! do not speak TLS or do not trust the certificate fail cleanly and the
//! node goes on serving; bad certificate files stop start-up naming the
//! file; `corral call --tls --tls-ca` against the node; a client that
//! never reads is cut after the write-stall timeout.
#![cfg(all(feature = "rpc", feature = "tls"))]

mod support {
    pub(crate) mod guard;
    pub(crate) mod wait;
}

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use corral::client::{Client, ClientError, Codec, FrameConn};
use corral::config::{Config, ConfigError, ListenerConfig, ProtocolKind};
use corral::node::{Node, NodeError};
use corral::transport::tls::TlsClientOptions;
use corral::transport::Transport;
use serde_json::{json, Value};
use support::guard::guarded;
use support::wait::wait_until;

/// A self-signed certificate for `localhost` (a DNS name only: a client
/// that checks it against 127.0.0.1 refuses it), its key, another key that
/// does not fit it, and a second, unrelated certificate.
struct Pki {
    dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    other_key: PathBuf,
    other_cert: PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let other_key = dir.path().join("other-key.pem");
    let other_cert = dir.path().join("other-cert.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write");
    std::fs::write(&other_key, other.signing_key.serialize_pem()).expect("write");
    std::fs::write(&other_cert, other.cert.pem()).expect("write");
    Pki {
        dir,
        cert,
        key,
        other_key,
        other_cert,
    }
}

/// The embedded default with one RPC listener on TLS, port 0.
fn config(cert: PathBuf, key: PathBuf) -> Config {
    let mut c = Config::embedded_default();
    c.chat.enabled = false;
    let mut l =
        ListenerConfig::new("rpc", Transport::Tcp, ProtocolKind::Rpc, 0).with_tls(cert, key);
    l.drain_timeout_ms = 1_000;
    l.tls_handshake_timeout_ms = 2_000;
    c.listeners = vec![l];
    c
}

async fn start(pki: &Pki) -> (Node, SocketAddr) {
    let node = Node::start(config(pki.cert.clone(), pki.key.clone()))
        .await
        .expect("the node starts");
    let addr = node.local_addr("rpc").expect("bound");
    (node, addr)
}

fn localhost(addr: SocketAddr) -> String {
    format!("localhost:{}", addr.port())
}

fn compute(n: u64) -> u64 {
    const MOD: u64 = 1_000_000_007;
    (0..n).fold(0, |acc, i| (acc + (i * i) % MOD) % MOD)
}

#[tokio::test]
async fn calls_in_json_and_msgpack_over_tls() {
    guarded(async {
        let pki = pki();
        let (node, addr) = start(&pki).await;
        let trust = TlsClientOptions::ca_file(&pki.cert);
        for codec in [Codec::Json, Codec::MsgPack] {
            let client = Client::connect_tls(&localhost(addr), codec, &trust)
                .await
                .unwrap_or_else(|e| panic!("{codec}: connect: {e}"));
            let reply = client
                .call("echo", json!({"payload": format!("hello {codec}")}))
                .await
                .expect("echo");
            assert_eq!(reply["payload"], format!("hello {codec}"));
            let reply = client
                .call("compute", json!({"n": 1000}))
                .await
                .expect("compute");
            assert_eq!(reply["result"].as_u64(), Some(compute(1000)), "{reply}");
            match client.call("no-such-service", json!({})).await {
                Err(ClientError::Rpc { code, .. }) => assert_eq!(code, "UNKNOWN_SERVICE"),
                other => panic!("{codec}: unexpected {other:?}"),
            }

            // Pipelined: many calls in flight on the one TLS connection.
            let calls = (0..300).map(|i| {
                let c = client.clone();
                async move { (i, c.call("echo", json!({"payload": i})).await) }
            });
            for (i, r) in futures::future::join_all(calls).await {
                assert_eq!(r.expect("reply")["payload"], json!(i));
            }
        }

        // The server answers each frame in its own encoding.
        let mut conn = FrameConn::connect_tls(&localhost(addr), &trust)
            .await
            .expect("connect");
        for codec in [Codec::MsgPack, Codec::Json] {
            let reply = conn
                .request(
                    codec,
                    &json!({"id": 7, "service": "echo", "data": {"payload": "x"}}),
                )
                .await
                .expect("reply in the request's encoding");
            assert_eq!(reply["id"], 7);
            assert_eq!(reply["data"]["payload"], "x");
        }
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn server_name_and_trust_are_checked() {
    guarded(async {
        let pki = pki();
        let (node, addr) = start(&pki).await;
        let ip = addr.to_string();

        // The certificate names localhost, not 127.0.0.1 ...
        let err = Client::connect_tls(&ip, Codec::Json, &TlsClientOptions::ca_file(&pki.cert))
            .await
            .expect_err("name mismatch");
        assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
        // ... unless told which name to check.
        let opts = TlsClientOptions::ca_file(&pki.cert).server_name("localhost");
        let client = Client::connect_tls(&ip, Codec::Json, &opts)
            .await
            .expect("connect");
        client.call("ping", json!({})).await.expect("ping");

        // A CA that did not sign the server's certificate.
        let err = Client::connect_tls(
            &localhost(addr),
            Codec::Json,
            &TlsClientOptions::ca_file(&pki.other_cert),
        )
        .await
        .expect_err("unknown issuer");
        assert!(matches!(err, ClientError::Tls(_)), "{err:?}");

        // Nothing to trust: refused before connecting, and said so.
        let err = Client::connect_tls(&localhost(addr), Codec::Json, &TlsClientOptions::default())
            .await
            .expect_err("no trust");
        assert!(err.to_string().contains("CA file"), "{err}");
        // connect_over cannot do TLS without options, and says so.
        let err = Client::connect_over(addr, Codec::Json, Transport::Tls)
            .await
            .expect_err("needs options");
        assert!(err.to_string().contains("connect_tls"), "{err}");
        // A CA file that does not exist is named.
        let missing = pki.dir.path().join("missing-ca.pem");
        let err = Client::connect_tls(
            &localhost(addr),
            Codec::Json,
            &TlsClientOptions::ca_file(&missing),
        )
        .await
        .expect_err("no CA file");
        assert!(err.to_string().contains("missing-ca.pem"), "{err}");

        // Trusting anyone (self-signed test certificates) works, even by IP.
        let client = Client::connect_tls(&ip, Codec::MsgPack, &TlsClientOptions::insecure())
            .await
            .expect("insecure connect");
        client.call("ping", json!({})).await.expect("ping");

        // Failed handshakes left no connection open.
        drop(client);
        let listener = node.listener("rpc").expect("listener").clone();
        wait_until("connections closed", || listener.connections() <= 1).await;
        node.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn plain_tcp_client_fails_cleanly_and_the_node_keeps_serving() {
    guarded(async {
        let pki = pki();
        let (node, addr) = start(&pki).await;
        let trust = TlsClientOptions::ca_file(&pki.cert);
        let listener = node.listener("rpc").expect("listener").clone();

        for codec in [Codec::Json, Codec::MsgPack] {
            let plain = Client::connect(addr, codec).await.expect("TCP connects");
            let r = tokio::time::timeout(
                Duration::from_secs(10),
                plain.call("echo", json!({"payload": 1})),
            )
            .await
            .expect("a plain client gets an answer, not a hang");
            match r {
                Err(ClientError::Closed) | Err(ClientError::Io(_)) => {}
                other => panic!("a plain client on a TLS port: {other:?}"),
            }
            // The node still serves TLS clients.
            let client = Client::connect_tls(&localhost(addr), codec, &trust)
                .await
                .expect("TLS connect");
            let reply = client
                .call("echo", json!({"payload": "still here"}))
                .await
                .expect("echo");
            assert_eq!(reply["payload"], "still here");
        }

        // A client that connects and says nothing is cut off after the
        // handshake timeout (2 s here), and its connection closed.
        let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
        )
        .await
        .expect("closed by the handshake timeout");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        wait_until("connections closed", || listener.connections() == 0).await;
        assert!(listener.is_accepting());
        node.shutdown().await;
    })
    .await;
}

async fn start_error(cfg: Config) -> NodeError {
    Node::start(cfg).await.expect_err("start-up refused")
}

#[tokio::test]
async fn bad_certificate_files_stop_start_up_naming_the_file() {
    guarded(async {
        let pki = pki();

        let missing = pki.dir.path().join("no-such-cert.pem");
        let err = start_error(config(missing, pki.key.clone())).await;
        assert!(matches!(err, NodeError::Tls { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("no-such-cert.pem"), "{msg}");
        assert!(msg.contains("listener rpc"), "{msg}");

        let garbage = pki.dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("write");
        let msg = start_error(config(garbage, pki.key.clone()))
            .await
            .to_string();
        assert!(msg.contains("garbage.pem"), "{msg}");

        let missing_key = pki.dir.path().join("no-such-key.pem");
        let msg = start_error(config(pki.cert.clone(), missing_key))
            .await
            .to_string();
        assert!(msg.contains("no-such-key.pem"), "{msg}");

        let msg = start_error(config(pki.cert.clone(), pki.other_key.clone()))
            .await
            .to_string();
        assert!(msg.contains("other-key.pem"), "{msg}");
        assert!(msg.contains("does not fit"), "{msg}");
    })
    .await;
}

#[test]
fn tls_keys_are_validated() {
    fn invalid(c: &Config) -> (String, String) {
        match c.validate() {
            Err(e @ ConfigError::Invalid { .. }) => {
                (e.key().unwrap_or_default().to_string(), e.to_string())
            }
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }
    let mut c = config("c.pem".into(), "k.pem".into());
    assert!(c.validate().is_ok());
    c.listeners[0].tls_key = None;
    let (key, msg) = invalid(&c);
    assert_eq!(key, "listener[0].tls_key", "{msg}");
    c.listeners[0].tls_key = Some("k.pem".into());
    c.listeners[0].tls_cert = None;
    assert_eq!(invalid(&c).0, "listener[0].tls_cert");
    // On another transport the keys are refused, not ignored.
    let mut c = config("c.pem".into(), "k.pem".into());
    c.listeners[0].transport = Transport::Tcp;
    let (key, msg) = invalid(&c);
    assert_eq!(key, "listener[0].tls_cert", "{msg}");
    assert!(msg.contains("tls"), "{msg}");
    // TLS and TCP share ports.
    let mut c = config("c.pem".into(), "k.pem".into());
    c.listeners[0].port = 7443;
    let mut plain = ListenerConfig::new("plain", Transport::Tcp, ProtocolKind::Rpc, 7443);
    plain.drain_timeout_ms = 1_000;
    c.listeners.push(plain);
    assert_eq!(invalid(&c).0, "listener[1].port");
}

#[test]
fn tls_keys_load_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tls.toml");
    std::fs::write(
        &file,
        r#"
[[listener]]
name = "rpcs"
transport = "tls"
protocol = "rpc"
port = 7443
tls_cert = "cert.pem"
tls_key = "key.pem"
tls_handshake_timeout_ms = 5000
"#,
    )
    .expect("write");
    let c = Config::load_with_vars(Some(&file), None, Vec::new()).expect("valid");
    let l = &c.listeners[0];
    assert_eq!(l.transport, Transport::Tls);
    assert_eq!(
        l.tls_cert.as_deref(),
        Some(std::path::Path::new("cert.pem"))
    );
    assert_eq!(l.tls_handshake_timeout_ms, 5000);

    std::fs::write(
        &file,
        "[[listener]]\nname = \"rpcs\"\ntransport = \"tls\"\ntls_cert = \"cert.pem\"\n",
    )
    .expect("write");
    let e = Config::load_with_vars(Some(&file), None, Vec::new()).expect_err("no key");
    assert_eq!(e.key(), Some("listener[0].tls_key"), "{e}");
    assert!(e.to_string().contains("tls.toml"), "{e}");
}

/// `corral call --tls --tls-ca` (and `--transport tls`) against the node.
#[cfg(feature = "cli")]
#[tokio::test]
async fn corral_call_over_tls() {
    guarded(async {
        let pki = pki();
        let (node, addr) = start(&pki).await;
        let bin = env!("CARGO_BIN_EXE_corral");
        let run = |args: Vec<String>| async move {
            tokio::process::Command::new(bin)
                .args(&args)
                .kill_on_drop(true)
                .output()
                .await
                .expect("run corral")
        };
        let ca = pki.cert.display().to_string();
        let target = localhost(addr);

        for codec in ["json", "msgpack"] {
            let out = run(vec![
                "call".into(),
                "echo".into(),
                r#"{"payload":"over tls"}"#.into(),
                "--addr".into(),
                target.clone(),
                "--codec".into(),
                codec.into(),
                "--tls".into(),
                "--tls-ca".into(),
                ca.clone(),
            ])
            .await;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{codec}: {stdout} {stderr}");
            let reply: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
            assert_eq!(reply["payload"], "over tls");
        }

        // By IP address with the name given, and --transport tls.
        let out = run(vec![
            "call".into(),
            "ping".into(),
            "--addr".into(),
            addr.to_string(),
            "--transport".into(),
            "tls".into(),
            "--tls-ca".into(),
            ca.clone(),
            "--tls-server-name".into(),
            "localhost".into(),
        ])
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Insecure: works, with a warning.
        let out = run(vec![
            "call".into(),
            "ping".into(),
            "--addr".into(),
            addr.to_string(),
            "--tls-insecure".into(),
        ])
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("warning"), "{stderr}");

        // --tls alone: nothing to trust, said before connecting.
        let out = run(vec![
            "call".into(),
            "ping".into(),
            "--addr".into(),
            target.clone(),
            "--tls".into(),
        ])
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("--tls-ca"), "{stderr}");

        // The wrong CA: a clear failure.
        let out = run(vec![
            "call".into(),
            "ping".into(),
            "--addr".into(),
            target.clone(),
            "--tls-ca".into(),
            pki.other_cert.display().to_string(),
            "--timeout".into(),
            "10".into(),
        ])
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("TLS handshake failed"), "{stderr}");

        // `bench rpc` over TLS too.
        let out = run(vec![
            "bench".into(),
            "rpc".into(),
            "--addr".into(),
            target.clone(),
            "--tls-ca".into(),
            ca.clone(),
            "--concurrency".into(),
            "2".into(),
            "--requests".into(),
            "200".into(),
            "--in-flight".into(),
            "8".into(),
            "--json".into(),
        ])
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_str(&stdout).expect("JSON summary");
        assert_eq!(summary["ok"], 200, "{summary}");
        assert_eq!(summary["transport"], "tls", "{summary}");

        // check-config shows a TLS listener's files.
        let file = pki.dir.path().join("tls.toml");
        std::fs::write(
            &file,
            format!(
                "[[listener]]\nname = \"rpcs\"\ntransport = \"tls\"\nport = 0\n\
                 tls_cert = {:?}\ntls_key = {:?}\n",
                pki.cert.display().to_string(),
                pki.key.display().to_string()
            ),
        )
        .expect("write");
        let out = run(vec![
            "check-config".into(),
            "--config".into(),
            file.display().to_string(),
        ])
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("rpc tls on"), "{stdout}");
        assert!(stdout.contains("tls: cert"), "{stdout}");
        node.shutdown().await;
    })
    .await;
}

/// A TLS client that pipelines requests and never reads its replies is cut
/// after rpc.write_stall_timeout_ms (idle_timeout_ms = 0: never), and its
/// max_connections slot goes to the next client.
#[tokio::test]
async fn a_tls_client_that_never_reads_is_cut_and_frees_its_slot() {
    guarded(async {
        use futures::SinkExt;
        let pki = pki();
        let mut c = config(pki.cert.clone(), pki.key.clone());
        c.listeners[0].max_connections = 1;
        c.rpc.idle_timeout_ms = 0;
        c.rpc.write_stall_timeout_ms = 300;
        let node = Node::start(c).await.expect("the node starts");
        let addr = node.local_addr("rpc").expect("bound");
        let trust = TlsClientOptions::ca_file(&pki.cert);
        let stuck = FrameConn::connect_tls(&localhost(addr), &trust)
            .await
            .expect("connect");
        let (mut sink, _unread) = stuck.into_parts();
        let body = Codec::Json
            .encode(&json!({"id": 1, "service": "echo", "data": {"p": "x".repeat(64 << 10)}}))
            .expect("encodes");
        let writer = tokio::spawn(async move {
            // 64 MiB: more than both ends' buffers hold.
            for _ in 0..1024 {
                if sink.send(body.clone()).await.is_err() {
                    return;
                }
            }
        });
        let next = Client::connect_tls(&localhost(addr), Codec::Json, &trust)
            .await
            .expect("connect");
        // Eventually (a generous bound, not a measurement).
        let r = tokio::time::timeout(Duration::from_secs(30), next.call("ping", json!({})))
            .await
            .expect("the stuck client is cut and the next one is served");
        assert_eq!(r.expect("ping"), json!({"pong": true}));
        writer.abort();
        node.shutdown().await;
    })
    .await;
}
