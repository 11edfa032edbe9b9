//! `Events::quiet`: that nothing happened (no restart, no stop) so far.

use super::events::Events;

impl Events {
    /// True if no event is pending right now (after letting other tasks run).
    pub(crate) async fn quiet(&mut self) -> bool {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        if !self.pending.is_empty() {
            return false;
        }
        match self.rx.try_recv() {
            Ok(ev) => {
                self.pending.push_back(ev);
                false
            }
            Err(_) => true,
        }
    }
}
