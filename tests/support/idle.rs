//! [`Idle`]: an actor that starts and then does nothing, a child to
//! supervise when only its place in the tree matters.

use ractor::{Actor, ActorProcessingErr, ActorRef};

/// Starts, then waits to be stopped or killed.
#[derive(Clone)]
pub(crate) struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}
