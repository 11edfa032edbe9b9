//! The command for a shutdown exit of a test child: stop(Some("shutdown")).

use ractor::{ActorProcessingErr, ActorRef};

use super::children::Cmd;

pub(crate) fn shutdown(myself: &ActorRef<Cmd>) -> Result<(), ActorProcessingErr> {
    myself.stop(Some("shutdown".into()));
    Ok(())
}
