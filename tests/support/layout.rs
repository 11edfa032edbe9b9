//! A static supervisor's children at a glance.

use corral::supervisor::{ChildState, Supervisor};

/// The ids and states of a static supervisor's children, as short strings:
/// `id` when running, `id:restarting`, `id:undefined`.
pub(crate) async fn layout(sup: &Supervisor) -> Vec<String> {
    sup.which_children()
        .await
        .expect("supervisor answers")
        .into_iter()
        .map(|c| {
            let id = c.id.unwrap_or_default();
            match c.state {
                ChildState::Running(_) | ChildState::Task => id,
                ChildState::Restarting => format!("{id}:restarting"),
                ChildState::Undefined => format!("{id}:undefined"),
            }
        })
        .collect()
}
