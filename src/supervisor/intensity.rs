//! Restart intensity: at most `max_restarts` restarts within `period`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The restarts in the current window, oldest first.
#[derive(Debug)]
pub(crate) struct Intensity {
    max_restarts: u32,
    period: Duration,
    restarts: VecDeque<Instant>,
}

impl Intensity {
    pub(crate) fn new(max_restarts: u32, period: Duration) -> Self {
        Intensity {
            max_restarts,
            period,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart now; false if that makes more than `max_restarts`
    /// within `period` (the supervisor must give up).
    pub(crate) fn add_restart(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.restarts.front() {
            if now.duration_since(oldest) >= self.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.push_back(now);
        // Entries past max_restarts + 1 change no answer: keep memory bounded.
        while self.restarts.len() > self.max_restarts as usize + 1 {
            self.restarts.pop_front();
        }
        self.restarts.len() <= self.max_restarts as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_past_the_limit_and_forgets_old_restarts() {
        let t0 = Instant::now();
        let mut i = Intensity::new(2, Duration::from_secs(5));
        assert!(i.add_restart(t0));
        assert!(i.add_restart(t0 + Duration::from_secs(1)));
        assert!(!i.add_restart(t0 + Duration::from_secs(2)));
        let mut i = Intensity::new(2, Duration::from_secs(5));
        assert!(i.add_restart(t0));
        assert!(i.add_restart(t0 + Duration::from_secs(1)));
        assert!(i.add_restart(t0 + Duration::from_secs(6)));
    }

    #[test]
    fn zero_intensity_gives_up_at_once() {
        let mut i = Intensity::new(0, Duration::from_secs(5));
        assert!(!i.add_restart(Instant::now()));
    }
}
