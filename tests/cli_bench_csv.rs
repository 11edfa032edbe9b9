//! `corral bench rpc --csv FILE` against a real node: each run appends one
//! row (the header once, on a new file) whose numbers parse; an unwritable
//! file is refused before the run, with a clear message.

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
