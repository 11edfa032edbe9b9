//! The `nats` actor: owns the connection to the NATS cluster.
//!
//! It connects without waiting for NATS (async-nats retries the first
//! connection in the background, and reconnects by itself after a loss),
//! so start-up never blocks on NATS. The client is published in the
//! cluster's [`Link`] while the actor runs; the parts that use NATS take it
//! from there. Connection events are logged and kept in [`Status`].

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;

use super::status::Status;
use super::{ClusterError, ClusterSettings};

/// Longest pause between two reconnection attempts: a NATS that comes back
/// is found within it.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The current connection to NATS, while the `nats` actor runs.
#[derive(Debug)]
pub(crate) struct Link {
    client: watch::Sender<Option<async_nats::Client>>,
}

impl Link {
    pub(crate) fn new() -> Link {
        Link {
            client: watch::channel(None).0,
        }
    }

    /// The client, while there is one (it may be reconnecting).
    pub(crate) fn client(&self) -> Option<async_nats::Client> {
        self.client.borrow().clone()
    }

    /// Waits until there is a client.
    pub(crate) async fn wait_client(&self) -> async_nats::Client {
        let mut rx = self.client.subscribe();
        loop {
            if let Some(c) = rx.borrow_and_update().clone() {
                return c;
            }
            if rx.changed().await.is_err() {
                // The sender lives in the Link itself: never closed while
                // `self` is borrowed.
                std::future::pending::<()>().await;
            }
        }
    }

    fn set(&self, c: Option<async_nats::Client>) {
        self.client.send_replace(c);
    }
}

/// Where a part of the cluster gets its NATS client when it (re)starts: a
/// client of its own (a part run without a node, as the tests do), or the
/// `nats` actor's current one, taken at each start (under `cluster_sup`,
/// rest_for_one: a restarted `nats` restarts its dependants, which then
/// take the new client).
#[derive(Debug, Clone)]
pub(crate) enum NatsSource {
    /// This client.
    Client(async_nats::Client),
    /// The `nats` actor's client.
    Link(Arc<Link>),
}

impl NatsSource {
    /// The client (waits for the `nats` actor to publish one).
    pub(crate) async fn client(&self) -> async_nats::Client {
        match self {
            NatsSource::Client(c) => c.clone(),
            NatsSource::Link(link) => link.wait_client().await,
        }
    }
}

/// What the `nats` actor needs, cloned at each (re)start.
#[derive(Debug, Clone)]
pub(crate) struct NatsArgs {
    pub(crate) settings: ClusterSettings,
    pub(crate) node: String,
    pub(crate) link: Arc<Link>,
    pub(crate) status: Arc<Status>,
}

/// The `nats` actor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NatsActor;

/// Its state: the client (closed when the actor stops) and its link.
#[derive(Debug)]
pub(crate) struct NatsState {
    client: async_nats::Client,
    args: NatsArgs,
}

/// The connect options from the settings.
fn options(args: &NatsArgs) -> Result<async_nats::ConnectOptions, ClusterError> {
    let s = &args.settings;
    let mut o = match (&s.user, &s.password, &s.token) {
        (Some(u), Some(p), _) => {
            async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
        }
        (_, _, Some(t)) => async_nats::ConnectOptions::with_token(t.clone()),
        _ => async_nats::ConnectOptions::new(),
    };
    if let Some(ca) = &s.tls_ca {
        if !ca.is_file() {
            return Err(ClusterError::Settings {
                key: "tls_ca",
                message: format!("{} is not a readable file", ca.display()),
            });
        }
        o = o.add_root_certificates(ca.clone()).require_tls(true);
    }
    let status = args.status.clone();
    Ok(o.name(format!("corral:{}", args.node))
        .connection_timeout(Duration::from_millis(s.connect_timeout_ms))
        .retry_on_initial_connect()
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(100u64.saturating_mul(attempts as u64)).min(MAX_RECONNECT_DELAY)
        })
        .event_callback(move |event| {
            let status = status.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("cluster: connected to NATS");
                        status.connected();
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!("cluster: disconnected from NATS; reconnecting");
                        status.connected();
                    }
                    other => tracing::debug!(event = %other, "cluster: NATS event"),
                }
            }
        }))
}

impl Actor for NatsActor {
    type Msg = ();
    type State = NatsState;
    type Arguments = NatsArgs;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        args: NatsArgs,
    ) -> Result<NatsState, ActorProcessingErr> {
        let addrs = args
            .settings
            .servers
            .iter()
            .map(|u| {
                u.parse::<async_nats::ServerAddr>()
                    .map_err(|e| ClusterError::Settings {
                        key: "servers",
                        message: format!("{u:?}: {e}"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Returns at once: the first connection is made in the background.
        let client = options(&args)?
            .connect(addrs)
            .await
            .map_err(|e| ClusterError::Unreachable(e.to_string()))?;
        args.link.set(Some(client.clone()));
        args.status.connected();
        tracing::info!(servers = ?args.settings.servers, "cluster: connecting to NATS");
        Ok(NatsState { client, args })
    }

    async fn post_stop(
        &self,
        _: ActorRef<()>,
        state: &mut NatsState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.link.set(None);
        state.args.status.connected();
        let _ = tokio::time::timeout(Duration::from_secs(1), state.client.flush()).await;
        Ok(())
    }
}
