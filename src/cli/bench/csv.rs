//! `corral bench rpc|chat --csv FILE`: one row per run appended to FILE
//! (the ThreadCenter roadmap's CSV export), a header first when the file
//! is new or empty. Each bench says its columns by implementing [`Row`]
//! beside its summary; units are in the column names (`_s`, `_rps`,
//! `_per_s`, `_us`, `_ms`).
//!
//! The file is opened before the run, so that an unwritable path fails at
//! once rather than after minutes of load; a non-empty file whose first
//! line is not the bench's header is refused (its rows would not line up).
//!
//! Fields are written as RFC 4180 says: quoted when they hold a comma, a
//! quote, a line break or edge spaces, with quotes doubled. The writer is
//! a dozen lines, for one row of numbers and a few names per run: the `csv`
//! crate would add a dependency for nothing we need.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A run's summary as one CSV row.
pub(crate) trait Row {
    /// The columns, in order.
    const HEADER: &'static [&'static str];
    /// The fields of the run started at `timestamp` (RFC 3339, UTC), in
    /// [`Row::HEADER`]'s order.
    fn fields(&self, timestamp: &str) -> Vec<String>;
}

/// The CSV file of rows `R`, open for appending.
pub(crate) struct CsvFile<R> {
    file: File,
    path: PathBuf,
    needs_header: bool,
    rows: PhantomData<fn(&R)>,
}

impl<R: Row> CsvFile<R> {
    /// Opens (or creates) `path` for appending and checks its header.
    pub(crate) fn open(path: &Path) -> anyhow::Result<CsvFile<R>> {
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
        let header = line(R::HEADER);
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
            rows: PhantomData,
        })
    }

    /// Appends the row of `run` (after the header, on a new file), started
    /// at `timestamp` (RFC 3339, UTC).
    pub(crate) fn append(&mut self, run: &R, timestamp: &str) -> anyhow::Result<()> {
        let mut text = String::new();
        if self.needs_header {
            text.push_str(&line(R::HEADER));
        }
        text.push_str(&line(run.fields(timestamp)));
        // One write: appends of concurrent runs do not interleave.
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("cannot write the --csv file {}", self.path.display()))?;
        self.needs_header = false;
        Ok(())
    }
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

    /// Two columns, for the writer's own tests.
    struct Pair(&'static str, u32);

    impl Row for Pair {
        const HEADER: &'static [&'static str] = &["timestamp_utc", "name", "n"];
        fn fields(&self, timestamp: &str) -> Vec<String> {
            vec![
                timestamp.to_string(),
                self.0.to_string(),
                self.1.to_string(),
            ]
        }
    }

    #[test]
    fn header_is_written_once_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("runs.csv");
        for n in [1, 2] {
            let mut csv = CsvFile::<Pair>::open(&path).expect("opens");
            csv.append(&Pair("a, \"b\"", n), "2024-02-29T23:59:58Z")
                .expect("appends");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "timestamp_utc,name,n\n\
             2024-02-29T23:59:58Z,\"a, \"\"b\"\"\",1\n\
             2024-02-29T23:59:58Z,\"a, \"\"b\"\"\",2\n"
        );

        let other = dir.path().join("other.csv");
        std::fs::write(&other, "a,b\n1,2\n").expect("write");
        let e = CsvFile::<Pair>::open(&other)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("other columns"), "{e}");
        assert_eq!(std::fs::read_to_string(&other).expect("read"), "a,b\n1,2\n");
    }
}
