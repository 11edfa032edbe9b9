//! The supervisor actor: starts children in order, watches their exits,
//! restarts them by strategy and intensity, and stops them in reverse order.
//!
//! One actor serves both kinds of supervisor, as OTP's `supervisor` module
//! does: a static one (an ordered list of child specs, strategies one_for_one,
//! one_for_all, rest_for_one) and a dynamic one (simple_one_for_one: children
//! made at run time from one template, restarted alone, stopped concurrently).
//!
//! A restart that fails to start the child marks it `restarting` and sends the
//! supervisor a message to try again, so the supervisor keeps answering calls
//! during a restart loop; each attempt counts toward the intensity.

use super::error::SupervisorError;
use super::exit::{ExitReason, SHUTDOWN};
use super::hook::{self, RestartHook};
use super::intensity::Intensity;
use super::shutdown::{shutdown_child, shutdown_concurrently};
use super::spec::{
    AutoShutdown, ChildKind, ChildSpec, Restart, Shutdown, Started, Strategy, SupervisorFlags,
};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The state of one child as `which_children` reports it.
#[derive(Debug, Clone)]
pub enum ChildState {
    /// Running as this actor.
    Running(ActorCell),
    /// Running as a task, not an actor: a listener's connections under its
    /// `acceptor_sup` (reach one through the listener, not as an actor).
    Task,
    /// A restart failed; the supervisor is trying again.
    Restarting,
    /// Not running (terminated, exited without restart, or ignored).
    Undefined,
}

/// One row of `which_children`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The child's id; `None` for a dynamic supervisor's children (OTP's `undefined`).
    pub id: Option<String>,
    /// Running, restarting or not running.
    pub state: ChildState,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
    /// Its restarts and uptime.
    pub history: ChildHistory,
}

/// A child's life under its supervisor, as `which_children` saw it: how
/// often it was started again, why the last time, and how long it has run.
///
/// A restart is any start after the first: by the strategy after an exit
/// (the child that exited, and under one_for_all or rest_for_one the
/// siblings restarted with it), a retry after a failed restart, or
/// `restart_child`. Each attempt counts, as it does toward the intensity.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use corral::supervisor::{ChildSpec, ChildState, Supervisor, SupervisorSpec};
/// # use ractor::{Actor, ActorRef, ActorProcessingErr};
/// # #[derive(Clone)] struct Worker;
/// # impl Actor for Worker {
/// #     type Msg = (); type State = (); type Arguments = ();
/// #     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
/// # }
/// let sup = Supervisor::start(SupervisorSpec::new("app").child(ChildSpec::worker("w", Worker, ()))).await?;
/// let ChildState::Running(first) = sup.which_children().await?[0].state.clone() else { unreachable!() };
/// first.kill();
/// first.wait(None).await?;
/// let w = &sup.which_children().await?[0];
/// assert_eq!(w.history.restarts, 1);
/// assert_eq!(w.history.last_restart_reason.as_deref(), Some("killed"));
/// assert!(w.history.uptime.is_some());
/// sup.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildHistory {
    /// Starts after the first one.
    pub restarts: u64,
    /// Why it was last restarted: the exit reason of the child that exited,
    /// `"<strategy>: <sibling> exited"` for a sibling restarted with it,
    /// `"start failed: <error>"` for a retry, `"restart_child"`.
    pub last_restart_reason: Option<String>,
    /// How long ago it was last restarted.
    pub since_last_restart: Option<Duration>,
    /// How long it has been running; `None` when it is not running.
    pub uptime: Option<Duration>,
}

/// What the supervisor keeps of a child's life (see [`ChildHistory`]).
#[derive(Debug, Clone, Default)]
struct History {
    restarts: u64,
    last_reason: Option<Arc<str>>,
    last_at: Option<Instant>,
    started: Option<Instant>,
}

impl History {
    fn restarting(&mut self, reason: Arc<str>) {
        self.restarts += 1;
        self.last_reason = Some(reason);
        self.last_at = Some(Instant::now());
    }

    fn view(&self, running: bool) -> ChildHistory {
        ChildHistory {
            restarts: self.restarts,
            last_restart_reason: self.last_reason.as_deref().map(str::to_string),
            since_last_restart: self.last_at.map(|t| t.elapsed()),
            uptime: self.started.filter(|_| running).map(|t| t.elapsed()),
        }
    }
}

