//! A look into a running node's supervision tree: the actor of a child, if
//! it is running.

use corral::supervisor::{ChildState, Supervisor};
use ractor::ActorCell;

/// The running actor of child `id` of `sup`, if any.
pub(crate) async fn child_cell(sup: &Supervisor, id: &str) -> Option<ActorCell> {
    let children = sup.which_children().await.ok()?;
    children
        .into_iter()
        .find(|c| c.id.as_deref() == Some(id))
        .and_then(|c| match c.state {
            ChildState::Running(cell) => Some(cell),
            _ => None,
        })
}
