//! The command for a normal exit of a test child: stop(None).

use ractor::{ActorProcessingErr, ActorRef};

use super::children::Cmd;

pub(crate) fn normal(myself: &ActorRef<Cmd>) -> Result<(), ActorProcessingErr> {
    myself.stop(None);
    Ok(())
}