/// The answer of `count_children`, as OTP's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildCounts {
    /// Child specs (1 for a dynamic supervisor: its template).
    pub specs: usize,
    /// Children running.
    pub active: usize,
    /// Children (specs for a static supervisor) that are supervisors.
    pub supervisors: usize,
    /// Children (specs for a static supervisor) that are workers.
    pub workers: usize,
}

/// Which child a call is about.
#[derive(Debug, Clone)]
pub(crate) enum ChildRef {
    Id(String),
    Actor(ActorId),
}

type Reply<T> = RpcReplyPort<Result<T, SupervisorError>>;

pub(crate) enum SupervisorMsg {
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    CountChildren(RpcReplyPort<ChildCounts>),
    StartChild(ChildSpec, Reply<Option<ActorCell>>),
    TerminateChild(ChildRef, Reply<()>),
    RestartChild(String, Reply<Option<ActorCell>>),
    DeleteChild(String, Reply<()>),
    GetChildSpec(ChildRef, Reply<ChildSpec>),
    Describe(RpcReplyPort<Description>),
    /// Restart again a child whose restart failed, and why it failed.
    TryAgain(Key, Arc<str>),
}

/// What a supervisor says of itself when a tree is drawn
/// ([`Supervisor::tree`](super::Supervisor::tree)).
#[derive(Debug, Clone)]
pub(crate) struct Description {
    pub(crate) name: Arc<str>,
    pub(crate) strategy: Strategy,
    /// The children of a static supervisor, in start order (empty for a
    /// dynamic one).
    pub(crate) children: Vec<ChildInfo>,
    /// A dynamic supervisor's template id and child counts.
    pub(crate) dynamic: Option<DynamicDescription>,
    /// Restarts it made since it started (each counts toward its intensity).
    pub(crate) restarts: u64,
    /// Its restart intensity.
    pub(crate) max_restarts: u32,
    pub(crate) period: Duration,
}

/// A dynamic supervisor's part of a [`Description`]: counts, not rows (it
/// may have a great many children).
#[derive(Debug, Clone)]
pub(crate) struct DynamicDescription {
    pub(crate) template: Arc<str>,
    pub(crate) running: usize,
    pub(crate) total: usize,
}

/// Identifies a child across restarts: its id (static) or a serial (dynamic).
#[derive(Debug, Clone)]
pub(crate) enum Key {
    Static(Arc<str>),
    Dynamic(u64),
}

#[derive(Clone)]
pub(crate) struct DynamicArgs {
    pub(crate) template_id: Arc<str>,
    pub(crate) template_shutdown: Shutdown,
    pub(crate) max_children: Option<usize>,
}

#[derive(Clone)]
pub(crate) struct Args {
    pub(crate) name: Arc<str>,
    pub(crate) flags: SupervisorFlags,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) dynamic: Option<DynamicArgs>,
    /// Told of every restart; inherited from the parent when `None`.
    pub(crate) hook: Option<RestartHook>,
}

pub(crate) struct SupervisorActor;

#[derive(Clone)]
enum Pid {
    Running(ActorCell),
    Restarting,
    Undefined,
}

impl Pid {
    fn state(&self) -> ChildState {
        match self {
            Pid::Running(c) => ChildState::Running(c.clone()),
            Pid::Restarting => ChildState::Restarting,
            Pid::Undefined => ChildState::Undefined,
        }
    }
    fn is(&self, id: ActorId) -> bool {
        matches!(self, Pid::Running(c) if c.get_id() == id)
    }
}

struct Child {
    spec: ChildSpec,
    pid: Pid,
    history: History,
}

impl Child {
    fn new(spec: ChildSpec, pid: Pid) -> Self {
        let mut history = History::default();
        if matches!(pid, Pid::Running(_)) {
            history.started = Some(Instant::now());
        }
        Child { spec, pid, history }
    }

    /// The child runs as `cell` from now on.
    fn running(&mut self, cell: ActorCell) {
        self.pid = Pid::Running(cell);
        self.history.started = Some(Instant::now());
    }

