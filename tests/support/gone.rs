//! Waiting for an actor to end.

use ractor::ActorCell;

use super::events::GUARD;

/// Waits until an actor has ended.
pub(crate) async fn gone(cell: &ActorCell) {
    cell.wait(Some(GUARD))
        .await
        .expect("actor ends within the guard time");
}
