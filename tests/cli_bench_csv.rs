//! `corral bench rpc --csv FILE` and `corral bench chat --csv FILE`
//! against a real node: each run appends one row (the header once, on a
//! new file) whose numbers parse; an unwritable file is refused before the
//! run, with a clear message.

mod support {
    pub(crate) mod serve;
}

use std::path::Path;
use std::process::{Command, Output};

use support::serve::Serve;

/// Runs `corral bench rpc ARGS --csv CSV` (short, two connections).
fn bench(addr: &str, csv: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["bench", "rpc", "--addr", addr])
        .args([
            "--requests",
            "400",
            "--concurrency",
            "2",
            "--in-flight",
            "4",
        ])
        .args(["--warmup", "2", "--json", "--csv"])
        .arg(csv)
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .expect("corral bench runs")
}

const HEADER: &str = "timestamp_utc,addr,transport,service,codec,shape,size,connections,\
in_flight,threads,duration_s,requests,ok,errors,throughput_rps,mean_us,p50_us,p90_us,\
p99_us,p999_us,max_us,first_error";

#[test]
fn bench_appends_one_row_per_run_under_one_header() {
    let node = Serve::start(&[("CORRAL__CHAT__ENABLED", "false")]);
    let addr = node.listening("rpc").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("runs.csv");
    // The second run on a file that exists: no second header.
    for extra in [&[][..], &["--codec", "msgpack"][..]] {
        let out = bench(&addr, &csv, extra);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&csv).expect("the csv file");
    assert!(!text.contains('"'), "nothing here needs quoting: {text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], HEADER);
    let columns: Vec<&str> = HEADER.split(',').collect();
    for (row, codec) in lines[1..].iter().zip(["json", "msgpack"]) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), columns.len(), "{row}");
        let get = |name: &str| {
            let i = columns.iter().position(|c| *c == name).expect("a column");
            fields[i]
        };
        let ts = get("timestamp_utc");
        assert!(
            ts.len() == 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
        assert_eq!(get("addr"), addr);
        assert_eq!(get("transport"), "tcp");
        assert_eq!(get("service"), "echo");
        assert_eq!(get("codec"), codec);
        assert_eq!(get("connections"), "2");
        assert_eq!(get("in_flight"), "4");
        assert_eq!(get("requests"), "400");
        assert_eq!(get("ok"), "400");
        assert_eq!(get("errors"), "0");
        assert_eq!(get("first_error"), "");
        for name in [
            "duration_s",
            "throughput_rps",
            "mean_us",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us",
        ] {
            let v: f64 = get(name)
                .parse()
                .unwrap_or_else(|e| panic!("{name}: {e}: {row}"));
            assert!(v > 0.0 && v.is_finite(), "{name} = {v}: {row}");
        }
        let p = |name: &str| get(name).parse::<f64>().unwrap_or(f64::NAN);
        assert!(
            p("p50_us") <= p("p90_us") && p("p90_us") <= p("p99_us") && p("p99_us") <= p("max_us"),
            "{row}"
        );
    }
}

#[test]
fn bench_refuses_an_unwritable_csv_file_before_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("no such dir").join("runs.csv");
    // Nothing listens on port 1: had the run come first, it would report
    // connection errors instead.
    let out = bench("127.0.0.1:1", &csv, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--csv") && stderr.contains("no such dir"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no run: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bench_refuses_a_csv_file_with_other_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("other.csv");
    std::fs::write(&csv, "name,score\nx,1\n").expect("write");
    let out = bench("127.0.0.1:1", &csv, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("other columns"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&csv).expect("read"),
        "name,score\nx,1\n"
    );
}

const CHAT_HEADER: &str = "timestamp_utc,addr,sub_zmq,codec,subscribers,size,window,batch,\
threads,duration_s,published,acked,delivered,missing,errors,delivered_per_s,published_per_s,\
acked_per_s,mean_us,p50_us,p90_us,p99_us,p999_us,max_us,failovers,max_ack_gap_ms,first_error";

/// Runs `corral bench chat ARGS --csv CSV` (3 subscribers, 160 messages).
fn bench_chat(addr: &str, csv: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["bench", "chat", "--addr", addr])
        .args(["--subscribers", "3", "--messages", "160"])
        .args(["--window", "32", "--batch", "8", "--json", "--csv"])
        .arg(csv)
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .expect("corral bench runs")
}

#[test]
fn bench_chat_appends_one_row_per_run_under_its_header() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().to_string_lossy().into_owned();
    let node = Serve::start(&[
        ("CORRAL__CHAT__RATE_PER_SECOND", "0"),
        ("CORRAL__NODE__DATA_DIR", &data_dir),
    ]);
    let addr = node.listening("rpc").to_string();
    let csv = data.path().join("chat.csv");
    for extra in [&[][..], &["--codec", "msgpack", "--size", "100"][..]] {
        let out = bench_chat(&addr, &csv, extra);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&csv).expect("the csv file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], CHAT_HEADER);
    let columns: Vec<&str> = CHAT_HEADER.split(',').collect();
    for (row, (codec, size)) in lines[1..].iter().zip([("json", "64"), ("msgpack", "100")]) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), columns.len(), "{row}");
        let get = |name: &str| {
            let i = columns.iter().position(|c| *c == name).expect("a column");
            fields[i]
        };
        assert_eq!(get("addr"), addr);
        assert_eq!(get("sub_zmq"), "");
        assert_eq!(get("codec"), codec);
        assert_eq!(get("size"), size);
        assert_eq!(
            [get("subscribers"), get("window"), get("batch")],
            ["3", "32", "8"]
        );
        assert_eq!(
            [get("published"), get("acked"), get("delivered")],
            ["160", "160", "480"]
        );
        assert_eq!([get("missing"), get("errors")], ["0", "0"]);
        assert_eq!(get("first_error"), "");
        for name in [
            "duration_s",
            "delivered_per_s",
            "published_per_s",
            "acked_per_s",
            "mean_us",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us",
        ] {
            let v: f64 = get(name)
                .parse()
                .unwrap_or_else(|e| panic!("{name}: {e}: {row}"));
            assert!(v > 0.0 && v.is_finite(), "{name} = {v}: {row}");
        }
        let p = |name: &str| get(name).parse::<f64>().unwrap_or(f64::NAN);
        assert!(
            p("p50_us") <= p("p90_us") && p("p90_us") <= p("p99_us") && p("p99_us") <= p("max_us"),
            "{row}"
        );
    }
}

#[test]
fn bench_chat_refuses_an_unwritable_or_foreign_csv_file_before_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no such dir").join("chat.csv");
    // The RPC bench's file: other columns.
    let rpc_file = dir.path().join("rpc.csv");
    std::fs::write(&rpc_file, format!("{HEADER}\n")).expect("write");
    for (csv, says) in [(&missing, "no such dir"), (&rpc_file, "other columns")] {
        let out = bench_chat("127.0.0.1:1", csv, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("--csv") && stderr.contains(says),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "no run");
    }
    assert_eq!(
        std::fs::read_to_string(&rpc_file).expect("read"),
        format!("{HEADER}\n"),
        "left as it was"
    );
}
