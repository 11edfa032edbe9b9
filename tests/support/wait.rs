//! A bounded wait on a condition polled in a loop.

use std::time::Duration;

/// Polls `cond` (with short sleeps) until it holds; panics with `what` if it
/// does not within a minute. A guard against a hung test, not an assertion
/// on time.
pub(crate) async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting until {what}");
}
