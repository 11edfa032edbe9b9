//! The `metrics` actor under `metrics_sup`: the owner of the node's registry
//! at run time.
//!
//! The metrics themselves are plain shared handles ([`Metrics`]): counters
//! are updated lock-free by whoever counts, and `/metrics` gathers the
//! shared registry directly rather than through a mailbox. What the actor
//! owns is the life cycle of what is registered while the node runs: the
//! process collector (CPU, memory, file descriptors: `corral_process_*`)
//! is registered when the actor starts and unregistered when it stops, so
//! a restarted actor registers it afresh. A killed actor does not get to
//! unregister (ractor runs no `post_stop` after a kill or a panic), so
//! starting replaces whatever registration is left over rather than fail
//! on a duplicate. It also answers [`MetricsMsg`] requests.
//!
//! One process collector per registry: two nodes sharing one [`Metrics`]
//! (see [`NodeBuilder::metrics`](crate::node::NodeBuilder::metrics)) share
//! its registration, and the first of their actors to stop removes it.

use super::Metrics;
use crate::supervisor::{ChildSpec, Strategy, SupervisorFlags, SupervisorSpec};
use prometheus::proto::MetricFamily;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Duration;

/// What the `metrics` actor answers.
#[derive(Debug)]
#[non_exhaustive]
pub enum MetricsMsg {
    /// Everything, in the Prometheus text exposition format (as
    /// [`Metrics::render`]).
    Render(RpcReplyPort<String>),
    /// Every metric family, as [`prometheus::Registry::gather`].
    Gather(RpcReplyPort<Vec<MetricFamily>>),
}

/// The `metrics` actor, `metrics_sup`'s child: registers the process
/// collector in the node's registry when it starts and unregisters it when
/// it stops (see [`Metrics::supervisor_spec`]); answers [`MetricsMsg`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetricsActor;

/// The `metrics` actor's state: the metrics, and whether it registered the
/// process collector.
#[derive(Debug)]
pub(crate) struct MetricsState {
    metrics: Arc<Metrics>,
    process: bool,
}

impl Actor for MetricsActor {
    type Msg = MetricsMsg;
    type State = MetricsState;
    type Arguments = Arc<Metrics>;

    async fn pre_start(
        &self,
        _: ActorRef<MetricsMsg>,
        metrics: Arc<Metrics>,
    ) -> Result<MetricsState, ActorProcessingErr> {
        let process = register_process_collector(&metrics)?;
        Ok(MetricsState { metrics, process })
    }

    async fn post_stop(
        &self,
        _: ActorRef<MetricsMsg>,
        state: &mut MetricsState,
    ) -> Result<(), ActorProcessingErr> {
        if state.process {
            unregister_process_collector(&state.metrics);
            state.process = false;
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<MetricsMsg>,
        msg: MetricsMsg,
        state: &mut MetricsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MetricsMsg::Render(reply) => {
                let _ = reply.send(state.metrics.render());
            }
            MetricsMsg::Gather(reply) => {
                let _ = reply.send(state.metrics.registry().gather());
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// `metrics_sup` (one_for_one) with the `metrics` actor, which registers
    /// the process collector in these metrics' registry while it runs; the
    /// node starts it first under its root.
    pub fn supervisor_spec(self: &Arc<Self>) -> ChildSpec {
        ChildSpec::supervisor(
            "metrics_sup",
            SupervisorSpec::new("metrics_sup")
                .flags(
                    SupervisorFlags::new(Strategy::OneForOne).intensity(5, Duration::from_secs(10)),
                )
                .child(ChildSpec::worker("metrics", MetricsActor, self.clone())),
        )
    }
}

/// A process collector for this process. No namespace of its own: the
/// registry's prefix makes the names `corral_process_*` (a namespace here
/// would double it).
#[cfg(target_os = "linux")]
fn process_collector() -> Box<dyn prometheus::core::Collector> {
    Box::new(prometheus::process_collector::ProcessCollector::new(
        std::process::id() as i32,
        "",
    ))
}

/// Registers the process collector, replacing one left registered by an
/// actor that was killed; `false` where there is none (not Linux).
fn register_process_collector(metrics: &Metrics) -> Result<bool, prometheus::Error> {
    #[cfg(target_os = "linux")]
    {
        // Collectors are told apart by their descriptors: a fresh collector
        // unregisters one made earlier. Not registered is fine.
        let _ = metrics.registry().unregister(process_collector());
        metrics.registry().register(process_collector())?;
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = metrics;
        Ok(false)
    }
}

fn unregister_process_collector(metrics: &Metrics) {
    #[cfg(target_os = "linux")]
    let _ = metrics.registry().unregister(process_collector());
    #[cfg(not(target_os = "linux"))]
    let _ = metrics;
}
