//! [`Cluster`]: the handle on a node's cluster (its settings, the shared
//! link to NATS, the log's status), built by the node when `[cluster]
//! enabled`.

use std::sync::{Arc, OnceLock};

use super::connection::Link;
use super::log::ClusterLog;
use super::status::Status;
use super::waiters::Waiters;
use super::{ClusterSettings, Members, NodeFacts};
use crate::chat::Chat;
use crate::metrics::Metrics;
use crate::rpc::Registry;

/// A node's cluster: builds `cluster_sup` ([`Cluster::supervisor_spec`])
/// and reports into `/health` ([`Cluster::health_check`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(super) settings: ClusterSettings,
    pub(super) node: String,
    pub(super) chat: Chat,
    pub(super) link: Arc<Link>,
    pub(super) status: Arc<Status>,
    pub(super) waiters: Arc<Waiters>,
    pub(super) metrics: Arc<Metrics>,
    /// The live view of the members, shared by membership, clock sync and
    /// the `servers` services.
    pub(super) members: Members,
    /// What this node registers (name, start, instance).
    pub(super) facts: NodeFacts,
    /// The same with the listeners' addresses, once they are bound.
    pub(super) bound: Arc<OnceLock<NodeFacts>>,
}

impl Cluster {
    /// The cluster of node `node` over `chat`: from now on the chat's
    /// writes go through the replicated log (they answer UNAVAILABLE until
    /// `cluster_sup` runs and NATS answers). Call it once per chat, before
    /// the listeners start.
    pub fn new(
        settings: &ClusterSettings,
        node: &str,
        chat: &Chat,
        metrics: Arc<Metrics>,
    ) -> Cluster {
        let link = Arc::new(Link::new());
        let status = Arc::new(Status::new(
            metrics.clone(),
            settings.stream.clone(),
            link.clone(),
            chat.store().applied_seq(),
        ));
        let cluster = Cluster {
            settings: settings.clone(),
            node: node.to_owned(),
            chat: chat.clone(),
            link,
            status,
            waiters: Arc::new(Waiters::default()),
            members: Members::new(node).with_metrics(Some(metrics.clone())),
            metrics,
            facts: NodeFacts::new(node),
            bound: Arc::new(OnceLock::new()),
        };
        let log = ClusterLog::new(
            cluster.settings.clone(),
            node,
            chat.clone(),
            cluster.link.clone(),
            cluster.status.clone(),
            cluster.waiters.clone(),
        );
        if !chat.set_log(Arc::new(log)) {
            tracing::warn!("cluster: the chat already writes through a log; left as it was");
        }
        cluster
    }

    /// The settings.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// The live view of the cluster's members: ranks, roles, the primary.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// Registers the `servers`, `list`, `rank` and `heartbeat` services
    /// (see [`register_servers`](super::register_servers)) into `registry`.
    pub fn register_into(&self, registry: &mut Registry) {
        super::register_servers(registry, &self.members, &self.settings);
    }

    /// Tells the cluster where this node's RPC and HTTP services listen
    /// (`host:port`), once the listeners are bound: the registrations carry
    /// them from then on. Only the first call counts.
    pub fn set_addresses(&self, rpc: Option<String>, http: Option<String>) {
        let mut facts = self.facts.clone();
        facts.rpc = rpc;
        facts.http = http;
        let _ = self.bound.set(facts);
    }

    /// The cluster's part of `/health`: degraded (and why) while NATS is
    /// unreachable, the log is gapped or unreadable, or the node catches up.
    pub fn health_check(&self) -> Arc<dyn crate::http::HealthCheck> {
        self.status.clone()
    }

    /// The current NATS client, while the `nats` actor runs (for the
    /// cluster's other parts: membership, clock sync).
    pub fn nats_client(&self) -> Option<async_nats::Client> {
        self.link.client()
    }

    /// Waits for a NATS client (the `nats` actor publishes one as soon as
    /// it starts; the client itself connects in the background).
    pub async fn wait_nats_client(&self) -> async_nats::Client {
        self.link.wait_client().await
    }
}