    fn info(&self, id: Option<String>) -> ChildInfo {
        ChildInfo {
            id,
            state: self.pid.state(),
            kind: self.spec.kind,
            restart: self.spec.restart,
            history: self.history.view(matches!(self.pid, Pid::Running(_))),
        }
    }
}

struct Dynamic {
    args: DynamicArgs,
    next: u64,
    children: HashMap<u64, Child>,
    by_actor: HashMap<ActorId, u64>,
}

pub(crate) struct State {
    me: ActorCell,
    name: Arc<str>,
    flags: SupervisorFlags,
    intensity: Intensity,
    children: Vec<Child>,
    dynamic: Option<Dynamic>,
    hook: Option<RestartHook>,
    /// Restarts made since the supervisor started.
    restarts: u64,
}

/// A child whose start failed, and why.
type Failed = (Arc<str>, String);

/// Runs a child's start function, giving it the supervisor's cell; a
/// supervisor it starts inherits `hook`.
async fn start_spec(
    spec: &ChildSpec,
    sup: &ActorCell,
    hook: Option<&RestartHook>,
) -> Result<Option<ActorCell>, ActorProcessingErr> {
    match hook::passing(hook, (spec.start)(sup.clone())).await {
        Ok(Started::Child(c)) => Ok(Some(c)),
        Ok(Started::Ignore) => Ok(None),
        Err(e) => Err(e),
    }
}

fn start_failed(id: &str, source: ActorProcessingErr) -> SupervisorError {
    SupervisorError::StartFailed {
        id: id.to_string(),
        source,
    }
}

impl State {
    fn log_started(&self, id: &str, child: &ActorCell) {
        tracing::debug!(supervisor = %self.name, child = %id, actor = %child.get_id(), "child started");
    }

    fn log_exit(&self, id: &str, reason: &ExitReason) {
        if reason.is_abnormal() {
            tracing::error!(supervisor = %self.name, child = %id, %reason, "child terminated");
        } else {
            tracing::debug!(supervisor = %self.name, child = %id, %reason, "child exited");
        }
    }

