//! Counters and histograms written on every request, sharded by thread.
//!
//! A prometheus `IntCounter` or `Histogram` is one set of atomics that every
//! thread updates, so on a busy multi-threaded node each update pulls the
//! cache line from the core that updated it last. These keep one set per
//! shard instead, each shard on cache lines of its own, and a thread always
//! updates its own shard (threads take shards in turn; past 16 threads,
//! shards are shared, which costs speed, never counts). A scrape adds the
//! shards up. They register and render like the prometheus types.
// The HTTP service writes these; a build without it keeps them for the tests.
#![cfg_attr(not(feature = "http"), allow(dead_code))]

use crate::util::shard::{self, SHARDS};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Values per cache line.
const PER_LINE: usize = 16;

/// One cache line's worth of values, aligned so that no two shards share a
/// line (128 bytes: adjacent-line prefetching pairs 64-byte lines).
#[repr(align(128))]
#[derive(Default)]
struct Line([AtomicU64; PER_LINE]);

/// `slots` values for each of the [`SHARDS`] shards.
struct Cells {
    lines: Box<[Line]>,
    lines_per_shard: usize,
}

impl Cells {
    fn new(slots: usize) -> Self {
        let lines_per_shard = slots.div_ceil(PER_LINE).max(1);
        Cells {
            lines: (0..SHARDS * lines_per_shard)
                .map(|_| Line::default())
                .collect(),
            lines_per_shard,
        }
    }

    fn slot(&self, shard: usize, i: usize) -> &AtomicU64 {
        &self.lines[shard * self.lines_per_shard + i / PER_LINE].0[i % PER_LINE]
    }

    /// Slot `i` added up over the shards.
    fn total(&self, i: usize) -> u64 {
        (0..SHARDS)
            .map(|s| self.slot(s, i).load(Ordering::Acquire))
            .fold(0, u64::wrapping_add)
    }
}

/// The label values of each child of a vector, and its cells.
struct Family {
    desc: Desc,
    children: Mutex<Vec<(Vec<String>, Arc<Cells>)>>,
}

impl Family {
    fn new(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<Self> {
        let labels = labels.iter().map(|l| l.to_string()).collect();
        Ok(Family {
            desc: Desc::new(name.into(), help.into(), labels, HashMap::new())?,
            children: Mutex::new(Vec::new()),
        })
    }

    /// The cells of the child with these label values, made with `slots`
    /// slots if new.
    ///
    /// # Panics
    /// If the number of values is not the number of label names.
    fn child(&self, values: &[&str], slots: usize) -> Arc<Cells> {
        assert_eq!(
            values.len(),
            self.desc.variable_labels.len(),
            "{}: label values {values:?} do not match the label names",
            self.desc.fq_name
        );
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, cells)) = children.iter().find(|(v, _)| v == values) {
            return cells.clone();
        }
        let cells = Arc::new(Cells::new(slots));
        children.push((
            values.iter().map(|v| v.to_string()).collect(),
            cells.clone(),
        ));
        cells
    }

    /// A family of `kind` with one metric per child, made by `metric`.
    fn collect(
        &self,
        kind: MetricType,
        metric: impl Fn(&Cells) -> proto::Metric,
    ) -> Vec<MetricFamily> {
        let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        let metrics = children
            .iter()
            .map(|(values, cells)| {
                let mut m = metric(cells);
                let labels = self
                    .desc
                    .variable_labels
                    .iter()
                    .zip(values)
                    .map(|(name, value)| {
                        let mut pair = proto::LabelPair::default();
                        pair.set_name(name.clone());
                        pair.set_value(value.clone());
                        pair
                    })
                    .collect();
                m.set_label(labels);
                m
            })
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(kind);
        family.set_metric(metrics);
        vec![family]
    }
}

/// Counters by label values, sharded by thread (see the module docs).
#[derive(Clone)]
pub(crate) struct ShardedCounterVec {
    family: Arc<Family>,
}

/// One counter of a [`ShardedCounterVec`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ShardedCounter {
    cells: Arc<Cells>,
}

