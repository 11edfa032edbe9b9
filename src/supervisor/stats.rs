//! Restart counters by supervisor and child, exported as
//! `corral_supervisor_restarts_total{supervisor, child}`.
//!
//! The counters live in one process-wide table so that any supervisor, in
//! any tree, is counted without wiring; [`RestartCollector`] turns the table
//! into a Prometheus metric family at scrape time.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, Opts};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

type Key = (Arc<str>, Arc<str>);

static RESTARTS: LazyLock<Mutex<HashMap<Key, u64>>> = LazyLock::new(Default::default);

/// Counts one restart of `child` by `supervisor`.
pub(crate) fn count_restart(supervisor: &Arc<str>, child: &Arc<str>) {
    let mut table = RESTARTS.lock().unwrap_or_else(|e| e.into_inner());
    *table
        .entry((supervisor.clone(), child.clone()))
        .or_default() += 1;
}

/// A snapshot of every restart counter: `(supervisor, child, restarts)`,
/// sorted by supervisor then child.
///
/// A child of a dynamic supervisor is counted under its template's id, so
/// the number of labels stays bounded however many children come and go.
pub fn restart_counts() -> Vec<(String, String, u64)> {
    let table = RESTARTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<_> = table
        .iter()
        .map(|((s, c), n)| (s.to_string(), c.to_string(), *n))
        .collect();
    out.sort();
    out
}

/// A Prometheus collector for the restart counters.
#[derive(Debug)]
pub struct RestartCollector {
    desc: Vec<Desc>,
}

impl RestartCollector {
    const NAME: &'static str = "supervisor_restarts_total";
    const HELP: &'static str = "Children restarted, by supervisor and child id.";

    /// A collector reading the process-wide table.
    pub fn new() -> Self {
        let vec = Self::vec();
        RestartCollector {
            desc: vec.desc().into_iter().cloned().collect(),
        }
    }

    fn vec() -> IntCounterVec {
        IntCounterVec::new(Opts::new(Self::NAME, Self::HELP), &["supervisor", "child"])
            .expect("valid metric")
    }
}

impl Default for RestartCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for RestartCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let vec = Self::vec();
        for (s, c, n) in restart_counts() {
            vec.with_label_values(&[s.as_str(), c.as_str()]).inc_by(n);
        }
        vec.collect()
    }
}
