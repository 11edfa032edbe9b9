//! The node's Lamport clock.
//!
//! One per node: on receiving a message carrying clock `c`, the clock becomes
//! `max(local, c) + 1`; before sending, it is incremented by one and the new
//! value is carried. Wall-clock `timestamp`s (ms since the Unix epoch) travel
//! alongside for humans; ordering uses the store's sequence numbers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A Lamport clock, safe to share between tasks.
#[derive(Debug, Default)]
pub struct LamportClock {
    value: AtomicU64,
}

impl LamportClock {
    /// A clock starting at `start`.
    pub fn new(start: u64) -> Self {
        LamportClock {
            value: AtomicU64::new(start),
        }
    }

    /// The current value, without advancing.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// A receive event: the clock becomes `max(local, received) + 1` (just
    /// `local + 1` when the message carried no clock). Returns the new value.
    pub fn receive(&self, received: Option<u64>) -> u64 {
        let r = received.unwrap_or(0);
        let mut cur = self.value.load(Ordering::SeqCst);
        loop {
            let next = cur.max(r).saturating_add(1);
            match self
                .value
                .compare_exchange_weak(cur, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }

    /// A send event: the clock is incremented by one. Returns the new value,
    /// the one to carry in the message.
    pub fn send(&self) -> u64 {
        self.value.fetch_add(1, Ordering::SeqCst).saturating_add(1)
    }
}

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lamport_rule() {
        let c = LamportClock::new(0);
        assert_eq!(c.send(), 1);
        assert_eq!(c.receive(Some(10)), 11);
        assert_eq!(c.receive(Some(3)), 12);
        assert_eq!(c.receive(None), 13);
        assert_eq!(c.send(), 14);
        assert_eq!(c.get(), 14);
    }
}
