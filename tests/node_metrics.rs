//! A real node's metrics: what `Metrics::render` reports after real traffic,
//! and `/metrics` and `/health` served over real HTTP by the node's own
//! HTTP listener, with the exposition checked by `promtool check metrics`
//! (Debian package `prometheus`; the test fails if promtool is missing).
//!
//! Tests synchronise on events (replies, closed sockets, supervisor state)
//! and poll states in bounded loops; no assertion is about time.

mod support {
    pub(crate) mod child_cell;
    pub(crate) mod guard;
    pub(crate) mod wait;
}

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::child_cell::child_cell;
use support::guard::guarded;
use support::wait::wait_until;

use corral::client::{Client, Codec};
use corral::config::{Config, ListenerConfig, ProtocolKind};
use corral::metrics::MetricsMsg;
use corral::node::Node;
use corral::supervisor::Supervisor;
use corral::transport::Transport;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn listener(name: &str, protocol: ProtocolKind) -> ListenerConfig {
    let mut l = ListenerConfig::new(name, Transport::Tcp, protocol, 0);
    l.drain_timeout_ms = 2_000;
    l
}

/// The embedded default with an RPC listener named `rpc_name` and an HTTP
/// listener `http`, both on free ports.
fn config(rpc_name: &str) -> Config {
    let mut c = Config::embedded_default();
    c.chat.enabled = false;
    c.listeners = vec![
        listener(rpc_name, ProtocolKind::Rpc),
        listener("http", ProtocolKind::Http),
    ];
    c
}

async fn start(config: Config) -> Node {
    Node::start(config).await.expect("the node starts")
}

/// The value of the sample `name{labels}` exactly as rendered (labels in the
/// encoder's order, sorted by name), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().expect("a number"))
    })
}

fn has_family(text: &str, name: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with(&format!("# TYPE {name} ")))
}

// Counters after real traffic: requests by service and outcome, connections
// accepted and closed, a supervisor restart, and the process collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_counts_requests_connections_restarts_and_process() {
    guarded(async {
        // A listener name of its own: restart counters are process-wide.
        let name = "rpc_metrics";
        let node = start(config(name)).await;
        let addr = node.local_addr(name).expect("bound");
        let handle = node.listener(name).expect("listener").clone();

        let mut clients = Vec::new();
        for codec in [Codec::Json, Codec::MsgPack, Codec::Json] {
            clients.push(Client::connect(addr, codec).await.expect("connects"));
        }
        for (i, c) in clients.iter().enumerate() {
            for j in 0..3 {
                let r = c.call("echo", json!({"i": i, "j": j})).await.expect("echo");
                assert_eq!(r, json!({"i": i, "j": j}));
            }
        }
        // 9 echo calls, 2 pings, 1 unknown service.
        let c = &clients[0];
        c.call("ping", json!({})).await.expect("ping");
        c.call("ping", json!({})).await.expect("ping");
        assert!(c.call("nope", json!({})).await.is_err());
        drop(clients);
        wait_until("the connections are closed", || handle.connections() == 0).await;

        // Kill the listener once; rest_for_one restarts it.
        let sup_id = format!("listener_sup:{name}");
        let sup = Supervisor::from_cell(child_cell(node.root(), &sup_id).await.expect("running"))
            .expect("a supervisor");
        let old = child_cell(&sup, "listener").await.expect("running");
        old.kill();
        for _ in 0..2_000 {
            match child_cell(&sup, "listener").await {
                Some(cell) if cell.get_id() != old.get_id() => break,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        assert_ne!(
            child_cell(&sup, "listener").await.map(|c| c.get_id()),
            Some(old.get_id()),
            "the listener was restarted"
        );

        let text = node.metrics().render();
        let l = format!("listener=\"{name}\"");
        assert_eq!(
            sample(
                &text,
                "corral_rpc_requests_total{outcome=\"ok\",service=\"echo\"}"
            ),
            Some(9.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "corral_rpc_requests_total{outcome=\"ok\",service=\"ping\"}"
            ),
            Some(2.0),
            "{text}"
        );
        // Unknown services share one bounded label.
        assert_eq!(
            sample(
                &text,
                "corral_rpc_requests_total{outcome=\"UNKNOWN_SERVICE\",service=\"unknown\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert!(!text.contains("service=\"nope\""), "{text}");
        assert_eq!(
            sample(&text, &format!("corral_connections_accepted_total{{{l}}}")),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("corral_connections_closed_total{{{l}}}")),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("corral_connections_active{{{l}}}")),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    "corral_supervisor_restarts_total{{child=\"listener\",supervisor=\"{sup_id}\"}}"
                )
            ),
            Some(1.0),
            "{text}"
        );
        assert!(
            has_family(&text, "corral_rpc_request_duration_seconds"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "corral_rpc_request_duration_seconds_count{outcome=\"ok\",service=\"echo\"}"
            ),
            Some(9.0),
            "{text}"
        );
        for process in [
            "corral_process_resident_memory_bytes",
            "corral_process_cpu_seconds_total",
            "corral_process_open_fds",
        ] {
            assert!(has_family(&text, process), "{process} missing: {text}");
            let v = sample(&text, process).expect("one sample");
            assert!(
                v > 0.0 || process.ends_with("cpu_seconds_total"),
                "{process} = {v}"
            );
        }
        node.shutdown().await;
    })
    .await;
}

