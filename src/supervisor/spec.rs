//! Child specifications and supervisor flags: what a supervisor starts, how
//! it restarts and stops it, and how it reacts to failures.
//!
//! The defaults are OTP's: `one_for_one`, at most 1 restart in 5 seconds,
//! `auto_shutdown = never`; workers are `permanent` with a 5 second shutdown
//! timeout, supervisors `permanent` with an infinite one.

use super::error::SupervisorError;
use super::hook::RestartHook;
use ractor::{Actor, ActorCell, ActorProcessingErr};
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What a child's start function returns when it did not fail.
#[derive(Debug)]
pub enum Started {
    /// The child runs as this actor, linked to the supervisor.
    Child(ActorCell),
    /// The child chose not to run (OTP's `ignore`): a static child is kept with
    /// no process, a dynamic child is forgotten.
    Ignore,
}

/// The future a start function returns.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<Started, ActorProcessingErr>> + Send>>;

pub(crate) type StartFn = Arc<dyn Fn(ActorCell) -> StartFuture + Send + Sync>;

/// When a child that exited is started again (OTP's restart type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Always restarted, whatever the exit reason.
    Permanent,
    /// Restarted only after an abnormal exit (see [`ExitReason`](super::ExitReason)).
    Transient,
    /// Never restarted; its spec is dropped when it exits.
    Temporary,
}

impl Restart {
    /// OTP's name: `permanent`, `transient`, `temporary`.
    pub fn name(self) -> &'static str {
        match self {
            Restart::Permanent => "permanent",
            Restart::Transient => "transient",
            Restart::Temporary => "temporary",
        }
    }
}

/// How a supervisor stops a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Killed at once (OTP's `brutal_kill`): no `post_stop`.
    BrutalKill,
    /// Asked to stop with reason `shutdown`; killed if still alive after this long.
    Timeout(Duration),
    /// Asked to stop with reason `shutdown`, and waited for as long as it takes.
    Infinity,
}

/// Whether a child is a worker or a supervisor (for counts and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// Any actor that is not a supervisor.
    Worker,
    /// A supervisor.
    Supervisor,
}

/// A child specification (OTP's `child_spec()`): an id, a start function, and
/// how the child is restarted and stopped.
///
/// ```
/// use corral::supervisor::{ChildSpec, Restart, Shutdown};
/// # use ractor::{Actor, ActorRef, ActorProcessingErr};
/// # #[derive(Clone)] struct Worker;
/// # impl Actor for Worker {
/// #     type Msg = (); type State = (); type Arguments = ();
/// #     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
/// # }
/// let spec = ChildSpec::worker("cache", Worker, ())
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(std::time::Duration::from_secs(1)));
/// assert_eq!(spec.id(), "cache");
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: Arc<str>,
    pub(crate) start: StartFn,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("significant", &self.significant)
            .finish_non_exhaustive()
    }
}

/// OTP's default shutdown timeout for workers.
pub const DEFAULT_WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

impl ChildSpec {
    /// A worker child started by `start`, which is given the supervisor's cell
    /// and must start an actor linked to it (for example with
    /// [`Actor::spawn_linked`]) or return [`Started::Ignore`].
    pub fn new<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Started, ActorProcessingErr>> + Send + 'static,
    {
        ChildSpec {
            id: Arc::from(id.into()),
            start: Arc::new(move |sup| Box::pin(start(sup))),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN),
            kind: ChildKind::Worker,
            significant: false,
        }
    }

    /// A worker child that runs `actor`, started with a clone of `args` each
    /// time it is (re)started.
    pub fn worker<A>(id: impl Into<String>, actor: A, args: A::Arguments) -> Self
    where
        A: Actor + Clone + Sync,
        A::Arguments: Clone + Sync,
    {
        Self::new(id, move |sup| {
            let actor = actor.clone();
            let args = args.clone();
            async move {
                let (child, _) = A::spawn_linked(None, actor, args, sup).await?;
                Ok(Started::Child(child.get_cell()))
            }
        })
    }

    /// The id, unique among a supervisor's children.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the kind (worker or supervisor), as reported by `which_children`
    /// and `count_children`.
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    /// Marks the child significant for [`AutoShutdown`]. Only transient and
    /// temporary children may be significant.
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// The restart type.
    pub fn restart_type(&self) -> Restart {
        self.restart
    }

    /// How the child is stopped.
    pub fn shutdown_type(&self) -> Shutdown {
        self.shutdown
    }

    /// Worker or supervisor.
    pub fn child_kind(&self) -> ChildKind {
        self.kind
    }

    /// Whether the child is significant for [`AutoShutdown`].
    pub fn is_significant(&self) -> bool {
        self.significant
    }

    /// Checks the spec against the supervisor's flags, as OTP's
    /// `check_childspecs` does.
    pub(crate) fn validate(&self, flags: &SupervisorFlags) -> Result<(), SupervisorError> {
        let bad = |reason: &str| SupervisorError::BadChildSpec {
            id: self.id.to_string(),
            reason: reason.to_string(),
        };
        if self.id.is_empty() {
            return Err(bad("the id is empty"));
        }
        if self.significant {
            if self.restart == Restart::Permanent {
                return Err(bad("a permanent child cannot be significant"));
            }
            if flags.auto_shutdown == AutoShutdown::Never {
                return Err(bad(
                    "a significant child needs auto_shutdown any_significant or all_significant",
                ));
            }
        }
        Ok(())
    }
}

