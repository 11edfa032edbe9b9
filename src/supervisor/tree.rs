//! A snapshot of a running supervision tree, and its drawing.
//!
//! [`Supervisor::tree`] asks the supervisor, then each running supervisor
//! below it in turn, what it is and which children it has
//! (`which_children`), and returns a [`SupervisionTree`]; its
//! [`Display`](std::fmt::Display) draws it as `tree(1)` does:
//!
//! ```text
//! app (one_for_one)
//! ├── store_sup (rest_for_one)
//! │   ├── store
//! │   └── hub
//! └── conns (simple_one_for_one)
//!     └── conn × 2
//! ```
//!
//! A dynamic supervisor (simple_one_for_one) is drawn with its template's id
//! and how many children it has, not one row per child: it may have
//! thousands. A child that is not running is marked `[restarting]` or
//! `[not running]`. The snapshot is taken supervisor by supervisor, not
//! atomically: a restart during the walk shows whichever side of it each
//! supervisor saw.

use super::error::SupervisorError;
use super::handle::{DynamicSupervisor, Supervisor};
use super::server::{ChildHistory, ChildInfo, ChildState, Description};
use super::spec::{ChildKind, Restart, Strategy};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// One entry of a supervision tree: a child (or the root) and what is below
/// it. Made by [`Supervisor::tree`]; [`Display`](fmt::Display) draws it.
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
///         .child(ChildSpec::supervisor(
///             "db_sup",
///             SupervisorSpec::new("db_sup").child(ChildSpec::worker("db", Worker, ())),
///         ))
///         .child(ChildSpec::worker("web", Worker, ())),
/// )
/// .await?;
/// let tree = sup.tree().await?;
/// assert_eq!(
///     tree.to_string(),
///     "app (one_for_one)\n├── db_sup (one_for_one)\n│   └── db\n└── web\n"
/// );
/// assert!(tree.find("db").is_some());
/// sup.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupervisionTree {
    /// The child's id under its supervisor; for the root, the supervisor's
    /// name.
    pub id: String,
    /// Whether it runs (the root: running, since it answered).
    pub state: ChildState,
    /// What it is, and what is below it.
    pub kind: TreeKind,
    /// Its restart type (`None` for the root, which has no supervisor).
    pub restart: Option<Restart>,
    /// Its restarts and uptime under its supervisor (the root's: empty).
    pub history: ChildHistory,
    /// For a supervisor that answered: the restarts it made and its
    /// intensity.
    pub supervisor: Option<SupervisorStats>,
}

/// A running supervisor's own figures, in a [`SupervisionTree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SupervisorStats {
    /// Restarts it made since it started.
    pub restarts: u64,
    /// More than this many restarts within `period` and it gives up.
    pub max_restarts: u32,
    /// The window of `max_restarts`.
    pub period: std::time::Duration,
}

/// What an entry of a [`SupervisionTree`] is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TreeKind {
    /// A worker.
    Worker,
    /// A supervisor with a list of children (one_for_one, one_for_all,
    /// rest_for_one).
    Supervisor {
        /// The supervisor's name (its spec's; usually its id).
        name: String,
        /// Its restart strategy.
        strategy: Strategy,
        /// Its children, in start order.
        children: Vec<SupervisionTree>,
    },
    /// A dynamic supervisor (simple_one_for_one): its children counted, not
    /// listed.
    Dynamic {
        /// The supervisor's name.
        name: String,
        /// The id of the template its children are made from.
        template: String,
        /// Children running.
        running: usize,
        /// Children held, running or being restarted.
        total: usize,
    },
    /// A supervisor that could not be asked: not running, gone during the
    /// walk, or not one of ours.
    Unknown,
}

impl SupervisionTree {
    /// The first entry (depth first, in start order) with this id, this one
    /// included.
    pub fn find(&self, id: &str) -> Option<&SupervisionTree> {
        if self.id == id {
            return Some(self);
        }
        self.children().iter().find_map(|c| c.find(id))
    }

    /// The entries below a static supervisor, in start order; empty for
    /// anything else.
    pub fn children(&self) -> &[SupervisionTree] {
        match &self.kind {
            TreeKind::Supervisor { children, .. } => children,
            _ => &[],
        }
    }

    /// The ids of [`children`](Self::children), in start order.
    pub fn child_ids(&self) -> Vec<&str> {
        self.children().iter().map(|c| c.id.as_str()).collect()
    }

    fn label(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        match &self.kind {
            TreeKind::Worker => {}
            TreeKind::Supervisor { strategy, .. } => write!(f, " ({})", strategy.name())?,
            TreeKind::Dynamic { .. } => f.write_str(" (simple_one_for_one)")?,
            TreeKind::Unknown => f.write_str(" (supervisor)")?,
        }
        match self.state {
            ChildState::Running(_) | ChildState::Task => Ok(()),
            ChildState::Restarting => f.write_str(" [restarting]"),
            ChildState::Undefined => f.write_str(" [not running]"),
        }
    }

