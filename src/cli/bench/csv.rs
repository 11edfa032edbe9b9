//! `corral bench rpc --csv FILE`: one row per run appended to FILE (the
//! ThreadCenter roadmap's CSV export), a header first when the file is new
//! or empty. Units are in the column names (`_s`, `_rps`, `_us`).
//!
//! The file is opened before the run, so that an unwritable path fails at
//! once rather than after minutes of load; a non-empty file whose first
//! line is not this header is refused (its rows would not line up).
//!
//! Fields are written as RFC 4180 says: quoted when they hold a comma, a
//! quote, a line break or edge spaces, with quotes doubled. The writer is
//! a dozen lines, for one row of numbers and a few names per run: the `csv`
//! crate would add a dependency for nothing we need.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::Summary;

/// The columns, in order.
pub(crate) const HEADER: [&str; 22] = [
    "timestamp_utc",
    "addr",
    "transport",
    "service",
    "codec",
    "shape",
    "size",
    "connections",
    "in_flight",
    "threads",
    "duration_s",
    "requests",
    "ok",
    "errors",
    "throughput_rps",
    "mean_us",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "max_us",
    "first_error",
];

/// The CSV file, open for appending.
pub(crate) struct CsvFile {
    file: File,
    path: PathBuf,
    needs_header: bool,
}

impl CsvFile {
    /// Opens (or creates) `path` for appending and checks its header.
    pub(crate) fn open(path: &Path) -> anyhow::Result<CsvFile> {
        let what = || format!("cannot write the --csv file {}", path.display());
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(what)?;
        let mut first = String::new();
        BufReader::new(&file)
            .take(64 * 1024)
            .read_line(&mut first)
            .with_context(what)?;
        let needs_header = first.is_empty();
        let header = line(HEADER);
        if !needs_header && first != header {
            bail!(
                "the --csv file {} holds other columns (its first line is not \
                 corral's header: {:?}); give another file",
                path.display(),
                header.trim_end()
            );
        }
        Ok(CsvFile {
            file,
            path: path.to_path_buf(),
            needs_header,
        })
    }

    /// Appends the row of `s` (after the header, on a new file), started at
    /// `timestamp` (RFC 3339, UTC).
    pub(crate) fn append(&mut self, s: &Summary, timestamp: &str) -> anyhow::Result<()> {
        let mut text = String::new();
        if self.needs_header {
            text.push_str(&line(HEADER));
        }
        text.push_str(&line(row(s, timestamp)));
        // One write: appends of concurrent runs do not interleave.
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("cannot write the --csv file {}", self.path.display()))?;
        self.needs_header = false;
        Ok(())
    }
}

/// The fields of a run's row, in [`HEADER`]'s order.
fn row(s: &Summary, timestamp: &str) -> Vec<String> {
    let l = &s.latency_us;
    vec![
        timestamp.to_string(),
        s.addr.clone(),
        s.transport.clone(),
        s.cmd.to_string(),
        s.codec.to_string(),
        s.shape.to_string(),
        s.size.to_string(),
        s.connections.to_string(),
        s.in_flight.to_string(),
        s.threads.to_string(),
        format!("{:.3}", s.elapsed_s),
        (s.ok + s.errors).to_string(),
        s.ok.to_string(),
        s.errors.to_string(),
        format!("{:.1}", s.rps),
        format!("{:.1}", l.mean),
        format!("{:.1}", l.p50),
        format!("{:.1}", l.p90),
        format!("{:.1}", l.p99),
        format!("{:.1}", l.p999),
        format!("{:.1}", l.max),
        s.first_error.clone().unwrap_or_default(),
    ]
}

/// One CSV line (CRLF-free: `\n`), each field escaped.
fn line<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, f.as_ref());
    }
    out.push('\n');
    out
}

/// Appends `f` to `out`, quoted (quotes doubled) when it must be.
fn field(out: &mut String, f: &str) {
    let quote = f.contains([',', '"', '\n', '\r']) || f.starts_with(' ') || f.ends_with(' ');
    if !quote {
        out.push_str(f);
        return;
    }
    out.push('"');
    for c in f.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// `t` as RFC 3339 UTC to the second: `2026-12-03T20:18:54Z`.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_they_must_be() {
        assert_eq!(line(["a", "1.5", ""]), "a,1.5,\n");
        assert_eq!(
            line(["x,y", "say \"hi\"", "two\nlines", " pad", "cr\r"]),
            "\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\",\" pad\",\"cr\r\"\n"
        );
    }

    #[test]
    fn timestamps_are_utc() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_709_251_198).expect("in range");
        assert_eq!(rfc3339(t), "2024-02-29T23:59:58Z");
    }

    #[test]
    fn header_is_written_once_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("runs.csv");
        let summary = Summary {
            addr: "127.0.0.1:7070".into(),
            transport: "tcp".into(),
            cmd: "echo",
            codec: "json",
            shape: "native",
            size: 64,
            connections: 2,
            in_flight: 4,
            threads: 1,
            requests: 10,
            ok: 9,
            errors: 1,
            elapsed_s: 0.5,
            rps: 18.0,
            latency_us: super::super::Latency {
                mean: 2.0,
                p50: 1.0,
                p90: 2.5,
                p99: 3.0,
                p999: 4.0,
                max: 5.0,
            },
            first_error: Some("error reply X: a, \"b\"".into()),
        };
        for _ in 0..2 {
            let mut csv = CsvFile::open(&path).expect("opens");
            csv.append(&summary, "2024-02-29T23:59:58Z")
                .expect("appends");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], HEADER.join(","));
        assert_eq!(
            lines[1],
            "2024-02-29T23:59:58Z,127.0.0.1:7070,tcp,echo,json,native,64,2,4,1,0.500,10,9,1,\
             18.0,2.0,1.0,2.5,3.0,4.0,5.0,\"error reply X: a, \"\"b\"\"\""
        );
        assert_eq!(lines[1], lines[2]);

        let other = dir.path().join("other.csv");
        std::fs::write(&other, "a,b\n1,2\n").expect("write");
        let e = CsvFile::open(&other).err().expect("refused").to_string();
        assert!(e.contains("other columns"), "{e}");
        assert_eq!(std::fs::read_to_string(&other).expect("read"), "a,b\n1,2\n");
    }
}
