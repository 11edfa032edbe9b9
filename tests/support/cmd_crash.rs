//! The command for a crash of a test child: a handler error, an abnormal
//! exit.

use ractor::{ActorProcessingErr, ActorRef};

use super::children::Cmd;

pub(crate) fn crash(_: &ActorRef<Cmd>) -> Result<(), ActorProcessingErr> {
    Err("crash on command".into())
}