/// A response read off the wire: status, headers (lower-cased names), body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh TCP connection (`Connection: close`),
/// read to EOF.
async fn http(addr: SocketAddr, method: &str, path: &str) -> Response {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("sent");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read to EOF");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("a header line");
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if method == "HEAD" {
        // A HEAD response has headers only, Content-Length included.
    } else if chunked {
        body = dechunk(&body);
    } else if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse::<usize>().expect("a length"))
    {
        assert_eq!(body.len(), len, "the body has its Content-Length");
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..eol])
                .expect("hex")
                .split(';')
                .next()
                .unwrap_or(""),
            16,
        )
        .expect("a hex chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Runs `promtool check metrics` on `text`; fails the test if promtool is
/// not installed or rejects the exposition.
fn promtool_check(text: &[u8]) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is required for this test and could not be run ({e}); \
             install it (Debian: apt-get install prometheus) so that `promtool` is on PATH"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text)
        .expect("feeds promtool");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// /metrics over real HTTP passes promtool, and shows the traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_metrics_pass_promtool() {
    guarded(async {
        let node = start(config("rpc")).await;
        let rpc = node.local_addr("rpc").expect("bound");
        let web = node.local_addr("http").expect("bound");
        let client = Client::connect(rpc, Codec::Json).await.expect("connects");
        for i in 0..4 {
            client.call("echo", json!({"i": i})).await.expect("echo");
        }
        client
            .call("compute", json!({"n": 100}))
            .await
            .expect("compute");
        let r = http(web, "GET", "/metrics").await;
        assert_eq!(r.status, 200);
        let ct = r.header("content-type").expect("a content type");
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let text = String::from_utf8(r.body.clone()).expect("UTF-8");
        assert_eq!(
            sample(
                &text,
                "corral_rpc_requests_total{outcome=\"ok\",service=\"echo\"}"
            ),
            Some(4.0),
            "{text}"
        );
        assert!(
            sample(
                &text,
                "corral_connections_accepted_total{listener=\"http\"}"
            )
            .is_some_and(|v| v >= 1.0),
            "the scrape's own connection is counted: {text}"
        );
        assert!(has_family(&text, "corral_process_open_fds"), "{text}");
        promtool_check(&r.body);

        let head = http(web, "HEAD", "/metrics").await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty(), "HEAD has no body");
        drop(client);
        node.shutdown().await;
    })
    .await;
}

