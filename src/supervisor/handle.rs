//! Handles to running supervisors: [`Supervisor`] for a static list of
//! children, [`DynamicSupervisor`] for children made at run time.

use super::error::SupervisorError;
use super::exit::SHUTDOWN;
use super::hook::RestartHook;
use super::server::{
    Args, ChildCounts, ChildInfo, ChildRef, Description, DynamicArgs, SupervisorActor,
    SupervisorMsg,
};
use super::spec::{
    ChildKind, ChildSpec, Restart, Shutdown, StartFuture, Started, SupervisorFlags, SupervisorSpec,
};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// How long a supervisor asked for its description may take to answer
/// before the tree shows it as unknown (a supervisor answers between
/// restarts and shutdowns, which can take their drain timeouts).
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

fn spawn_error(e: SpawnErr) -> SupervisorError {
    match e {
        SpawnErr::StartupFailed(err) => match err.downcast::<SupervisorError>() {
            Ok(e) => *e,
            Err(other) => SupervisorError::Spawn(other.to_string()),
        },
        other => SupervisorError::Spawn(other.to_string()),
    }
}

async fn spawn(
    mut args: Args,
    parent: Option<ActorCell>,
) -> Result<ActorRef<SupervisorMsg>, SupervisorError> {
    if args.hook.is_none() {
        args.hook = super::hook::inherited();
    }
    let spawned = match parent {
        Some(p) => SupervisorActor::spawn_linked(None, SupervisorActor, args, p).await,
        None => SupervisorActor::spawn(None, SupervisorActor, args).await,
    };
    spawned.map(|(r, _)| r).map_err(spawn_error)
}

/// The calls both kinds of supervisor answer.
#[derive(Clone)]
struct Core(ActorRef<SupervisorMsg>);

impl Core {
    async fn call<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
    ) -> Result<T, SupervisorError> {
        match self.0.call(msg, None).await {
            Ok(CallResult::Success(v)) => Ok(v),
            _ => Err(SupervisorError::NoProc),
        }
    }

    async fn describe(&self) -> Result<Description, SupervisorError> {
        match self
            .0
            .call(SupervisorMsg::Describe, Some(DESCRIBE_TIMEOUT))
            .await
        {
            Ok(CallResult::Success(v)) => Ok(v),
            _ => Err(SupervisorError::NoProc),
        }
    }

    async fn stop(&self) {
        let _ = self.0.stop_and_wait(Some(SHUTDOWN.to_string()), None).await;
    }
}

/// A running supervisor with a list of child specs (one_for_one,
/// one_for_all or rest_for_one).
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), corral::supervisor::SupervisorError> {
/// use corral::supervisor::{ChildSpec, Supervisor, SupervisorSpec};
/// # use ractor::{Actor, ActorRef, ActorProcessingErr};
/// # #[derive(Clone)] struct Worker;
/// # impl Actor for Worker {
/// #     type Msg = (); type State = (); type Arguments = ();
/// #     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
/// # }
/// let sup = Supervisor::start(
///     SupervisorSpec::new("app")
///         .child(ChildSpec::worker("a", Worker, ()))
///         .child(ChildSpec::worker("b", Worker, ())),
/// )
/// .await?;
/// assert_eq!(sup.count_children().await?.active, 2);
/// sup.terminate_child("b").await?;
/// assert_eq!(sup.count_children().await?.active, 1);
/// sup.stop().await; // stops "a", then itself
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Supervisor {
    core: Core,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Supervisor")
            .field(&self.core.0.get_id())
            .finish()
    }
}

impl Supervisor {
    /// Starts a supervisor with no parent (the root of a tree). Its children
    /// are started in order; if one fails, those already started are stopped
    /// and the error names the child.
    pub async fn start(spec: SupervisorSpec) -> Result<Self, SupervisorError> {
        Self::start_with(spec, None).await
    }

    /// Starts a supervisor linked to `parent`, which is told when it exits.
    pub async fn start_linked(
        spec: SupervisorSpec,
        parent: ActorCell,
    ) -> Result<Self, SupervisorError> {
        Self::start_with(spec, Some(parent)).await
    }

    async fn start_with(
        spec: SupervisorSpec,
        parent: Option<ActorCell>,
    ) -> Result<Self, SupervisorError> {
        spec.validate()?;
        let actor = spawn(static_args(spec), parent).await?;
        Ok(Supervisor { core: Core(actor) })
    }