    fn draw(&self, f: &mut fmt::Formatter<'_>, prefix: &str) -> fmt::Result {
        let rows = match &self.kind {
            TreeKind::Supervisor { children, .. } => children.len(),
            TreeKind::Dynamic { .. } => 1,
            _ => 0,
        };
        for i in 0..rows {
            let last = i + 1 == rows;
            let (branch, indent) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            f.write_str(prefix)?;
            f.write_str(branch)?;
            match &self.kind {
                TreeKind::Supervisor { children, .. } => {
                    let child = &children[i];
                    child.label(f)?;
                    f.write_str("\n")?;
                    child.draw(f, &format!("{prefix}{indent}"))?;
                }
                TreeKind::Dynamic {
                    template,
                    running,
                    total,
                    ..
                } => {
                    write!(f, "{template} × {running}")?;
                    if total > running {
                        write!(f, " ({} restarting)", total - running)?;
                    }
                    f.write_str("\n")?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl fmt::Display for SupervisionTree {
    /// One line per entry, drawn with box-drawing characters; each line ends
    /// with a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.label(f)?;
        f.write_str("\n")?;
        self.draw(f, "")
    }
}

impl Supervisor {
    /// A snapshot of the tree below this supervisor (itself, its children,
    /// theirs, ...), drawn by its `Display`; dynamic supervisors' children
    /// are counted, not listed. See [`SupervisionTree`].
    pub async fn tree(&self) -> Result<SupervisionTree, SupervisorError> {
        snapshot(self, None, ChildState::Running(self.cell())).await
    }
}

impl<A> DynamicSupervisor<A> {
    /// A snapshot of this supervisor as a tree: its template and how many
    /// children it has (see [`Supervisor::tree`]).
    pub async fn tree(&self) -> Result<SupervisionTree, SupervisorError> {
        let sup = self.as_supervisor();
        snapshot(&sup, None, ChildState::Running(sup.cell())).await
    }
}

/// The tree below `sup` (which answered `describe`), as entry `id`.
pub(crate) async fn snapshot(
    sup: &Supervisor,
    id: Option<String>,
    state: ChildState,
) -> Result<SupervisionTree, SupervisorError> {
    let d = sup.describe().await?;
    Ok(entry(d, id, state, None).await)
}

fn entry(
    d: Description,
    id: Option<String>,
    state: ChildState,
    info: Option<(Restart, ChildHistory)>,
) -> Pin<Box<dyn Future<Output = SupervisionTree> + Send>> {
    Box::pin(async move {
        let id = id.unwrap_or_else(|| d.name.to_string());
        let stats = SupervisorStats {
            restarts: d.restarts,
            max_restarts: d.max_restarts,
            period: d.period,
        };
        let kind = match d.dynamic {
            Some(dynamic) => TreeKind::Dynamic {
                name: d.name.to_string(),
                template: dynamic.template.to_string(),
                running: dynamic.running,
                total: dynamic.total,
            },
            None => {
                let mut children = Vec::with_capacity(d.children.len());
                for c in d.children {
                    let below = match (c.kind, &c.state) {
                        (ChildKind::Supervisor, ChildState::Running(cell)) => {
                            match Supervisor::from_cell(cell.clone()) {
                                Some(s) => s.describe().await.ok(),
                                None => None,
                            }
                        }
                        _ => None,
                    };
                    let child = match below {
                        Some(b) => {
                            let ChildInfo {
                                id,
                                state,
                                restart,
                                history,
                                ..
                            } = c;
                            entry(
                                b,
                                Some(id.unwrap_or_default()),
                                state,
                                Some((restart, history)),
                            )
                            .await
                        }
                        None => leaf(c),
                    };
                    children.push(child);
                }
                TreeKind::Supervisor {
                    name: d.name.to_string(),
                    strategy: d.strategy,
                    children,
                }
            }
        };
        let (restart, history) = match info {
            Some((r, h)) => (Some(r), h),
            None => (None, ChildHistory::default()),
        };
        SupervisionTree {
            id,
            state,
            kind,
            restart,
            history,
            supervisor: Some(stats),
        }
    })
}

/// A worker, or a supervisor that could not be asked.
fn leaf(c: ChildInfo) -> SupervisionTree {
    SupervisionTree {
        id: c.id.unwrap_or_default(),
        kind: match c.kind {
            ChildKind::Worker => TreeKind::Worker,
            ChildKind::Supervisor => TreeKind::Unknown,
        },
        state: c.state,
        restart: Some(c.restart),
        history: c.history,
        supervisor: None,
    }
}
