//! `corral bench rpc|chat --hgrm FILE`: the run's whole latency
//! distribution as HdrHistogram's percentile distribution text (`.hgrm`),
//! laid out as its Java `outputPercentileDistribution` writes it (and
//! wrk2 prints it), which is what HdrHistogram's plotter
//! (`plotFiles.html`) reads:
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!     0.041983 0.000000000000          1           1.00
//!     0.058015 0.500000000000      20017           2.00
//!          ...
//!     1.234943 1.000000000000      40000
//! #[Mean    =     0.061233, StdDeviation   =     0.011200]
//! #[Max     =     1.234943, Total count    =        40000]
//! #[Buckets =           27, SubBuckets     =         2048]
//! ```
//!
//! One row per percentile step (5 ticks per half distance, as wrk2 and
//! HdrHistogram's own tools print): the highest value equivalent to the
//! level's, the level, the count of values at or below it, and 1/(1-level)
//! (the plotter's x axis), left off on the last row (level 1). Values are
//! in milliseconds, the plotter's unit, with six decimals: the nanosecond
//! the bench records. The file holds one run: it is overwritten.
//!
//! The hdrhistogram crate has the percentile iterator this walks but no
//! writer of this text (only an example with other columns), hence this
//! one.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use hdrhistogram::Histogram;

/// Percentile steps per halving of the distance to 100%.
const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// The bench records nanoseconds; the file says milliseconds.
const NS_PER_MS: f64 = 1e6;
/// Decimals of the values in milliseconds (to the nanosecond).
const DECIMALS: usize = 6;

/// The `--hgrm` file, open (and so known to be writable) before the run.
pub(crate) struct HgrmFile {
    file: File,
    path: PathBuf,
}

impl HgrmFile {
    /// Opens (or creates) `path` for writing without emptying it: an
    /// unwritable path fails now, and a run that fails leaves the file
    /// as it was.
    pub(crate) fn open(path: &Path) -> anyhow::Result<HgrmFile> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot write the --hgrm file {}", path.display()))?;
        Ok(HgrmFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Replaces the file's content with the distribution of `hist`
    /// (nanoseconds).
    pub(crate) fn write(mut self, hist: &Histogram<u64>) -> anyhow::Result<()> {
        let text = distribution(hist, NS_PER_MS, DECIMALS);
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .and_then(|()| self.file.write_all(text.as_bytes()))
            .and_then(|()| self.file.flush())
            .with_context(|| format!("cannot write the --hgrm file {}", self.path.display()))
    }
}

/// The percentile distribution of `hist` as text, values divided by
/// `unit_ratio` and written with `decimals` decimals.
pub(crate) fn distribution(hist: &Histogram<u64>, unit_ratio: f64, decimals: usize) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in hist.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / unit_ratio;
        let level = v.quantile_iterated_to();
        let _ = write!(out, "{value:12.decimals$} {level:2.12} {total:10}");
        if level < 1.0 {
            let _ = write!(out, " {:14.2}", 1.0 / (1.0 - level));
        }
        out.push('\n');
    }
    let scaled = |x: f64| x / unit_ratio;
    let _ = writeln!(
        out,
        "#[Mean    = {:12.decimals$}, StdDeviation   = {:12.decimals$}]",
        scaled(hist.mean()),
        scaled(hist.stdev()),
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.decimals$}, Total count    = {:12}]",
        scaled(hist.max() as f64),
        hist.len(),
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        hist.buckets(),
        sub_buckets(hist.sigfig()),
    );
    out
}

