//! Test children for the supervisor scenarios: actors that report their
//! start and stop on a channel and exit, crash, hang or refuse to start on
//! command, so that tests synchronise on events rather than on sleeps.
#![allow(dead_code)]

use corral::supervisor::{ChildSpec, ChildTemplate, Started};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What a test child reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Started(String),
    /// post_stop ran (not after a kill).
    Stopped(String),
    /// The start function refused to start.
    StartFailed(String),
}

/// How the next start of a child behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StartMode {
    Ok = 0,
    Fail = 1,
    Ignore = 2,
}

/// Commands a test child obeys.
#[derive(Debug)]
pub enum Cmd {
    /// stop(None): a normal exit.
    Normal,
    /// stop(Some("shutdown")).
    Shutdown,
    /// stop(Some("shutdown: why")).
    ShutdownWith(String),
    /// A handler error: an abnormal exit.
    Crash,
    /// A panic: an abnormal exit.
    Panic,
    /// Kill itself.
    Kill,
}

#[derive(Clone)]
pub struct Probe {
    tx: mpsc::UnboundedSender<Ev>,
}

pub struct Events {
    rx: mpsc::UnboundedReceiver<Ev>,
    pending: std::collections::VecDeque<Ev>,
}

/// A channel for the events of many children.
pub fn probe() -> (Probe, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Probe { tx },
        Events {
            rx,
            pending: Default::default(),
        },
    )
}

/// A generous guard so that a broken supervisor fails a test instead of
/// hanging it; it is not a timing assertion.
pub const GUARD: Duration = Duration::from_secs(20);

impl Events {
    pub async fn next(&mut self) -> Ev {
        if let Some(ev) = self.pending.pop_front() {
            return ev;
        }
        tokio::time::timeout(GUARD, self.rx.recv())
            .await
            .expect("an event within the guard time")
            .expect("event channel open")
    }

    /// Waits for this exact event, failing on any other one first.
    pub async fn expect(&mut self, ev: Ev) {
        let got = self.next().await;
        assert_eq!(got, ev);
    }

    /// Waits for the next `n` events and returns them.
    pub async fn take(&mut self, n: usize) -> Vec<Ev> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.next().await);
        }
        v
    }

    /// True if no event is pending right now (after letting other tasks run).
    pub async fn quiet(&mut self) -> bool {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        if !self.pending.is_empty() {
            return false;
        }
        match self.rx.try_recv() {
            Ok(ev) => {
                self.pending.push_back(ev);
                false
            }
            Err(_) => true,
        }
    }
}

pub fn started(name: &str) -> Ev {
    Ev::Started(name.to_string())
}
pub fn stopped(name: &str) -> Ev {
    Ev::Stopped(name.to_string())
}

#[derive(Clone)]
pub struct TestChild;

pub struct ChildArgs {
    pub name: String,
    pub probe: Probe,
    /// How long post_stop takes (a child slow to stop).
    pub stop_delay: Duration,
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
        let _ = args.probe.tx.send(Ev::Started(args.name.clone()));
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Cmd>,
        cmd: Cmd,
        _: &mut ChildArgs,
    ) -> Result<(), ActorProcessingErr> {
        match cmd {
            Cmd::Normal => myself.stop(None),
            Cmd::Shutdown => myself.stop(Some("shutdown".into())),
            Cmd::ShutdownWith(why) => myself.stop(Some(format!("shutdown: {why}"))),
            Cmd::Crash => return Err("crash on command".into()),
            Cmd::Panic => panic!("panic on command"),
            Cmd::Kill => myself.kill(),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<Cmd>,
        s: &mut ChildArgs,
    ) -> Result<(), ActorProcessingErr> {
        if !s.stop_delay.is_zero() {
            tokio::time::sleep(s.stop_delay).await;
        }
        let _ = s.probe.tx.send(Ev::Stopped(s.name.clone()));
        Ok(())
    }
}

/// A switch shared by a child spec and the test: how the next start goes.
#[derive(Clone, Default)]
pub struct Switch(Arc<AtomicU8>);

impl Switch {
    pub fn set(&self, m: StartMode) {
        self.0.store(m as u8, Ordering::SeqCst);
    }
    fn get(&self) -> StartMode {
        match self.0.load(Ordering::SeqCst) {
            1 => StartMode::Fail,
            2 => StartMode::Ignore,
            _ => StartMode::Ok,
        }
    }
}

async fn start_test_child(
    sup: ActorCell,
    name: String,
    probe: Probe,
    switch: Switch,
    stop_delay: Duration,
) -> Result<Started, ActorProcessingErr> {
    match switch.get() {
        StartMode::Fail => {
            let _ = probe.tx.send(Ev::StartFailed(name.clone()));
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

/// A worker spec for a test child named `name` (its id too).
pub fn child(name: &str, probe: &Probe) -> ChildSpec {
    child_with(name, probe, Switch::default(), Duration::ZERO)
}

pub fn child_with(name: &str, probe: &Probe, switch: Switch, stop_delay: Duration) -> ChildSpec {
    let name = name.to_string();
    let probe = probe.clone();
    ChildSpec::new(name.clone(), move |sup| {
        start_test_child(sup, name.clone(), probe.clone(), switch.clone(), stop_delay)
    })
}

/// A template for test children; each child's argument is its name.
pub fn template(probe: &Probe) -> ChildTemplate<String> {
    let probe = probe.clone();
    ChildTemplate::new("worker", move |sup, name: String| {
        start_test_child(sup, name, probe.clone(), Switch::default(), Duration::ZERO)
    })
}

/// Sends a command to a running child.
pub fn send(cell: &ActorCell, cmd: Cmd) {
    ActorRef::<Cmd>::from(cell.clone())
        .cast(cmd)
        .expect("child alive");
}

/// Waits until an actor has ended.
pub async fn gone(cell: &ActorCell) {
    cell.wait(Some(GUARD))
        .await
        .expect("actor ends within the guard time");
}

use corral::supervisor::{ChildState, Supervisor};

/// The running actor of a static supervisor's child.
pub async fn cell_of(sup: &Supervisor, id: &str) -> ActorCell {
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

/// The ids and states of a static supervisor's children, as short strings:
/// `id` when running, `id:restarting`, `id:undefined`.
pub async fn layout(sup: &Supervisor) -> Vec<String> {
    sup.which_children()
        .await
        .expect("supervisor answers")
        .into_iter()
        .map(|c| {
            let id = c.id.unwrap_or_default();
            match c.state {
                ChildState::Running(_) => id,
                ChildState::Restarting => format!("{id}:restarting"),
                ChildState::Undefined => format!("{id}:undefined"),
            }
        })
        .collect()
}