    /// A handle to a supervisor found as a child (`which_children`), if that
    /// actor is a static supervisor.
    pub fn from_cell(cell: ActorCell) -> Option<Self> {
        match cell.is_message_type_of::<SupervisorMsg>() {
            Some(false) => None,
            _ => Some(Supervisor {
                core: Core(cell.into()),
            }),
        }
    }

    /// The supervisor's actor.
    pub fn cell(&self) -> ActorCell {
        self.core.0.get_cell()
    }

    /// Every child in start order, with its state.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.core.call(SupervisorMsg::WhichChildren).await
    }

    /// Counts of specs, running children, supervisors and workers.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.core.call(SupervisorMsg::CountChildren).await
    }

    /// Adds a child at the end of the list and starts it. `Ok(None)` if the
    /// child chose to be ignored (a temporary child that is ignored is not kept).
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Option<ActorCell>, SupervisorError> {
        self.core
            .call(|r| SupervisorMsg::StartChild(spec, r))
            .await?
    }

    /// Stops a child as its spec says; keeps the spec unless the child is
    /// temporary. Idempotent: terminating a stopped child is `Ok`.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_string();
        self.core
            .call(|r| SupervisorMsg::TerminateChild(ChildRef::Id(id), r))
            .await?
    }

    /// Starts again a child that is not running.
    pub async fn restart_child(&self, id: &str) -> Result<Option<ActorCell>, SupervisorError> {
        let id = id.to_string();
        self.core
            .call(|r| SupervisorMsg::RestartChild(id, r))
            .await?
    }

    /// Forgets the spec of a child that is not running.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_string();
        self.core
            .call(|r| SupervisorMsg::DeleteChild(id, r))
            .await?
    }

    /// The spec of a child.
    pub async fn get_childspec(&self, id: &str) -> Result<ChildSpec, SupervisorError> {
        let id = id.to_string();
        self.core
            .call(|r| SupervisorMsg::GetChildSpec(ChildRef::Id(id), r))
            .await?
    }

    pub(crate) async fn describe(&self) -> Result<Description, SupervisorError> {
        self.core.describe().await
    }

    /// Shuts the supervisor down: its children stop in reverse start order,
    /// then it exits with reason `shutdown`. Returns when it has exited.
    pub async fn stop(&self) {
        self.core.stop().await
    }

    /// Waits until the supervisor has exited, for whatever reason.
    pub async fn wait(&self) {
        let _ = self.core.0.wait(None).await;
    }
}

fn static_args(spec: SupervisorSpec) -> Args {
    Args {
        name: spec.name,
        flags: spec.flags,
        children: spec.children,
        dynamic: None,
        hook: spec.hook,
    }
}

impl ChildSpec {
    /// A child that is itself a supervisor (shutdown: infinity, as OTP).
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> Self {
        let args = static_args(spec);
        Self::new(id, move |sup| {
            let args = args.clone();
            async move { start_child_supervisor(args, sup).await }
        })
        .kind(ChildKind::Supervisor)
        .shutdown(Shutdown::Infinity)
    }

    /// A child that is a dynamic supervisor (shutdown: infinity, as OTP).
    pub fn dynamic_supervisor<A: Clone + Send + Sync + 'static>(
        id: impl Into<String>,
        spec: DynamicSpec<A>,
    ) -> Self {
        let args = dynamic_args(&spec);
        Self::new(id, move |sup| {
            let args = args.clone();
            async move { start_child_supervisor(args, sup).await }
        })
        .kind(ChildKind::Supervisor)
        .shutdown(Shutdown::Infinity)
    }
}

async fn start_child_supervisor(args: Args, sup: ActorCell) -> Result<Started, ActorProcessingErr> {
    match spawn(args, Some(sup)).await {
        Ok(r) => Ok(Started::Child(r.get_cell())),
        Err(e) => Err(Box::new(e)),
    }
}

type TemplateFn<A> = Arc<dyn Fn(ActorCell, A) -> StartFuture + Send + Sync>;

/// The template of a dynamic supervisor's children: OTP's single child spec
/// of a simple_one_for_one supervisor, whose start function takes the
/// arguments given to each `start_child`.
pub struct ChildTemplate<A> {
    id: Arc<str>,
    start: TemplateFn<A>,
    restart: Restart,
    shutdown: Shutdown,
    kind: ChildKind,
    significant: bool,
}

impl<A> Clone for ChildTemplate<A> {
    fn clone(&self) -> Self {
        ChildTemplate {
            id: self.id.clone(),
            start: self.start.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            significant: self.significant,
        }
    }
}

