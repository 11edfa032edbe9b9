//! The test child of the supervisor scenarios: an actor that reports its
//! start and stop on a probe, runs the commands it is sent on itself (exit,
//! crash, panic, kill), and whose start can be made to fail or be ignored.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral::supervisor::Started;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};

use super::events::{Ev, Probe};

/// What a test child does to itself when told (stop, fail, panic, kill),
/// run in its handler. The usual ones are the `cmd_*` helpers.
type Run = dyn FnOnce(&ActorRef<Cmd>) -> Result<(), ActorProcessingErr> + Send;

/// The message of a test child: a command to run.
pub(crate) struct Cmd(Box<Run>);

/// Sends a command to a running child.
pub(crate) fn send(
    cell: &ActorCell,
    cmd: impl FnOnce(&ActorRef<Cmd>) -> Result<(), ActorProcessingErr> + Send + 'static,
) {
    ActorRef::<Cmd>::from(cell.clone())
        .cast(Cmd(Box::new(cmd)))
        .expect("child alive");
}

#[derive(Clone)]
pub(crate) struct TestChild;

pub(crate) struct ChildArgs {
    pub(crate) name: String,
    pub(crate) probe: Probe,
    /// How long post_stop takes (a child slow to stop).
    pub(crate) stop_delay: Duration,
}

impl Actor for TestChild {
    type Msg = Cmd;
    type State = ChildArgs;
    type Arguments = ChildArgs;

    async fn pre_start(
        &self,
        _: ActorRef<Cmd>,
        args: ChildArgs,
    ) -> Result<ChildArgs, ActorProcessingErr> {
        args.probe.report(Ev::Started(args.name.clone()));
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Cmd>,
        cmd: Cmd,
        _: &mut ChildArgs,
    ) -> Result<(), ActorProcessingErr> {
        (cmd.0)(&myself)
    }

    async fn post_stop(
        &self,
        _: ActorRef<Cmd>,
        s: &mut ChildArgs,
    ) -> Result<(), ActorProcessingErr> {
        if !s.stop_delay.is_zero() {
            tokio::time::sleep(s.stop_delay).await;
        }
        s.probe.report(Ev::Stopped(s.name.clone()));
        Ok(())
    }
}

/// How the next start of a child behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum StartMode {
    Ok = 0,
    Fail = 1,
    Ignore = 2,
}

/// A switch shared by a child spec and the test: how the next start goes
/// (`Switch::set` is in switch.rs).
#[derive(Clone, Default)]
pub(crate) struct Switch(pub(super) Arc<AtomicU8>);

impl Switch {
    fn get(&self) -> StartMode {
        match self.0.load(Ordering::SeqCst) {
            1 => StartMode::Fail,
            2 => StartMode::Ignore,
            _ => StartMode::Ok,
        }
    }
}

/// The start function of a test child, as a child spec or template calls it.
pub(crate) async fn start_test_child(
    sup: ActorCell,
    name: String,
    probe: Probe,
    switch: Switch,
    stop_delay: Duration,
) -> Result<Started, ActorProcessingErr> {
    match switch.get() {
        StartMode::Fail => {
            probe.report(Ev::StartFailed(name.clone()));
            Err(format!("{name} refused to start").into())
        }
        StartMode::Ignore => Ok(Started::Ignore),
        StartMode::Ok => {
            let args = ChildArgs {
                name,
                probe,
                stop_delay,
            };
            let (r, _) = TestChild::spawn_linked(None, TestChild, args, sup).await?;
            Ok(Started::Child(r.get_cell()))
        }
    }
}