// /health says ready while every listener accepts; unknown paths are 404;
// a POST to /metrics is 405 with Allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_not_found_and_method_not_allowed() {
    guarded(async {
        let node = start(config("rpc")).await;
        let web = node.local_addr("http").expect("bound");

        let r = http(web, "GET", "/health").await;
        assert_eq!(r.status, 200);
        let health: Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(health["ready"], json!(true), "{health}");
        assert_eq!(health["live"], json!(true), "{health}");
        assert_eq!(health["listeners"]["rpc"]["accepting"], json!(true));

        let r = http(web, "GET", "/no/such/path").await;
        assert_eq!(r.status, 404);

        let r = http(web, "POST", "/metrics").await;
        assert_eq!(r.status, 405);
        let allow = r.header("allow").expect("an Allow header");
        let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
        assert!(methods.contains(&"GET"), "{allow}");
        assert!(!methods.contains(&"POST"), "{allow}");

        // Not ready while the RPC listener is suspended; ready again after.
        let rpc = node.listener("rpc").expect("listener").clone();
        rpc.suspend().await.expect("suspends");
        let r = http(web, "GET", "/health").await;
        assert_eq!(r.status, 200);
        let health: Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(health["ready"], json!(false), "{health}");
        let r = http(web, "GET", "/health/ready").await;
        assert_eq!(r.status, 503);
        rpc.resume().await.expect("resumes");
        let r = http(web, "GET", "/health/ready").await;
        assert_eq!(r.status, 200);
        node.shutdown().await;
    })
    .await;
}

/// How many `# TYPE name ` lines (metric families) `text` has for `name`.
fn families(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(&format!("# TYPE {name} ")))
        .count()
}

// The metrics actor under metrics_sup owns the process collector: killed,
// it is restarted (counted as a restart), registers the collector again
// without a duplicate, and /metrics still renders with the process
// metrics; it answers Render; stopping the node unregisters the collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_metrics_actor_restarts_and_metrics_still_render() {
    guarded(async {
        let node = start(config("rpc")).await;
        let web = node.local_addr("http").expect("bound");
        let root_children: Vec<String> = node
            .root()
            .which_children()
            .await
            .expect("root answers")
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        assert_eq!(
            root_children.first().map(String::as_str),
            Some("metrics_sup")
        );
        let sup = Supervisor::from_cell(
            child_cell(node.root(), "metrics_sup")
                .await
                .expect("metrics_sup runs"),
        )
        .expect("a supervisor");
        let sup_ids: Vec<String> = sup
            .which_children()
            .await
            .expect("metrics_sup answers")
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        assert_eq!(sup_ids, ["metrics"]);

        // Twice: each incarnation registers over what a killed one left.
        for kills in 1..=2 {
            let old = child_cell(&sup, "metrics").await.expect("metrics runs");
            old.kill();
            let mut new = None;
            for _ in 0..2_000 {
                match child_cell(&sup, "metrics").await {
                    Some(cell) if cell.get_id() != old.get_id() => {
                        new = Some(cell);
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            let new = new.expect("metrics_sup restarted the metrics actor");

            let r = http(web, "GET", "/metrics").await;
            assert_eq!(r.status, 200);
            let text = String::from_utf8(r.body.clone()).expect("UTF-8");
            for process in [
                "corral_process_resident_memory_bytes",
                "corral_process_cpu_seconds_total",
                "corral_process_open_fds",
            ] {
                assert_eq!(families(&text, process), 1, "{process}: {text}");
            }
            assert_eq!(
                sample(
                    &text,
                    "corral_supervisor_restarts_total{child=\"metrics\",supervisor=\"metrics_sup\"}"
                ),
                Some(f64::from(kills)),
                "{text}"
            );
            promtool_check(&r.body);

            // The new actor answers a render request.
            let actor: ractor::ActorRef<MetricsMsg> = new.into();
            let rendered = ractor::call!(actor, MetricsMsg::Render).expect("the actor answers");
            assert_eq!(families(&rendered, "corral_process_open_fds"), 1);
        }
        // The root never saw metrics_sup fail.
        let text = node.metrics().render();
        assert_eq!(
            sample(
                &text,
                "corral_supervisor_restarts_total{child=\"metrics_sup\",supervisor=\"corral\"}"
            ),
            None,
            "{text}"
        );

        // Stopped with the node, the actor unregisters the collector.
        let metrics = node.metrics().clone();
        node.shutdown().await;
        let text = metrics.render();
        assert_eq!(families(&text, "corral_process_open_fds"), 0, "{text}");
        // The node's own metrics stay.
        assert!(
            has_family(&text, "corral_supervisor_restarts_total"),
            "{text}"
        );
    })
    .await;
}