impl<A: Clone + Send + Sync + 'static> ChildTemplate<A> {
    /// A template whose `start` gets the supervisor's cell and the child's arguments.
    pub fn new<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: Fn(ActorCell, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Started, ActorProcessingErr>> + Send + 'static,
    {
        ChildTemplate {
            id: Arc::from(id.into()),
            start: Arc::new(move |sup, args| Box::pin(start(sup, args))),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(super::spec::DEFAULT_WORKER_SHUTDOWN),
            kind: ChildKind::Worker,
            significant: false,
        }
    }

    /// A template whose children run `actor`, each started with its own
    /// arguments (the actor's `Arguments`).
    pub fn worker<W>(id: impl Into<String>, actor: W) -> Self
    where
        W: Actor<Arguments = A> + Clone + Sync,
    {
        Self::new(id, move |sup, args| {
            let actor = actor.clone();
            async move {
                let (child, _) = W::spawn_linked(None, actor, args, sup).await?;
                Ok(Started::Child(child.get_cell()))
            }
        })
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how children are stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the kind of the children.
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    /// Marks the children significant for auto_shutdown.
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    fn spec_for(&self, args: A) -> ChildSpec {
        let start = self.start.clone();
        ChildSpec {
            id: self.id.clone(),
            start: Arc::new(move |sup| start(sup, args.clone())),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            significant: self.significant,
        }
    }
}

/// Everything needed to start a dynamic (simple_one_for_one) supervisor.
pub struct DynamicSpec<A> {
    name: Arc<str>,
    flags: SupervisorFlags,
    template: ChildTemplate<A>,
    max_children: Option<usize>,
    hook: Option<RestartHook>,
}

impl<A> Clone for DynamicSpec<A> {
    fn clone(&self) -> Self {
        DynamicSpec {
            name: self.name.clone(),
            flags: self.flags,
            template: self.template.clone(),
            max_children: self.max_children,
            hook: self.hook.clone(),
        }
    }
}

impl<A: Clone + Send + Sync + 'static> DynamicSpec<A> {
    /// A dynamic supervisor named `name` with OTP's default flags.
    pub fn new(name: impl Into<String>, template: ChildTemplate<A>) -> Self {
        DynamicSpec {
            name: Arc::from(name.into()),
            flags: SupervisorFlags::default(),
            template,
            max_children: None,
            hook: None,
        }
    }

    /// Sets the flags (the strategy is ignored: only the exited child restarts).
    pub fn flags(mut self, flags: SupervisorFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Refuses `start_child` beyond this many children.
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Calls `hook` on every restart (see [`RestartHook`]); without one,
    /// the parent supervisor's hook is inherited.
    pub fn on_restart(mut self, hook: RestartHook) -> Self {
        self.hook = Some(hook);
        self
    }
}

fn dynamic_args<A: Clone + Send + Sync + 'static>(spec: &DynamicSpec<A>) -> Args {
    Args {
        name: spec.name.clone(),
        flags: spec.flags,
        children: Vec::new(),
        dynamic: Some(DynamicArgs {
            template_id: spec.template.id.clone(),
            template_shutdown: spec.template.shutdown,
            max_children: spec.max_children,
        }),
        hook: spec.hook.clone(),
    }
}

/// A running dynamic supervisor (OTP's simple_one_for_one): children are
/// added at run time from the template, each with its own arguments, and
/// are stopped concurrently.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), corral::supervisor::SupervisorError> {
/// use corral::supervisor::{ChildTemplate, DynamicSpec, DynamicSupervisor, Restart};
/// # use ractor::{Actor, ActorRef, ActorProcessingErr};
/// # #[derive(Clone)] struct Conn;
/// # impl Actor for Conn {
/// #     type Msg = (); type State = u32; type Arguments = u32;
/// #     async fn pre_start(&self, _: ActorRef<()>, n: u32) -> Result<u32, ActorProcessingErr> { Ok(n) }
/// # }
/// let template = ChildTemplate::worker("conn", Conn).restart(Restart::Temporary);
/// let sup = DynamicSupervisor::start(DynamicSpec::new("conns", template).max_children(2)).await?;
/// sup.start_child(1).await?;
/// sup.start_child(2).await?;
/// assert!(sup.start_child(3).await.is_err()); // full: refused, not crashed
/// sup.stop().await;
/// # Ok(()) }
/// ```
pub struct DynamicSupervisor<A> {
    core: Core,
    template: ChildTemplate<A>,
    _args: PhantomData<fn(A)>,
}

