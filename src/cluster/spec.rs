//! The cluster's subtree, `cluster_sup`.

use std::sync::Arc;
use std::time::Duration;

use super::clock_sync::{ClockSyncActor, ClockSyncStart};
use super::connection::NatsSource;
use super::connection::{NatsActor, NatsArgs};
use super::consumer::{ConsumerActor, ConsumerArgs};
use super::membership::{MembershipActor, MembershipArgs};
use super::Cluster;
use crate::supervisor::{ChildSpec, Strategy, SupervisorFlags, SupervisorSpec};

impl Cluster {
    /// `cluster_sup` (rest_for_one): `nats`, then `log_consumer`,
    /// `membership` and `clock_sync`, then `more` in order. They all depend
    /// on the connection: a restarted `nats` restarts them too, and they
    /// take its new client. Losing
    /// NATS restarts nothing: the client reconnects by itself and the
    /// consumer reads again; a child that fails is restarted under this
    /// supervisor, never taking the node with it unless it keeps failing
    /// (then cluster_sup gives up and the root restarts it).
    pub fn supervisor_spec(&self, more: Vec<ChildSpec>) -> ChildSpec {
        let mut spec = SupervisorSpec::new("cluster_sup")
            .flags(SupervisorFlags::new(Strategy::RestForOne).intensity(5, Duration::from_secs(10)))
            .child(ChildSpec::worker(
                "nats",
                NatsActor,
                NatsArgs {
                    settings: self.settings.clone(),
                    node: self.node.clone(),
                    link: self.link.clone(),
                    status: self.status.clone(),
                },
            ))
            .child(ChildSpec::worker(
                "log_consumer",
                ConsumerActor,
                ConsumerArgs {
                    settings: self.settings.clone(),
                    chat: self.chat.clone(),
                    link: self.link.clone(),
                    status: self.status.clone(),
                    waiters: self.waiters.clone(),
                },
            ));
        let nats = NatsSource::Link(self.link.clone());
        let settings = Arc::new(self.settings.clone());
        spec = spec
            .child(ChildSpec::worker(
                "membership",
                MembershipActor,
                MembershipArgs {
                    client: nats.clone(),
                    settings: settings.clone(),
                    facts: self.facts.clone(),
                    bound: self.bound.clone(),
                    wall_clock: self.chat.wall_clock().clone(),
                    members: self.members.clone(),
                },
            ))
            .child(ChildSpec::worker(
                "clock_sync",
                ClockSyncActor,
                ClockSyncStart {
                    nats,
                    settings,
                    wall_clock: self.chat.wall_clock().clone(),
                    members: self.members.clone(),
                    metrics: Some(self.metrics.clone()),
                },
            ));
        for child in more {
            spec = spec.child(child);
        }
        ChildSpec::supervisor("cluster_sup", spec)
    }
}
