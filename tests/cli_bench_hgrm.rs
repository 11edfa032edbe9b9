//! `corral bench rpc|chat --hgrm FILE` against a real node: the file is
//! HdrHistogram's percentile distribution text (header, rows, the
//! Mean/Max/Buckets footer) and agrees with the run's `--json` summary;
//! a second run replaces it; an unwritable file is refused before the
//! run, with a message naming it.

mod support {
    pub(crate) mod serve;
}

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::serve::Serve;

/// Runs `corral bench ARGS --json` (logs off).
fn corral_bench(args: &[&str], hgrm: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("bench")
        .args(args)
        .args(["--json", "--hgrm"])
        .arg(hgrm)
        .env_remove("RUST_LOG")
        .output()
        .expect("corral bench runs")
}

/// `corral bench rpc` with two connections, 4 in flight.
fn bench_rpc(addr: &str, hgrm: &Path, requests: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "rpc",
        "--addr",
        addr,
        "--requests",
        requests,
        "--concurrency",
        "2",
        "--in-flight",
        "4",
        "--warmup",
        "2",
    ];
    args.extend_from_slice(extra);
    corral_bench(&args, hgrm)
}

/// The run's `--json` summary; the run must have succeeded.
fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// What an .hgrm file says.
#[derive(Debug)]
struct Hgrm {
    /// (value in ms, percentile level, total count) per row.
    rows: Vec<(f64, f64, u64)>,
    mean_ms: f64,
    max_ms: f64,
    total: u64,
}

/// The two `name = number` pairs of a footer line `#[a = x, b = y]`.
fn footer(line: &str, first: &str, second: &str) -> (f64, f64) {
    let inner = line
        .strip_prefix("#[")
        .and_then(|l| l.strip_suffix(']'))
        .unwrap_or_else(|| panic!("footer: {line}"));
    let (a, b) = inner.split_once(',').expect("two pairs");
    let value = |pair: &str, name: &str| -> f64 {
        let (k, v) = pair.split_once('=').expect("name = value");
        assert_eq!(k.trim(), name, "{line}");
        v.trim().parse().expect("a number")
    };
    (value(a, first), value(b, second))
}

/// Reads and checks the layout of an .hgrm file.
fn parse(path: &Path) -> Hgrm {
    let text = std::fs::read_to_string(path).expect("the hgrm file");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 5, "{text}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"],
        "{text}"
    );
    assert_eq!(lines[1], "", "{text}");
    let body = &lines[2..lines.len() - 3];
    let mut rows = Vec::new();
    for (i, line) in body.iter().enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let last = i == body.len() - 1;
        assert_eq!(cols.len(), if last { 3 } else { 4 }, "{line}");
        let row = (
            cols[0].parse::<f64>().expect("value"),
            cols[1].parse::<f64>().expect("percentile"),
            cols[2].parse::<u64>().expect("count"),
        );
        if !last {
            let inverse: f64 = cols[3].parse().expect("1/(1-Percentile)");
            assert!((inverse - 1.0 / (1.0 - row.1)).abs() < 0.006, "{line}");
        }
        if let Some(&(v, p, c)) = rows.last() {
            assert!(row.0 >= v && row.1 > p && row.2 >= c, "rows rise: {line}");
        }
        rows.push(row);
    }
    let n = lines.len();
    let (mean_ms, stdev_ms) = footer(lines[n - 3], "Mean", "StdDeviation");
    let (max_ms, total) = footer(lines[n - 2], "Max", "Total count");
    let (buckets, sub_buckets) = footer(lines[n - 1], "Buckets", "SubBuckets");
    assert!(stdev_ms >= 0.0 && buckets >= 1.0, "{text}");
    assert_eq!(sub_buckets, 2048.0, "3 significant digits: {text}");
    let hgrm = Hgrm {
        rows,
        mean_ms,
        max_ms,
        total: total as u64,
    };
    let (first, last) = (hgrm.rows[0], hgrm.rows[hgrm.rows.len() - 1]);
    assert_eq!(first.1, 0.0, "{text}");
    assert_eq!(last.1, 1.0, "{text}");
    assert_eq!(last.2, hgrm.total, "{text}");
    assert_eq!(last.0, hgrm.max_ms, "{text}");
    assert!(first.0 > 0.0 && hgrm.mean_ms >= first.0 && hgrm.mean_ms <= hgrm.max_ms);
    hgrm
}

/// An .hgrm value (ms, 6 decimals) and a --json one (µs) name the same
/// nanosecond figure.
fn same_ns(ms: f64, us: &Value) -> bool {
    let us = us.as_f64().expect("a number");
    (ms * 1e6 - us * 1e3).abs() < 1.0
}

#[test]
fn bench_rpc_writes_the_distribution_of_its_run() {
    let node = Serve::start(&[("CORRAL__CHAT__ENABLED", "false")]);
    let addr = node.listening("rpc").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rpc.hgrm");
    let s = summary(&bench_rpc(&addr, &path, "400", &[]));
    let hgrm = parse(&path);
    assert_eq!(s["ok"], 400);
    assert_eq!(hgrm.total, 400, "one latency per request");
    assert!(same_ns(hgrm.max_ms, &s["latency_us"]["max"]), "{s}");
    // The mean is printed to the nanosecond, the summary's is exact.
    let mean_us = s["latency_us"]["mean"].as_f64().expect("mean");
    assert!((hgrm.mean_ms * 1e3 - mean_us).abs() < 0.01, "{s}");

    // A second, smaller run replaces the file.
    let s = summary(&bench_rpc(&addr, &path, "100", &["--codec", "msgpack"]));
    let hgrm = parse(&path);
    assert_eq!(s["ok"], 100);
    assert_eq!(hgrm.total, 100);
}

#[test]
fn bench_chat_writes_the_distribution_of_its_deliveries() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().to_string_lossy().into_owned();
    let node = Serve::start(&[
        ("CORRAL__CHAT__RATE_PER_SECOND", "0"),
        ("CORRAL__NODE__DATA_DIR", &data_dir),
    ]);
    let addr = node.listening("rpc").to_string();
    let path = data.path().join("chat.hgrm");
    let out = corral_bench(
        &[
            "chat",
            "--addr",
            &addr,
            "--subscribers",
            "4",
            "--messages",
            "320",
            "--window",
            "64",
            "--batch",
            "16",
        ],
        &path,
    );
    let s = summary(&out);
    assert_eq!(s["delivered"], 4 * 320, "{s}");
    let hgrm = parse(&path);
    // One push in 16 of each subscriber's is timed.
    assert_eq!(hgrm.total, 4 * 320 / 16, "{s}");
    assert!(same_ns(hgrm.max_ms, &s["latency_us"]["max"]), "{s}");
}

#[test]
fn bench_refuses_an_unwritable_hgrm_file_before_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no such dir").join("run.hgrm");
    // Nothing listens on port 1: had the run come first, it would report
    // connection errors instead.
    for (args, path) in [
        (&["rpc", "--addr", "127.0.0.1:1"][..], &missing),
        (&["chat", "--addr", "127.0.0.1:1"][..], &missing),
        // A directory is no file to write.
        (
            &["chat", "--addr", "127.0.0.1:1"][..],
            &dir.path().to_path_buf(),
        ),
    ] {
        let out = corral_bench(args, path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write the --hgrm file")
                && stderr.contains(&*path.to_string_lossy()),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: no run");
    }
}
