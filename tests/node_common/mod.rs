//! Shared by the tests that start a `Node` in process: bounded waits on its
//! state, and a look into its supervision tree.
#![allow(dead_code)]

use std::time::Duration;

use corral::supervisor::{ChildState, Supervisor};
use ractor::ActorCell;

/// Polls `cond` (with short sleeps) until it holds; panics with `what` if it
/// does not within a minute. A guard against a hung test, not an assertion
/// on time.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting until {what}");
}

/// The running actor of child `id` of `sup`, if any.
pub async fn child_cell(sup: &Supervisor, id: &str) -> Option<ActorCell> {
    let children = sup.which_children().await.ok()?;
    children
        .into_iter()
        .find(|c| c.id.as_deref() == Some(id))
        .and_then(|c| match c.state {
            ChildState::Running(cell) => Some(cell),
            _ => None,
        })
}