impl ShardedCounterVec {
    /// A counter vector named `name` (a counter's name ends in `_total`),
    /// with one label of each of `labels`.
    pub(crate) fn new(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<Self> {
        Ok(ShardedCounterVec {
            family: Arc::new(Family::new(name, help, labels)?),
        })
    }

    /// The counter of these label values, made (at 0) if new: it is
    /// exported from then on.
    ///
    /// # Panics
    /// If the number of values is not the number of label names.
    pub(crate) fn with_label_values(&self, values: &[&str]) -> ShardedCounter {
        ShardedCounter {
            cells: self.family.child(values, 1),
        }
    }
}

impl ShardedCounter {
    /// Adds one.
    pub(crate) fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`.
    pub(crate) fn inc_by(&self, n: u64) {
        self.cells
            .slot(shard::index(), 0)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// The count.
    pub(crate) fn get(&self) -> u64 {
        self.cells.total(0)
    }
}

impl Collector for ShardedCounterVec {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.family.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.family.collect(MetricType::COUNTER, |cells| {
            let mut counter = proto::Counter::default();
            counter.set_value(cells.total(0) as f64);
            let mut m = proto::Metric::default();
            m.set_counter(counter);
            m
        })
    }
}

impl std::fmt::Debug for ShardedCounterVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedCounterVec")
            .field("name", &self.family.desc.fq_name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ShardedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ShardedCounter").field(&self.get()).finish()
    }
}

/// Histograms by label values, sharded by thread (see the module docs).
#[derive(Clone)]
pub(crate) struct ShardedHistogramVec {
    family: Arc<Family>,
    bounds: Arc<[f64]>,
}

/// One histogram of a [`ShardedHistogramVec`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ShardedHistogram {
    cells: Arc<Cells>,
    bounds: Arc<[f64]>,
}

/// A histogram's slots: its count, its sum (the bits of an `f64`), then one
/// count per bucket bound (observations at most that bound and above the
/// one before; those above every bound are only in the count).
const COUNT: usize = 0;
const SUM: usize = 1;
const BUCKETS: usize = 2;

impl ShardedHistogramVec {
    /// A histogram vector named `name`, with one label of each of `labels`
    /// and these bucket upper bounds (`+Inf` is implied).
    ///
    /// Fails if the bounds are not finite and strictly increasing.
    pub(crate) fn new(
        name: &str,
        help: &str,
        labels: &[&str],
        bounds: Vec<f64>,
    ) -> prometheus::Result<Self> {
        if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(prometheus::Error::Msg(format!(
                "{name}: bucket bounds must be finite and strictly increasing: {bounds:?}"
            )));
        }
        Ok(ShardedHistogramVec {
            family: Arc::new(Family::new(name, help, labels)?),
            bounds: bounds.into(),
        })
    }

    /// The histogram of these label values, made (empty) if new: it is
    /// exported from then on.
    ///
    /// # Panics
    /// If the number of values is not the number of label names.
    pub(crate) fn with_label_values(&self, values: &[&str]) -> ShardedHistogram {
        ShardedHistogram {
            cells: self.family.child(values, BUCKETS + self.bounds.len()),
            bounds: self.bounds.clone(),
        }
    }
}

impl ShardedHistogram {
    /// Records one observation.
    pub(crate) fn observe(&self, v: f64) {
        let s = shard::index();
        // The count before the bucket, which is written with Release and
        // read first with Acquire: a scrape never sees a bucket above the
        // count.
        self.cells.slot(s, COUNT).fetch_add(1, Ordering::Relaxed);
        let _ =
            self.cells
                .slot(s, SUM)
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                    Some((f64::from_bits(bits) + v).to_bits())
                });
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.cells
                .slot(s, BUCKETS + i)
                .fetch_add(1, Ordering::Release);
        }
    }

    /// How many observations were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.cells.total(COUNT)
    }

    /// The sum of the observations.
    pub(crate) fn sum(&self) -> f64 {
        sum_of(&self.cells)
    }
}

/// A histogram's sum, added up over the shards.
fn sum_of(cells: &Cells) -> f64 {
    (0..SHARDS)
        .map(|s| f64::from_bits(cells.slot(s, SUM).load(Ordering::Relaxed)))
        .sum()
}

impl Collector for ShardedHistogramVec {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.family.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.family.collect(MetricType::HISTOGRAM, |cells| {
            let per_bucket: Vec<u64> = (0..self.bounds.len())
                .map(|i| cells.total(BUCKETS + i))
                .collect();
            let sum = sum_of(cells);
            let count = cells.total(COUNT);
            let mut cumulative = 0u64;
            let buckets = self
                .bounds
                .iter()
                .zip(per_bucket)
                .map(|(bound, n)| {
                    cumulative = cumulative.wrapping_add(n);
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(cumulative.min(count));
                    b
                })
                .collect();
            let mut h = proto::Histogram::default();
            h.set_sample_count(count);
            h.set_sample_sum(sum);
            h.set_bucket(buckets);
            let mut m = proto::Metric::default();
            m.set_histogram(h);
            m
        })
    }
}

impl std::fmt::Debug for ShardedHistogramVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedHistogramVec")
            .field("name", &self.family.desc.fq_name)
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ShardedHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedHistogram")
            .field("count", &self.count())
            .field("sum", &self.sum())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_renders_like_the_prometheus_types() -> Result<(), prometheus::Error> {
        let requests = ShardedCounterVec::new("requests_total", "Requests.", &["status"])?;
        let latency = ShardedHistogramVec::new(
            "request_duration_seconds",
            "Latency.",
            &["status"],
            vec![0.001, 0.01, 0.1],
        )?;
        requests.with_label_values(&["2xx"]).inc();
        latency.with_label_values(&["2xx"]).observe(0.005);
        assert_eq!(requests.with_label_values(&["2xx"]).get(), 1);
        let registry = prometheus::Registry::new();
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        assert_eq!(registry.gather().len(), 2);
        Ok(())
    }
    use prometheus::{Encoder, TextEncoder};

    fn render(c: impl Collector + 'static) -> String {
        let registry = prometheus::Registry::new_custom(Some("t".into()), None).expect("prefix");
        registry.register(Box::new(c)).expect("registers");
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .expect("encodes");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let vec = ShardedCounterVec::new("hits_total", "Hits.", &["cache"]).expect("valid");
        let c = vec.with_label_values(&["file"]);
        std::thread::scope(|s| {
            for _ in 0..(SHARDS + 4) {
                let c = c.clone();
                s.spawn(move || (0..1000).for_each(|_| c.inc()));
            }
        });
        assert_eq!(c.get(), (SHARDS as u64 + 4) * 1000);
        assert_eq!(vec.with_label_values(&["file"]).get(), c.get());
        let text = render(vec);
        assert!(text.contains("# TYPE t_hits_total counter"), "{text}");
        assert!(
            text.contains("t_hits_total{cache=\"file\"} 20000"),
            "{text}"
        );
    }

    #[test]
    fn a_new_child_is_exported_at_zero() {
        let vec = ShardedCounterVec::new("x_total", "X.", &["a", "b"]).expect("valid");
        vec.with_label_values(&["1", "2"]);
        assert!(render(vec).contains("t_x_total{a=\"1\",b=\"2\"} 0"));
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_count_and_sum() {
        let vec = ShardedHistogramVec::new("lat_seconds", "Latency.", &["s"], vec![0.1, 1.0])
            .expect("valid");
        let h = vec.with_label_values(&["2xx"]);
        std::thread::scope(|s| {
            for v in [0.05, 0.1, 0.5, 2.0] {
                let h = h.clone();
                s.spawn(move || h.observe(v));
            }
        });
        assert_eq!(h.count(), 4);
        assert!((h.sum() - 2.65).abs() < 1e-9);
        let text = render(vec);
        for line in [
            "t_lat_seconds_bucket{s=\"2xx\",le=\"0.1\"} 2",
            "t_lat_seconds_bucket{s=\"2xx\",le=\"1\"} 3",
            "t_lat_seconds_bucket{s=\"2xx\",le=\"+Inf\"} 4",
            "t_lat_seconds_sum{s=\"2xx\"} 2.65",
            "t_lat_seconds_count{s=\"2xx\"} 4",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn bad_bounds_and_names_are_refused() {
        for bounds in [vec![1.0, 1.0], vec![2.0, 1.0], vec![f64::NAN]] {
            assert!(ShardedHistogramVec::new("h", "H.", &[], bounds).is_err());
        }
        assert!(ShardedCounterVec::new("bad name", "B.", &[]).is_err());
    }

    #[test]
    #[should_panic(expected = "do not match the label names")]
    fn wrong_number_of_label_values_panics_like_prometheus() {
        let vec = ShardedCounterVec::new("y_total", "Y.", &["a"]).expect("valid");
        vec.with_label_values(&["1", "2"]);
    }
}
