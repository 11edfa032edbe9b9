//! A bound on a whole test: a guard against hangs, not a measurement.

use std::future::Future;
use std::time::Duration;

/// Upper bound for a whole test.
pub(crate) const GUARD: Duration = Duration::from_secs(120);

pub(crate) async fn guarded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(GUARD, body)
        .await
        .expect("the test did not finish (hung)");
}
