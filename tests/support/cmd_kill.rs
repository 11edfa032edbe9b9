//! The command for a test child to kill itself (post_stop does not run).

use ractor::{ActorProcessingErr, ActorRef};

use super::children::Cmd;

pub(crate) fn kill(myself: &ActorRef<Cmd>) -> Result<(), ActorProcessingErr> {
    myself.kill();
    Ok(())
}
