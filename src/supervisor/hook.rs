//! How a supervisor reports its restarts: a hook, inherited down the tree.
//!
//! A supervisor given a [`RestartHook`] calls it on every restart it makes;
//! a supervisor started as a child of one that has a hook (and has none of
//! its own) inherits it, so one hook on the root sees the whole tree. The
//! node wires its hook to the Prometheus counter
//! `corral_supervisor_restarts_total{supervisor, child}`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// One restart, as a [`RestartHook`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RestartEvent<'a> {
    /// The supervisor's name.
    pub supervisor: &'a str,
    /// The child's id; a child of a dynamic supervisor is named by its
    /// template's id, so labels stay bounded however many children come
    /// and go.
    pub child: &'a str,
    /// Why: the exit reason of the child (`killed`, an error, a panic's
    /// message), or `start failed: <error>` for a retry after a failed
    /// restart.
    pub reason: &'a str,
}

/// Called by a supervisor on each restart of a child (before the restart
/// is attempted).
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), corral::supervisor::SupervisorError> {
/// use corral::supervisor::{RestartHook, Supervisor, SupervisorSpec};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let restarts = Arc::new(AtomicU64::new(0));
/// let counted = restarts.clone();
/// let hook = RestartHook::new(move |e| {
///     counted.fetch_add(1, Ordering::Relaxed);
///     println!("{} restarted {}", e.supervisor, e.child);
/// });
/// let sup = Supervisor::start(SupervisorSpec::new("app").on_restart(hook)).await?;
/// sup.stop().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RestartHook(Arc<dyn Fn(RestartEvent<'_>) + Send + Sync>);

impl RestartHook {
    /// A hook calling `f`.
    pub fn new(f: impl Fn(RestartEvent<'_>) + Send + Sync + 'static) -> Self {
        RestartHook(Arc::new(f))
    }

    pub(crate) fn call(&self, supervisor: &str, child: &str, reason: &str) {
        (self.0)(RestartEvent {
            supervisor,
            child,
            reason,
        });
    }

    /// A hook that calls this one, then `next`.
    ///
    /// ```
    /// use corral::supervisor::RestartHook;
    /// let hook = RestartHook::new(|e| println!("restart of {}", e.child))
    ///     .then(RestartHook::new(|e| println!("because {}", e.reason)));
    /// # let _ = hook;
    /// ```
    pub fn then(self, next: RestartHook) -> RestartHook {
        RestartHook::new(move |e| {
            (self.0)(e);
            (next.0)(e);
        })
    }
}

impl fmt::Debug for RestartHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestartHook").finish_non_exhaustive()
    }
}

tokio::task_local! {
    /// The hook of the supervisor whose child is being started.
    static INHERITED: RestartHook;
}

/// The hook of the supervisor starting the current child, if any.
pub(crate) fn inherited() -> Option<RestartHook> {
    INHERITED.try_with(RestartHook::clone).ok()
}

/// Runs `fut` (a child's start) so that a supervisor it starts inherits `hook`.
pub(crate) async fn passing<F: Future>(hook: Option<&RestartHook>, fut: F) -> F::Output {
    match hook {
        Some(h) => INHERITED.scope(h.clone(), fut).await,
        None => fut.await,
    }
}
