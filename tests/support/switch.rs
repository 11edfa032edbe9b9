//! `Switch::set`: makes the next starts of a test child fail or be ignored.

use std::sync::atomic::Ordering;

use super::children::{StartMode, Switch};

impl Switch {
    pub(crate) fn set(&self, m: StartMode) {
        self.0.store(m as u8, Ordering::SeqCst);
    }
}
