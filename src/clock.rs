//! The Lamport clock: one type for the node (the chat stamps every reply
//! and push with it) and for clients.
//!
//! The rule (Lamport 1978): before sending, the clock ticks (+1) and the
//! message carries the new value; on receiving a message that carries
//! `received`, the clock becomes `max(local, received) + 1`. So a reply is
//! always later than its request, and a message later than everything its
//! sender had seen.
//!
//! ```
//! use corral::clock::LamportClock;
//! let clock = LamportClock::new();
//! let sent = clock.tick();          // 1, goes into the request's data.clock
//! assert_eq!(sent, 1);
//! assert_eq!(clock.observe(41), 42); // the reply carried clock 41
//! assert_eq!(clock.now(), 42);
//! ```
//!
//! [`WallClock`] is the node's wall-clock time for the `timestamp`s it
//! stamps: the OS clock, plus a correction the cluster's Berkeley clock
//! synchronisation sets (the OS clock itself is never changed).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A Lamport clock, safe to share between tasks (lock-free).
#[derive(Debug, Default)]
pub struct LamportClock {
    value: AtomicU64,
}

impl LamportClock {
    /// A clock at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock at `value`.
    pub fn starting_at(value: u64) -> Self {
        LamportClock {
            value: AtomicU64::new(value),
        }
    }

    /// The current value, unchanged.
    pub fn now(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Before sending: advances by one and returns the value to send. At
    /// `u64::MAX` it stays there: the clock never wraps back to 0.
    pub fn tick(&self) -> u64 {
        let previous = self
            .value
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(1))
            })
            .unwrap_or_else(|v| v);
        previous.saturating_add(1)
    }

    /// Raises the clock to at least `value` (never lowers it): a restarted
    /// node resumes above the clocks it stored.
    pub fn advance_to(&self, value: u64) {
        self.value.fetch_max(value, Ordering::SeqCst);
    }

    /// On receipt of a message carrying `received`: the clock becomes
    /// `max(local, received) + 1`, which is returned.
    pub fn observe(&self, received: u64) -> u64 {
        let mut current = self.value.load(Ordering::SeqCst);
        loop {
            let next = current.max(received).saturating_add(1);
            match self.value.compare_exchange_weak(
                current,
                next,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return next,
                Err(actual) => current = actual,
            }
        }
    }

    /// A receive event for a message that may carry a clock: `observe` when
    /// it does, `tick` when it does not.
    pub fn receive(&self, received: Option<u64>) -> u64 {
        match received {
            Some(c) => self.observe(c),
            None => self.tick(),
        }
    }

    /// Observes the `clock` field of a reply's or push's `data`, if it has
    /// a non-negative integer one; returns the new value, or `None` (clock
    /// unchanged) when there is none.
    #[cfg(feature = "rpc")]
    pub fn observe_data(&self, data: &serde_json::Value) -> Option<u64> {
        data.get("clock")
            .and_then(serde_json::Value::as_u64)
            .map(|c| self.observe(c))
    }
}

/// Milliseconds since the Unix epoch (0 if the system clock is before it):
/// the wall-clock `timestamp` that travels beside the Lamport clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The node's wall clock: OS time, plus a skew (a test-only setting that
/// makes a node's clock wrong on purpose, `[cluster] clock_skew_ms`), plus
/// the correction that clock synchronisation applies. Cheap to clone: the
/// clones share the skew and the correction (atomics, lock-free).
///
/// ```
/// use corral::clock::WallClock;
/// let clock = WallClock::new();
/// clock.set_skew_ms(5_000);           // this node's clock runs 5 s ahead
/// clock.adjust_ms(-5_000);            // synchronisation corrects it
/// assert_eq!(clock.correction_ms(), -5_000);
/// let os = corral::clock::now_ms() as i64;
/// assert!((clock.now_ms() as i64 - os).abs() < 1_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct WallClock {
    inner: Arc<WallInner>,
}

#[derive(Debug, Default)]
struct WallInner {
    skew_ms: AtomicI64,
    correction_ms: AtomicI64,
}

