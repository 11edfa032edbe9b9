//! The running actor of a static supervisor's child, which must be there.

use corral::supervisor::{ChildState, Supervisor};
use ractor::ActorCell;

/// The running actor of a static supervisor's child.
pub(crate) async fn cell_of(sup: &Supervisor, id: &str) -> ActorCell {
    let children = sup.which_children().await.expect("supervisor answers");
    let info = children
        .into_iter()
        .find(|c| c.id.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("child {id} present"));
    match info.state {
        ChildState::Running(c) => c,
        other => panic!("child {id} not running: {other:?}"),
    }
}