/// How a supervisor restarts its children when one of them exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Only the child that exited is restarted.
    OneForOne,
    /// All children are stopped (in reverse order) and started again (in order).
    OneForAll,
    /// The child that exited and every child started after it are stopped
    /// (last first) and started again (first first).
    RestForOne,
}

impl Strategy {
    /// OTP's name: `one_for_one`, `one_for_all`, `rest_for_one`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
        }
    }
}

/// When a supervisor stops itself because significant children exited
/// (OTP 24's `auto_shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutoShutdown {
    /// Never; significant children are refused.
    Never,
    /// When any significant child exits by itself and is not restarted.
    AnySignificant,
    /// When the last significant child has exited by itself and is not restarted.
    AllSignificant,
}

/// Supervisor flags (OTP's `sup_flags()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorFlags {
    /// The restart strategy (ignored by a dynamic supervisor, which restarts
    /// only the child that exited).
    pub strategy: Strategy,
    /// More than this many restarts within `period` make the supervisor give up.
    pub max_restarts: u32,
    /// The window for `max_restarts`.
    pub period: Duration,
    /// Automatic shutdown on the exit of significant children.
    pub auto_shutdown: AutoShutdown,
}

impl Default for SupervisorFlags {
    fn default() -> Self {
        SupervisorFlags {
            strategy: Strategy::OneForOne,
            max_restarts: 1,
            period: Duration::from_secs(5),
            auto_shutdown: AutoShutdown::Never,
        }
    }
}

impl SupervisorFlags {
    /// Flags with this strategy and OTP's defaults for the rest.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorFlags {
            strategy,
            ..Default::default()
        }
    }

    /// Sets the restart intensity: at most `max_restarts` within `period`.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Sets the automatic shutdown.
    pub fn auto_shutdown(mut self, auto_shutdown: AutoShutdown) -> Self {
        self.auto_shutdown = auto_shutdown;
        self
    }

    /// Checks the flags as OTP's `check_flags` does: the period must be positive.
    pub fn validate(&self) -> Result<(), SupervisorError> {
        if self.period.is_zero() {
            return Err(SupervisorError::BadFlags(
                "period must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

/// Everything needed to start a supervisor with a fixed list of children.
#[derive(Debug, Clone)]
pub struct SupervisorSpec {
    pub(crate) name: Arc<str>,
    pub(crate) flags: SupervisorFlags,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) hook: Option<RestartHook>,
}

impl SupervisorSpec {
    /// A supervisor named `name` (used in events and metrics) with OTP's default
    /// flags and no children yet.
    pub fn new(name: impl Into<String>) -> Self {
        SupervisorSpec {
            name: Arc::from(name.into()),
            flags: SupervisorFlags::default(),
            children: Vec::new(),
            hook: None,
        }
    }

    /// Calls `hook` on every restart this supervisor makes (see
    /// [`RestartHook`]); supervisors below it without a hook of their own
    /// inherit it.
    pub fn on_restart(mut self, hook: RestartHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Sets the flags.
    pub fn flags(mut self, flags: SupervisorFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Appends a child; children start in the order they were added.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn validate(&self) -> Result<(), SupervisorError> {
        self.flags.validate()?;
        let mut seen = HashSet::new();
        for child in &self.children {
            child.validate(&self.flags)?;
            if !seen.insert(child.id.clone()) {
                return Err(SupervisorError::BadChildSpec {
                    id: child.id.to_string(),
                    reason: "duplicate child id".into(),
                });
            }
        }
        Ok(())
    }
}