    fn idx(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| &*c.spec.id == id)
    }

    /// Stops every running child: static ones in reverse start order, dynamic
    /// ones concurrently. Temporary static children are dropped.
    async fn terminate_all(&mut self) {
        if let Some(d) = &mut self.dynamic {
            let cells: Vec<ActorCell> = d
                .children
                .drain()
                .filter_map(|(_, c)| match c.pid {
                    Pid::Running(cell) => Some(cell),
                    _ => None,
                })
                .collect();
            d.by_actor.clear();
            shutdown_concurrently(&self.me, cells, d.args.template_shutdown).await;
        }
        self.terminate_from(0).await;
    }

    /// Stops the static children at `from` and after, last first; temporary
    /// ones are dropped, the others kept as not running.
    async fn terminate_from(&mut self, from: usize) {
        let mut i = self.children.len();
        while i > from {
            i -= 1;
            let pid = std::mem::replace(&mut self.children[i].pid, Pid::Undefined);
            if let Pid::Running(cell) = pid {
                shutdown_child(&cell, self.children[i].spec.shutdown).await;
            }
            if self.children[i].spec.restart == Restart::Temporary {
                self.children.remove(i);
            }
        }
    }

    /// Starts the static children from `from` on, in order. On a failure the
    /// child is marked restarting and its id returned.
    async fn start_from(&mut self, from: usize, sup: &ActorCell) -> Result<(), Failed> {
        let mut i = from;
        while i < self.children.len() {
            if matches!(self.children[i].pid, Pid::Running(_)) {
                i += 1;
                continue;
            }
            let spec = self.children[i].spec.clone();
            match start_spec(&spec, sup, self.hook.as_ref()).await {
                Ok(Some(cell)) => {
                    self.log_started(&spec.id, &cell);
                    self.children[i].running(cell);
                }
                Ok(None) => self.children[i].pid = Pid::Undefined,
                Err(reason) => {
                    tracing::error!(supervisor = %self.name, child = %spec.id, %reason, "child failed to restart");
                    self.children[i].pid = Pid::Restarting;
                    return Err((spec.id.clone(), reason.to_string()));
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Restarts after `key`'s exit (or failed restart), by strategy. `Err`
    /// when the intensity is exceeded: the children are stopped and the
    /// supervisor must exit.
    async fn restart(
        &mut self,
        key: Key,
        reason: Arc<str>,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), SupervisorError> {
        let child_id = match &key {
            Key::Static(id) => id.clone(),
            Key::Dynamic(_) => self
                .dynamic
                .as_ref()
                .map(|d| d.args.template_id.clone())
                .unwrap_or_else(|| Arc::from("")),
        };
        if !self.intensity.add_restart(Instant::now()) {
            tracing::error!(supervisor = %self.name, child = %child_id, "reached max restart intensity, shutting down");
            self.terminate_all().await;
            return Err(SupervisorError::ReachedMaxRestartIntensity(
                self.name.to_string(),
            ));
        }
        self.restarts += 1;
        if let Some(h) = &self.hook {
            h.call(&self.name, &child_id, &reason);
        }
        tracing::info!(supervisor = %self.name, child = %child_id, %reason, "restarting child");
        let sup = myself.get_cell();
        let hook = self.hook.clone();
        match key {
            Key::Dynamic(k) => {
                let Some(d) = self.dynamic.as_mut() else {
                    return Ok(());
                };
                let Some(child) = d.children.get_mut(&k) else {
                    return Ok(());
                };
                child.history.restarting(reason);
                match start_spec(&child.spec, &sup, hook.as_ref()).await {
                    Ok(Some(cell)) => {
                        d.by_actor.insert(cell.get_id(), k);
                        child.running(cell);
                    }
                    Ok(None) => {
                        d.children.remove(&k);
                    }
                    Err(reason) => {
                        tracing::error!(supervisor = %self.name, child = %child_id, %reason, "child failed to restart");
                        child.pid = Pid::Restarting;
                        let why = Arc::from(format!("start failed: {reason}"));
                        let _ = myself.cast(SupervisorMsg::TryAgain(Key::Dynamic(k), why));
                    }
                }
            }
            Key::Static(id) => {
                let Some(idx) = self.idx(&id) else {
                    return Ok(());
                };
                self.children[idx].history.restarting(reason);
                // The siblings the strategy restarts with it: those running now.
                let strategy = self.flags.strategy;
                let siblings: Arc<str> = Arc::from(format!("{}: {id} exited", strategy.name()));
                let with_it = |i: usize| match strategy {
                    Strategy::OneForOne => false,
                    Strategy::OneForAll => i != idx,
                    Strategy::RestForOne => i > idx,
                };
                for (i, c) in self.children.iter_mut().enumerate() {
                    if with_it(i) && matches!(c.pid, Pid::Running(_)) {
                        c.history.restarting(siblings.clone());
                    }
                }
                let from = match self.flags.strategy {
                    Strategy::OneForOne => {
                        self.children[idx].pid = Pid::Undefined;
                        idx
                    }
                    Strategy::OneForAll => {
                        self.terminate_from(0).await;
                        0
                    }
                    Strategy::RestForOne => {
                        self.terminate_from(idx).await;
                        self.idx(&id).unwrap_or(self.children.len())
                    }
                };
                let result = if self.flags.strategy == Strategy::OneForOne {
                    self.start_one(idx, &sup).await
                } else {
                    self.start_from(from, &sup).await
                };
                if let Err((failed, why)) = result {
                    let why = Arc::from(format!("start failed: {why}"));
                    let _ = myself.cast(SupervisorMsg::TryAgain(Key::Static(failed), why));
                }
            }
        }
        Ok(())
    }

    async fn start_one(&mut self, idx: usize, sup: &ActorCell) -> Result<(), Failed> {
        let spec = self.children[idx].spec.clone();
        match start_spec(&spec, sup, self.hook.as_ref()).await {
            Ok(Some(cell)) => {
                self.log_started(&spec.id, &cell);
                self.children[idx].running(cell);
                Ok(())
            }
            Ok(None) => {
                self.children[idx].pid = Pid::Undefined;
                Ok(())
            }
            Err(reason) => {
                tracing::error!(supervisor = %self.name, child = %spec.id, %reason, "child failed to restart");
                self.children[idx].pid = Pid::Restarting;
                Err((spec.id.clone(), reason.to_string()))
            }
        }
    }

    /// A child ended by itself. Returns `Err` when the supervisor must fail
    /// (intensity), `Ok(true)` when it must shut down (auto_shutdown).
    async fn child_exited(
        &mut self,
        actor: ActorId,
        reason: ExitReason,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<bool, SupervisorError> {
        let (key, spec) = if let Some(d) = &mut self.dynamic {
            let Some(k) = d.by_actor.remove(&actor) else {
                return Ok(false);
            };
            let Some(child) = d.children.get(&k) else {
                return Ok(false);
            };
            (Key::Dynamic(k), child.spec.clone())
        } else {
            let Some(idx) = self.children.iter().position(|c| c.pid.is(actor)) else {
                return Ok(false);
            };
            self.children[idx].pid = Pid::Undefined;
            (
                Key::Static(self.children[idx].spec.id.clone()),
                self.children[idx].spec.clone(),
            )
        };
        self.log_exit(&spec.id, &reason);
        let restart = match spec.restart {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        };
        if restart {
            let why: Arc<str> = Arc::from(reason.to_string());
            self.restart(key, why, myself).await?;
            return Ok(false);
        }
        // Not restarted: forget temporary children, keep the others' specs.
        match key {
            Key::Dynamic(k) => {
                if let Some(d) = &mut self.dynamic {
                    d.children.remove(&k);
                }
            }
            Key::Static(id) => {
                if let Some(idx) = self.idx(&id) {
                    if spec.restart == Restart::Temporary {
                        self.children.remove(idx);
                    } else {
                        self.children[idx].pid = Pid::Undefined;
                    }
                }
            }
        }
        if spec.significant {
            let shut = match self.flags.auto_shutdown {
                AutoShutdown::Never => false,
                AutoShutdown::AnySignificant => true,
                AutoShutdown::AllSignificant => !self.any_significant_alive(),
            };
            if shut {
                tracing::info!(supervisor = %self.name, child = %spec.id, "significant child exited: auto shutdown");
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn any_significant_alive(&self) -> bool {
        let alive = |c: &Child| c.spec.significant && !matches!(c.pid, Pid::Undefined);
        match &self.dynamic {
            Some(d) => d.children.values().any(alive),
            None => self.children.iter().any(alive),
        }
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        match &self.dynamic {
            Some(d) => d.children.values().map(|c| c.info(None)).collect(),
            None => self
                .children
                .iter()
                .map(|c| c.info(Some(c.spec.id.to_string())))
                .collect(),
        }
    }

    fn describe(&self) -> Description {
        Description {
            name: self.name.clone(),
            strategy: self.flags.strategy,
            children: match self.dynamic {
                Some(_) => Vec::new(),
                None => self.which_children(),
            },
            dynamic: self.dynamic.as_ref().map(|d| DynamicDescription {
                template: d.args.template_id.clone(),
                running: d
                    .children
                    .values()
                    .filter(|c| matches!(c.pid, Pid::Running(_)))
                    .count(),
                total: d.children.len(),
            }),
            restarts: self.restarts,
            max_restarts: self.flags.max_restarts,
            period: self.flags.period,
        }
    }

    fn count_children(&self) -> ChildCounts {
        let mut n = ChildCounts::default();
        let children: Box<dyn Iterator<Item = &Child>> = match &self.dynamic {
            Some(d) => {
                n.specs = 1;
                Box::new(d.children.values())
            }
            None => {
                n.specs = self.children.len();
                Box::new(self.children.iter())
            }
        };
        for c in children {
            if matches!(c.pid, Pid::Running(_)) {
                n.active += 1;
            }
            match c.spec.kind {
                ChildKind::Worker => n.workers += 1,
                ChildKind::Supervisor => n.supervisors += 1,
            }
        }
        n
    }

    async fn start_child(
        &mut self,
        spec: ChildSpec,
        sup: &ActorCell,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        spec.validate(&self.flags)?;
        if let Some(d) = &mut self.dynamic {
            if let Some(max) = d.args.max_children {
                if d.children.len() >= max {
                    return Err(SupervisorError::MaxChildren(max));
                }
            }
            let started = start_spec(&spec, sup, self.hook.as_ref())
                .await
                .map_err(|r| start_failed(&spec.id, r))?;
            if let Some(cell) = &started {
                let k = d.next;
                d.next += 1;
                d.by_actor.insert(cell.get_id(), k);
                d.children
                    .insert(k, Child::new(spec, Pid::Running(cell.clone())));
            }
            return Ok(started);
        }
        if let Some(idx) = self.idx(&spec.id) {
            return Err(match &self.children[idx].pid {
                Pid::Running(c) => SupervisorError::AlreadyStarted {
                    id: spec.id.to_string(),
                    child: c.clone(),
                },
                _ => SupervisorError::AlreadyPresent(spec.id.to_string()),
            });
        }
        let started = start_spec(&spec, sup, self.hook.as_ref())
            .await
            .map_err(|r| start_failed(&spec.id, r))?;
        match &started {
            Some(cell) => {
                self.log_started(&spec.id, cell);
                self.children
                    .push(Child::new(spec, Pid::Running(cell.clone())));
            }
            None if spec.restart == Restart::Temporary => {}
            None => self.children.push(Child::new(spec, Pid::Undefined)),
        }
        Ok(started)
    }

    async fn terminate_child(&mut self, which: ChildRef) -> Result<(), SupervisorError> {
        match (&mut self.dynamic, which) {
            (Some(d), ChildRef::Actor(actor)) => {
                let Some(k) = d.by_actor.remove(&actor) else {
                    return Err(SupervisorError::NotFound(actor.to_string()));
                };
                if let Some(Child {
                    pid: Pid::Running(cell),
                    spec,
                    ..
                }) = d.children.remove(&k)
                {
                    shutdown_child(&cell, spec.shutdown).await;
                }
                Ok(())
            }
            (Some(_), ChildRef::Id(id)) => Err(SupervisorError::NotFound(id)),
            (None, ChildRef::Actor(actor)) => Err(SupervisorError::NotFound(actor.to_string())),
            (None, ChildRef::Id(id)) => {
                let Some(idx) = self.idx(&id) else {
                    return Err(SupervisorError::NotFound(id));
                };
                let pid = std::mem::replace(&mut self.children[idx].pid, Pid::Undefined);
                if let Pid::Running(cell) = pid {
                    shutdown_child(&cell, self.children[idx].spec.shutdown).await;
                }
                if self.children[idx].spec.restart == Restart::Temporary {
                    self.children.remove(idx);
                }
                Ok(())
            }
        }
    }

    async fn restart_child(
        &mut self,
        id: String,
        sup: &ActorCell,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        if self.dynamic.is_some() {
            return Err(SupervisorError::Unsupported("simple_one_for_one"));
        }
        let Some(idx) = self.idx(&id) else {
            return Err(SupervisorError::NotFound(id));
        };
        match self.children[idx].pid {
            Pid::Running(_) => return Err(SupervisorError::Running(id)),
            Pid::Restarting => return Err(SupervisorError::Restarting(id)),
            Pid::Undefined => {}
        }
        let spec = self.children[idx].spec.clone();
        self.children[idx]
            .history
            .restarting(Arc::from("restart_child"));
        let started = start_spec(&spec, sup, self.hook.as_ref())
            .await
            .map_err(|r| start_failed(&spec.id, r))?;
        if let Some(cell) = &started {
            self.log_started(&spec.id, cell);
            self.children[idx].running(cell.clone());
        }
        Ok(started)
    }

    fn delete_child(&mut self, id: String) -> Result<(), SupervisorError> {
        if self.dynamic.is_some() {
            return Err(SupervisorError::Unsupported("simple_one_for_one"));
        }
        let Some(idx) = self.idx(&id) else {
            return Err(SupervisorError::NotFound(id));
        };
        match self.children[idx].pid {
            Pid::Running(_) => Err(SupervisorError::Running(id)),
            Pid::Restarting => Err(SupervisorError::Restarting(id)),
            Pid::Undefined => {
                self.children.remove(idx);
                Ok(())
            }
        }
    }

    fn get_childspec(&self, which: ChildRef) -> Result<ChildSpec, SupervisorError> {
        match (&self.dynamic, which) {
            (Some(d), ChildRef::Actor(actor)) => d
                .by_actor
                .get(&actor)
                .and_then(|k| d.children.get(k))
                .map(|c| c.spec.clone())
                .ok_or_else(|| SupervisorError::NotFound(actor.to_string())),
            (None, ChildRef::Id(id)) => self
                .idx(&id)
                .map(|i| self.children[i].spec.clone())
                .ok_or(SupervisorError::NotFound(id)),
            (_, ChildRef::Id(id)) => Err(SupervisorError::NotFound(id)),
            (_, ChildRef::Actor(a)) => Err(SupervisorError::NotFound(a.to_string())),
        }
    }

    fn is_restarting(&self, key: &Key) -> bool {
        match key {
            Key::Static(id) => self
                .idx(id)
                .is_some_and(|i| matches!(self.children[i].pid, Pid::Restarting)),
            Key::Dynamic(k) => self
                .dynamic
                .as_ref()
                .and_then(|d| d.children.get(k))
                .is_some_and(|c| matches!(c.pid, Pid::Restarting)),
        }
    }
}

impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = State;
    type Arguments = Args;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: Args,
    ) -> Result<State, ActorProcessingErr> {
        args.flags.validate()?;
        let mut state = State {
            me: myself.get_cell(),
            name: args.name,
            flags: args.flags,
            intensity: Intensity::new(args.flags.max_restarts, args.flags.period),
            children: Vec::with_capacity(args.children.len()),
            dynamic: args.dynamic.map(|args| Dynamic {
                args,
                next: 0,
                children: HashMap::new(),
                by_actor: HashMap::new(),
            }),
            hook: args.hook,
            restarts: 0,
        };
        let sup = myself.get_cell();
        for spec in args.children {
            let started = match start_spec(&spec, &sup, state.hook.as_ref()).await {
                Ok(s) => s,
                Err(reason) => {
                    tracing::error!(supervisor = %state.name, child = %spec.id, %reason, "child failed to start");
                    state.terminate_all().await;
                    return Err(Box::new(start_failed(&spec.id, reason)));
                }
            };
            match started {
                Some(cell) => {
                    state.log_started(&spec.id, &cell);
                    state.children.push(Child::new(spec, Pid::Running(cell)));
                }
                None if spec.restart == Restart::Temporary => {}
                None => state.children.push(Child::new(spec, Pid::Undefined)),
            }
        }
        tracing::debug!(supervisor = %state.name, "supervisor started");
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        state.terminate_all().await;
        tracing::debug!(supervisor = %state.name, "supervisor stopped");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        let sup = myself.get_cell();
        match msg {
            SupervisorMsg::WhichChildren(reply) => {
                let _ = reply.send(state.which_children());
            }
            SupervisorMsg::CountChildren(reply) => {
                let _ = reply.send(state.count_children());
            }
            SupervisorMsg::StartChild(spec, reply) => {
                let _ = reply.send(state.start_child(spec, &sup).await);
            }
            SupervisorMsg::TerminateChild(which, reply) => {
                let _ = reply.send(state.terminate_child(which).await);
            }
            SupervisorMsg::RestartChild(id, reply) => {
                let _ = reply.send(state.restart_child(id, &sup).await);
            }
            SupervisorMsg::DeleteChild(id, reply) => {
                let _ = reply.send(state.delete_child(id));
            }
            SupervisorMsg::GetChildSpec(which, reply) => {
                let _ = reply.send(state.get_childspec(which));
            }
            SupervisorMsg::Describe(reply) => {
                let _ = reply.send(state.describe());
            }
            SupervisorMsg::TryAgain(key, why) => {
                if state.is_restarting(&key) {
                    state.restart(key, why, &myself).await?;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        let actor = match &event {
            SupervisionEvent::ActorTerminated(cell, _, _)
            | SupervisionEvent::ActorFailed(cell, _) => cell.get_id(),
            _ => return Ok(()),
        };
        let Some(reason) = ExitReason::from_event(&event) else {
            return Ok(());
        };
        drop(event);
        if state.child_exited(actor, reason, &myself).await? {
            myself.stop(Some(SHUTDOWN.to_string()));
        }
        Ok(())
    }
}