impl<A> DynamicSupervisor<A> {
    /// The same supervisor, through the calls every supervisor answers.
    pub(super) fn as_supervisor(&self) -> Supervisor {
        Supervisor {
            core: self.core.clone(),
        }
    }
}

impl<A> Clone for DynamicSupervisor<A> {
    fn clone(&self) -> Self {
        DynamicSupervisor {
            core: self.core.clone(),
            template: self.template.clone(),
            _args: PhantomData,
        }
    }
}

impl<A: Clone + Send + Sync + 'static> DynamicSupervisor<A> {
    /// Starts a dynamic supervisor with no parent.
    pub async fn start(spec: DynamicSpec<A>) -> Result<Self, SupervisorError> {
        Self::start_with(spec, None).await
    }

    /// Starts a dynamic supervisor linked to `parent`.
    pub async fn start_linked(
        spec: DynamicSpec<A>,
        parent: ActorCell,
    ) -> Result<Self, SupervisorError> {
        Self::start_with(spec, Some(parent)).await
    }

    async fn start_with(
        spec: DynamicSpec<A>,
        parent: Option<ActorCell>,
    ) -> Result<Self, SupervisorError> {
        spec.flags.validate()?;
        spec.template.spec_for_validation().validate(&spec.flags)?;
        let actor = spawn(dynamic_args(&spec), parent).await?;
        Ok(DynamicSupervisor {
            core: Core(actor),
            template: spec.template,
            _args: PhantomData,
        })
    }

    /// A typed handle to a dynamic supervisor running as a child (found with
    /// `which_children`), given the template it was started with.
    pub fn from_cell(cell: ActorCell, template: ChildTemplate<A>) -> Option<Self> {
        match cell.is_message_type_of::<SupervisorMsg>() {
            Some(false) => None,
            _ => Some(DynamicSupervisor {
                core: Core(cell.into()),
                template,
                _args: PhantomData,
            }),
        }
    }

    /// The supervisor's actor.
    pub fn cell(&self) -> ActorCell {
        self.core.0.get_cell()
    }

    /// Starts a child from the template with these arguments. Refused with
    /// [`SupervisorError::MaxChildren`] when full.
    pub async fn start_child(&self, args: A) -> Result<Option<ActorCell>, SupervisorError> {
        let spec = self.template.spec_for(args);
        self.core
            .call(|r| SupervisorMsg::StartChild(spec, r))
            .await?
    }

    /// Stops a child (as the template's shutdown says) and forgets it.
    pub async fn terminate_child(&self, child: &ActorCell) -> Result<(), SupervisorError> {
        let id = child.get_id();
        self.core
            .call(|r| SupervisorMsg::TerminateChild(ChildRef::Actor(id), r))
            .await?
    }

    /// The spec a running child was started with.
    pub async fn get_childspec(&self, child: &ActorCell) -> Result<ChildSpec, SupervisorError> {
        let id = child.get_id();
        self.core
            .call(|r| SupervisorMsg::GetChildSpec(ChildRef::Actor(id), r))
            .await?
    }

    /// Every child, with its state.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.core.call(SupervisorMsg::WhichChildren).await
    }

    /// Counts (specs is 1: the template).
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.core.call(SupervisorMsg::CountChildren).await
    }

    /// Stops every child concurrently, then the supervisor.
    pub async fn stop(&self) {
        self.core.stop().await
    }

    /// Waits until the supervisor has exited.
    pub async fn wait(&self) {
        let _ = self.core.0.wait(None).await;
    }
}

impl<A: Clone + Send + Sync + 'static> ChildTemplate<A> {
    fn spec_for_validation(&self) -> ChildSpec {
        ChildSpec {
            id: self.id.clone(),
            start: Arc::new(|_| Box::pin(async { Ok(Started::Ignore) })),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            significant: self.significant,
        }
    }
}

impl<A> std::fmt::Debug for ChildTemplate<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildTemplate")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

impl<A> std::fmt::Debug for DynamicSpec<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicSpec")
            .field("name", &self.name)
            .field("flags", &self.flags)
            .field("template", &self.template)
            .field("max_children", &self.max_children)
            .finish_non_exhaustive()
    }
}

impl<A> std::fmt::Debug for DynamicSupervisor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicSupervisor")
            .field("actor", &self.core.0.get_id())
            .field("template", &self.template)
            .finish()
    }
}
