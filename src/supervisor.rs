//! Erlang/OTP supervisors on ractor.
//!
//! A supervisor is an actor that starts children (other actors, linked to
//! it), watches them end, and restarts them by its strategy, as OTP's
//! `supervisor` does:
//!
//! - strategies [`Strategy::OneForOne`], [`Strategy::OneForAll`],
//!   [`Strategy::RestForOne`], and the [`DynamicSupervisor`]
//!   (simple_one_for_one);
//! - restart types [`Restart::Permanent`], [`Restart::Transient`],
//!   [`Restart::Temporary`], read against [`ExitReason`] (the one place where
//!   ractor's exits map onto normal / shutdown / abnormal);
//! - restart intensity: more than `max_restarts` within `period` and the
//!   supervisor stops its children and fails, so its parent sees a child
//!   failure (escalation);
//! - [`Shutdown`] per child: brutal kill, a timeout, or infinity; children
//!   start in order and stop in reverse order;
//! - `auto_shutdown` with significant children;
//! - administration: `which_children`, `count_children`, `start_child`,
//!   `terminate_child`, `restart_child`, `delete_child`, `get_childspec`;
//!   `which_children` also gives each child's restart type and
//!   [`ChildHistory`] (restarts, the last one's reason, uptime), which the
//!   [observer](../observer/index.html) shows;
//! - a snapshot of a running tree, drawn as text ([`Supervisor::tree`],
//!   [`SupervisionTree`]), a dynamic supervisor's children counted rather
//!   than listed.
//!
//! Every start, exit, restart and give-up is a `tracing` event (target
//! `corral::supervisor::server`), and each restart is told to a
//! [`RestartHook`] when one is set (inherited down the tree; the node counts
//! restarts in Prometheus with one).
//!
//! One deliberate difference from OTP: a supervisor that gives up exits
//! abnormally (reason `reached max restart intensity`), not with `shutdown`,
//! so that a transient parent spec restarts it too.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), corral::supervisor::SupervisorError> {
//! use corral::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorFlags, SupervisorSpec};
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//! use std::time::Duration;
//!
//! #[derive(Clone)]
//! struct Counter;
//! impl Actor for Counter {
//!     type Msg = ();
//!     type State = u64;
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<u64, ActorProcessingErr> {
//!         Ok(0)
//!     }
//! }
//!
//! let sup = Supervisor::start(
//!     SupervisorSpec::new("app")
//!         .flags(SupervisorFlags::new(Strategy::RestForOne).intensity(3, Duration::from_secs(10)))
//!         .child(ChildSpec::worker("store", Counter, ()))
//!         .child(ChildSpec::worker("hub", Counter, ())),
//! )
//! .await?;
//! let children = sup.which_children().await?;
//! assert_eq!(children[0].id.as_deref(), Some("store"));
//! sup.stop().await;
//! # Ok(()) }
//! ```

mod error;
mod exit;
mod handle;
mod hook;
mod intensity;
mod server;
mod shutdown;
mod spec;
mod tree;

pub use error::SupervisorError;
pub use exit::{ExitReason, KILLED, SHUTDOWN};
pub use handle::{ChildTemplate, DynamicSpec, DynamicSupervisor, Supervisor};
pub use hook::{RestartEvent, RestartHook};
pub use server::{ChildCounts, ChildHistory, ChildInfo, ChildState};
pub(crate) use server::{Description, DynamicDescription, SupervisorMsg};
pub use spec::{
    AutoShutdown, ChildKind, ChildSpec, Restart, Shutdown, StartFuture, Started, Strategy,
    SupervisorFlags, SupervisorSpec, DEFAULT_WORKER_SHUTDOWN,
};
pub use tree::{SupervisionTree, SupervisorStats, TreeKind};
