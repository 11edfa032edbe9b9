//! `Events::take`: a batch of events, for the steps where children start or
//! stop together.

use super::events::{Ev, Events};

impl Events {
    /// Waits for the next `n` events and returns them.
    pub(crate) async fn take(&mut self, n: usize) -> Vec<Ev> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.next().await);
        }
        v
    }
}
