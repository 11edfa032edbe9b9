//! The cluster's subtree, `cluster_sup`.

use std::time::Duration;

use super::connection::{NatsActor, NatsArgs};
use super::consumer::{ConsumerActor, ConsumerArgs};
use super::Cluster;
use crate::supervisor::{ChildSpec, Strategy, SupervisorFlags, SupervisorSpec};

impl Cluster {
    /// `cluster_sup` (rest_for_one): `nats`, then `log_consumer`, then
    /// `more` in order (membership and clock sync go here: they depend on
    /// the connection, so a restarted `nats` restarts them too). Losing
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
        // <- membership and clock_sync: added here, after log_consumer.
        for child in more {
            spec = spec.child(child);
        }
        ChildSpec::supervisor("cluster_sup", spec)
    }
}