impl WallClock {
    /// A clock that reads the OS clock (no skew, no correction).
    pub fn new() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch: OS time + skew + correction (0 if
    /// that is before the epoch).
    pub fn now_ms(&self) -> u64 {
        let os = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        let t = os
            .saturating_add(self.skew_ms())
            .saturating_add(self.correction_ms());
        u64::try_from(t).unwrap_or(0)
    }

    /// Sets the test-only skew (ms added to the OS clock).
    pub fn set_skew_ms(&self, skew_ms: i64) {
        self.inner.skew_ms.store(skew_ms, Ordering::SeqCst);
    }

    /// The test-only skew, in ms.
    pub fn skew_ms(&self) -> i64 {
        self.inner.skew_ms.load(Ordering::SeqCst)
    }

    /// The correction clock synchronisation applies, in ms (the node's
    /// clock offset).
    pub fn correction_ms(&self) -> i64 {
        self.inner.correction_ms.load(Ordering::SeqCst)
    }

    /// Adds `delta_ms` to the correction (a Berkeley adjustment); returns
    /// the new correction.
    pub fn adjust_ms(&self, delta_ms: i64) -> i64 {
        let previous = self
            .inner
            .correction_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                Some(c.saturating_add(delta_ms))
            })
            .unwrap_or_else(|c| c);
        previous.saturating_add(delta_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::{LamportClock, WallClock};
    use std::sync::Arc;

    #[test]
    fn tick_and_observe() {
        let c = LamportClock::new();
        assert_eq!(c.now(), 0);
        assert_eq!(c.tick(), 1);
        assert_eq!(c.tick(), 2);
        // An older clock still advances ours by one.
        assert_eq!(c.observe(1), 3);
        // A newer one jumps past it.
        assert_eq!(c.observe(10), 11);
        assert_eq!(c.now(), 11);
        assert_eq!(LamportClock::starting_at(5).tick(), 6);
    }

    #[test]
    fn observe_data_reads_the_clock_field() {
        let c = LamportClock::new();
        assert_eq!(c.observe_data(&serde_json::json!({"clock": 7})), Some(8));
        assert_eq!(c.observe_data(&serde_json::json!({"x": 1})), None);
        assert_eq!(c.observe_data(&serde_json::json!({"clock": -1})), None);
        assert_eq!(c.now(), 8);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let c = LamportClock::starting_at(u64::MAX);
        assert_eq!(c.observe(u64::MAX), u64::MAX);
        assert_eq!(c.tick(), u64::MAX);
        assert_eq!(c.now(), u64::MAX);
        let c = LamportClock::new();
        assert_eq!(c.observe(u64::MAX - 1), u64::MAX);
        assert_eq!(c.tick(), u64::MAX);
        assert_eq!(c.receive(None), u64::MAX);
        c.advance_to(5);
        assert_eq!(c.now(), u64::MAX);
        let c = LamportClock::new();
        c.advance_to(7);
        assert_eq!(c.tick(), 8);
    }

    #[test]
    fn concurrent_ticks_are_distinct() {
        let c = Arc::new(LamportClock::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).map(|_| c.tick()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4000);
        assert_eq!(c.now(), 4000);
    }

    #[test]
    fn receive_without_a_clock_ticks() {
        let c = LamportClock::new();
        assert_eq!(c.tick(), 1);
        assert_eq!(c.receive(Some(10)), 11);
        assert_eq!(c.receive(Some(3)), 12);
        assert_eq!(c.receive(None), 13);
        assert_eq!(c.tick(), 14);
        assert_eq!(c.now(), 14);
    }

    #[test]
    fn wall_clock_adds_skew_and_correction() {
        let w = WallClock::new();
        let shared = w.clone();
        w.set_skew_ms(10_000);
        let ahead = shared.now_ms() as i64 - super::now_ms() as i64;
        assert!((9_000..=11_000).contains(&ahead), "{ahead}");
        assert_eq!(shared.adjust_ms(-4_000), -4_000);
        assert_eq!(w.adjust_ms(-6_000), -10_000);
        assert_eq!(w.correction_ms(), -10_000);
        let off = w.now_ms() as i64 - super::now_ms() as i64;
        assert!(off.abs() < 1_000, "{off}");
        w.adjust_ms(i64::MIN);
        assert_eq!(w.now_ms(), 0, "before the epoch reads 0");
    }
}