/// The sub-buckets of each bucket of a histogram of `sigfig` significant
/// digits: the power of two that holds 2 × 10^sigfig values at unit
/// resolution (the crate keeps the count private; HdrHistogram derives it
/// so).
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1, 2, …, 100 once each: values below 2048 are exact at 3 digits,
    /// so every level's value is known.
    fn one_to_hundred() -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 1_000_000, 3).expect("bounds");
        for v in 1..=100 {
            h.record(v).expect("in range");
        }
        h
    }

    #[test]
    fn distribution_of_a_known_histogram() {
        let text = distribution(&one_to_hundred(), 1.0, 3);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // Levels step by 10% to 50%, 5% to 75%, 2.5% to 87.5%, ...: the
        // value at each is the smallest with that share at or below it.
        // The iterator adds each step to the level in floating point, as
        // HdrHistogram's Java iterator does, so 0.1 + 0.1 + 0.1 is
        // 0.30000000000000004 and its value 31; 0.75 is 0.7500000000000002,
        // so 76.
        assert_eq!(
            lines[2],
            "       1.000 0.000000000000          1           1.00"
        );
        assert_eq!(
            lines[3],
            "      10.000 0.100000000000         10           1.11"
        );
        assert_eq!(
            lines[4],
            "      20.000 0.200000000000         20           1.25"
        );
        assert_eq!(
            lines[5],
            "      31.000 0.300000000000         31           1.43"
        );
        assert_eq!(
            lines[7],
            "      50.000 0.500000000000         50           2.00"
        );
        assert_eq!(
            lines[8],
            "      55.000 0.550000000000         55           2.22"
        );
        assert_eq!(
            lines[12],
            "      76.000 0.750000000000         76           4.00"
        );
        assert_eq!(
            lines[13],
            "      78.000 0.775000000000         78           4.44"
        );
        let rows = &lines[2..lines.len() - 3];
        // The last row: 100% with no 1/(1-Percentile) column.
        assert_eq!(
            rows.last().copied(),
            Some("     100.000 1.000000000000        100")
        );
        // Every row but the last has four columns, levels and counts rise,
        // and 1/(1-Percentile) is what it says.
        let mut previous = (-1.0, 0u64);
        for row in &rows[..rows.len() - 1] {
            let cols: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(cols.len(), 4, "{row}");
            let level: f64 = cols[1].parse().expect("level");
            let count: u64 = cols[2].parse().expect("count");
            let inverse: f64 = cols[3].parse().expect("1/(1-level)");
            assert!(level > previous.0 && count >= previous.1, "{row}");
            assert!((inverse - 1.0 / (1.0 - level)).abs() < 0.006, "{row}");
            previous = (level, count);
        }
        // Mean 50.5, standard deviation sqrt((100² − 1) / 12) = 28.866.
        assert_eq!(
            &lines[lines.len() - 3..],
            [
                "#[Mean    =       50.500, StdDeviation   =       28.866]",
                "#[Max     =      100.000, Total count    =          100]",
                "#[Buckets =           10, SubBuckets     =         2048]",
            ]
        );
    }

    #[test]
    fn values_are_scaled_to_the_unit() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000_000, 3).expect("bounds");
        h.record(1_500).expect("in range"); // 1.5 µs
        let text = distribution(&h, NS_PER_MS, DECIMALS);
        assert!(
            text.contains("\n    0.001500 1.000000000000          1\n"),
            "{text}"
        );
        assert!(text.contains("#[Max     =     0.001500, Total count    =            1]"));
    }

    #[test]
    fn empty_histogram_has_no_rows() {
        let h = Histogram::<u64>::new_with_bounds(1, 1_000, 3).expect("bounds");
        let text = distribution(&h, 1.0, 3);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[4].starts_with("#[Buckets ="), "{text}");
    }

    #[test]
    fn sub_buckets_as_hdrhistogram_derives_them() {
        assert_eq!(sub_buckets(0), 2);
        assert_eq!(sub_buckets(2), 256);
        assert_eq!(sub_buckets(3), 2048);
        assert_eq!(sub_buckets(5), 262_144);
    }

    #[test]
    fn the_file_is_replaced_and_an_unwritable_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run.hgrm");
        std::fs::write(&path, "~".repeat(10_000)).expect("write");
        HgrmFile::open(&path)
            .expect("opens")
            .write(&one_to_hundred())
            .expect("writes");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("       Value"), "{text}");
        assert!(!text.contains('~'), "the old content is gone");

        let bad = dir.path().join("missing dir").join("run.hgrm");
        let e = HgrmFile::open(&bad).err().expect("refused");
        let e = format!("{e:#}");
        assert!(e.contains("--hgrm") && e.contains("missing dir"), "{e}");
    }
}
