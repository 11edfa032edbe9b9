//! A cluster member without a corral node: its own NATS client, wall
//! clock and live view, and a supervisor running the `membership` and
//! `clock_sync` children (as `cluster_sup` runs them).

use std::sync::Arc;
use std::time::Duration;

use corral::clock::WallClock;
use corral::cluster::{clock_sync_spec, membership_spec, ClusterSettings, Members, NodeFacts};
use corral::metrics::Metrics;
use corral::supervisor::{Strategy, Supervisor, SupervisorFlags, SupervisorSpec};

/// One running member.
pub(crate) struct Member {
    pub(crate) facts: NodeFacts,
    pub(crate) members: Members,
    pub(crate) wall: WallClock,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) client: async_nats::Client,
    pub(crate) sup: Supervisor,
}

/// Settings for tests: fast heartbeats (200 ms, expiry after 3 missed)
/// and clock rounds (300 ms), three copies, skew `skew_ms`.
pub(crate) fn settings(urls: Vec<String>, skew_ms: i64) -> ClusterSettings {
    ClusterSettings {
        enabled: true,
        servers: urls,
        heartbeat_interval_ms: 200,
        heartbeat_misses: 3,
        clock_sync_interval_ms: 300,
        clock_skew_ms: skew_ms,
        ..ClusterSettings::default()
    }
}

/// Connects to `url` and starts member `name` (a new process: a new
/// instance); the supervisor's start fails as the children's do.
pub(crate) async fn start(
    url: &str,
    settings: &ClusterSettings,
    name: &str,
) -> Result<Member, String> {
    let client = async_nats::connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let facts = NodeFacts::new(name)
        .rpc(format!("127.0.0.1:7{name}"))
        .http(format!("127.0.0.1:8{name}"));
    let metrics = Metrics::new();
    let members = Members::new(name).with_metrics(Some(metrics.clone()));
    let wall = WallClock::new();
    let sup = Supervisor::start(
        SupervisorSpec::new(format!("cluster_{name}"))
            .flags(SupervisorFlags::new(Strategy::RestForOne).intensity(5, Duration::from_secs(10)))
            .child(membership_spec(
                client.clone(),
                settings,
                facts.clone(),
                wall.clone(),
                members.clone(),
            ))
            .child(clock_sync_spec(
                client.clone(),
                settings,
                wall.clone(),
                members.clone(),
                Some(metrics.clone()),
            )),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Member {
        facts,
        members,
        wall,
        metrics,
        client,
        sup,
    })
}
