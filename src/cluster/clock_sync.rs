//! The `clock_sync` actor: Berkeley clock synchronisation among the
//! cluster's nodes, run by the primary every `clock_sync_interval_ms`.
//!
//! Every node answers on its clock subject
//! (`corral.cluster.<members_bucket>.clock.<node>`), JSON request-reply:
//!
//! ```text
//! {"op": "read"}                                  -> {"node": "n2", "now_ms": 1733...}
//! {"op": "adjust", "from": "n1", "delta_ms": -40} -> {"node": "n2", "offset_ms": -40}
//! anything else                                   -> {"error": "..."} (and a log line)
//! ```
//!
//! The primary (as [`Members`] says) reads every live member's clock, each
//! reading compensated by half its round trip; readings whose round trip is
//! above [`MAX_RTT_MS`] are left out, its own clock is counted, and each
//! node is sent its correction to the average (see `berkeley.rs`). A node
//! takes an adjustment only from the node it sees as the primary, and never
//! one that would put its clock more than a day off. The correction goes
//! into the node's [`WallClock`] (the timestamps it stamps), never into the
//! OS clock; it is the `offset_ms` of its registration and
//! `corral_cluster_clock_offset_seconds`. Corrections add up: each round
//! measures again and sends what is left.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};

use super::berkeley::{self, Reading, MAX_CORRECTION_MS};
use super::connection::NatsSource;
use super::members::Members;
use super::subjects::Subjects;
use super::{ClusterError, ClusterSettings};
use crate::clock::WallClock;
use crate::metrics::Metrics;
use crate::supervisor::ChildSpec;
use crate::util::AbortOnDrop;

/// Longest round trip of a clock reading that a round takes, in ms.
pub(crate) const MAX_RTT_MS: i64 = 500;

/// How long the primary waits for a node's answer, at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest clock request taken, in bytes.
const MAX_REQUEST_BYTES: usize = 1024;

/// The `clock_sync` actor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClockSyncActor;

/// What the `clock_sync` actor works with (its client taken).
#[derive(Debug, Clone)]
pub(crate) struct ClockSyncArgs {
    pub(crate) client: async_nats::Client,
    pub(crate) settings: Arc<ClusterSettings>,
    pub(crate) wall_clock: WallClock,
    pub(crate) members: Members,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

/// What the `clock_sync` actor starts with: [`ClockSyncArgs`] with the
/// client still to be taken from its source.
#[derive(Debug, Clone)]
pub(crate) struct ClockSyncStart {
    pub(crate) nats: NatsSource,
    pub(crate) settings: Arc<ClusterSettings>,
    pub(crate) wall_clock: WallClock,
    pub(crate) members: Members,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

/// The `clock_sync` actor's messages.
#[derive(Debug)]
pub(crate) enum ClockSyncMsg {
    /// Time for a round (run only by the primary).
    Round,
}

/// The `clock_sync` actor's state.
#[derive(Debug)]
pub(crate) struct ClockSyncState {
    args: ClockSyncArgs,
    subjects: Subjects,
    _responder: AbortOnDrop,
}

/// The `clock_sync` child of `cluster_sup`, after `membership`: answers
/// this node's clock subject, and runs a Berkeley round every
/// `clock_sync_interval_ms` while `members` says this node is the primary.
/// It sets `wall_clock`'s skew to `clock_skew_ms` (a test setting) and
/// applies the corrections to it; `metrics` gets the offset gauge.
pub fn clock_sync_spec(
    client: async_nats::Client,
    settings: &ClusterSettings,
    wall_clock: WallClock,
    members: Members,
    metrics: Option<Arc<Metrics>>,
) -> ChildSpec {
    ChildSpec::worker(
        "clock_sync",
        ClockSyncActor,
        ClockSyncStart {
            nats: NatsSource::Client(client),
            settings: Arc::new(settings.clone()),
            wall_clock,
            members,
            metrics,
        },
    )
}

/// Sets the offset gauge from the clock's correction.
fn show_offset(wall: &WallClock, metrics: Option<&Arc<Metrics>>) {
    if let Some(m) = metrics {
        m.cluster_clock_offset
            .set(wall.correction_ms() as f64 / 1000.0);
    }
}

/// The answer to one request on this node's clock subject.
fn answer(args: &ClockSyncArgs, payload: &[u8]) -> Result<Value, String> {
    if payload.len() > MAX_REQUEST_BYTES {
        return Err(format!(
            "{} bytes, more than a clock request's {MAX_REQUEST_BYTES}",
            payload.len()
        ));
    }
    let req: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let me = args.members.me();
    match req.get("op").and_then(Value::as_str) {
        Some("read") => Ok(json!({"node": me, "now_ms": args.wall_clock.now_ms()})),
        Some("adjust") => {
            let from = req
                .get("from")
                .and_then(Value::as_str)
                .ok_or("adjust without a string `from`")?;
            let delta = req
                .get("delta_ms")
                .and_then(Value::as_i64)
                .ok_or("adjust without an integer `delta_ms`")?;
            let primary = args.members.primary();
            if primary.as_deref() != Some(from) {
                return Err(format!(
                    "adjust from {from:?}, which is not the primary ({})",
                    primary.as_deref().unwrap_or("none")
                ));
            }
            let after = args.wall_clock.correction_ms().saturating_add(delta);
            if after.abs() > MAX_CORRECTION_MS {
                return Err(format!(
                    "adjust by {delta} ms would put the clock {after} ms off (more than a day)"
                ));
            }
            let offset = args.wall_clock.adjust_ms(delta);
            show_offset(&args.wall_clock, args.metrics.as_ref());
            tracing::debug!(node = %me, from, delta_ms = delta, offset_ms = offset, "clock adjusted");
            Ok(json!({"node": me, "offset_ms": offset}))
        }
        _ => Err("no known `op` (read or adjust)".into()),
    }
}

/// Answers this node's clock subject until the subscription ends (the
/// client closed), then stops the actor (its supervisor starts it again).
async fn respond(
    args: ClockSyncArgs,
    mut sub: async_nats::Subscriber,
    myself: ActorRef<ClockSyncMsg>,
) {
    while let Some(msg) = sub.next().await {
        let reply = match answer(&args, &msg.payload) {
            Ok(v) => v,
            Err(why) => {
                tracing::warn!(
                    node = %args.members.me(),
                    subject = %msg.subject,
                    why = %why,
                    "ignoring a bad clock request"
                );
                json!({ "error": why })
            }
        };
        if let Some(to) = msg.reply {
            let body = bytes::Bytes::from(reply.to_string());
            if let Err(e) = args.client.publish(to, body).await {
                tracing::warn!(node = %args.members.me(), error = %e, "clock reply not sent");
            }
        }
    }
    myself.stop(Some("the clock subscription ended".into()));
}

/// One JSON request-reply with the round's timeout.
async fn ask(client: &async_nats::Client, subject: String, body: Value) -> Result<Value, String> {
    let reply = tokio::time::timeout(
        REQUEST_TIMEOUT,
        client.request(subject, bytes::Bytes::from(body.to_string())),
    )
    .await
    .map_err(|_| "no answer in time".to_string())?
    .map_err(|e| e.to_string())?;
    let v: Value =
        serde_json::from_slice(&reply.payload).map_err(|e| format!("answer is not JSON: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("refused: {e}"));
    }
    Ok(v)
}

/// Reads `node`'s clock: a [`Reading`], or why there is none.
async fn read(state: &ClockSyncState, node: String) -> Result<Reading, (String, String)> {
    let wall = &state.args.wall_clock;
    let sent = wall.now_ms() as i64;
    let v = ask(
        &state.args.client,
        state.subjects.clock(&node),
        json!({"op": "read"}),
    )
    .await
    .map_err(|e| (node.clone(), e))?;
    let received = wall.now_ms() as i64;
    if v.get("node").and_then(Value::as_str) != Some(node.as_str()) {
        return Err((node, format!("answer from another node: {v}")));
    }
    let remote = v.get("now_ms").and_then(Value::as_i64).ok_or_else(|| {
        (
            node.clone(),
            format!("answer without an integer now_ms: {v}"),
        )
    })?;
    Ok(Reading {
        node,
        sent_ms: sent,
        received_ms: received,
        remote_ms: remote,
    })
}

impl ClockSyncState {
    /// One Berkeley round, as the primary.
    async fn round(&self) {
        let me = self.args.members.me().to_string();
        let others: Vec<String> = self
            .args
            .members
            .members()
            .into_iter()
            .map(|m| m.name)
            .filter(|n| *n != me)
            .collect();
        let results = futures::future::join_all(others.into_iter().map(|n| read(self, n))).await;
        let mut readings = Vec::new();
        for r in results {
            match r {
                Ok(reading) => readings.push(reading),
                Err((node, why)) => {
                    tracing::warn!(node = %me, member = %node, why = %why, "clock reading left out")
                }
            }
        }
        let round = berkeley::round(&readings, MAX_RTT_MS);
        for (node, why) in &round.ignored {
            tracing::warn!(node = %me, member = %node, why = %why, "clock reading left out");
        }
        let me = &me;
        let sends = round.corrections.iter().map(|(node, delta)| {
            let body = json!({"op": "adjust", "from": me, "delta_ms": delta});
            let subject = self.subjects.clock(node);
            async move {
                if let Err(why) = ask(&self.args.client, subject, body).await {
                    tracing::warn!(node = %me, member = %node, why = %why, "clock correction not taken");
                }
            }
        });
        futures::future::join_all(sends).await;
        let offset = self.args.wall_clock.adjust_ms(round.own_ms);
        show_offset(&self.args.wall_clock, self.args.metrics.as_ref());
        tracing::debug!(
            node = %me,
            readings = round.corrections.len(),
            own_delta_ms = round.own_ms,
            offset_ms = offset,
            "clock sync round"
        );
    }
}

impl Actor for ClockSyncActor {
    type Msg = ClockSyncMsg;
    type State = ClockSyncState;
    type Arguments = ClockSyncStart;

    async fn pre_start(
        &self,
        myself: ActorRef<ClockSyncMsg>,
        start: ClockSyncStart,
    ) -> Result<ClockSyncState, ActorProcessingErr> {
        let args = ClockSyncArgs {
            client: start.nats.client().await,
            settings: start.settings,
            wall_clock: start.wall_clock,
            members: start.members,
            metrics: start.metrics,
        };
        args.wall_clock.set_skew_ms(args.settings.clock_skew_ms);
        show_offset(&args.wall_clock, args.metrics.as_ref());
        let subjects = Subjects::new(&args.settings);
        let sub = args
            .client
            .subscribe(subjects.clock(args.members.me()))
            .await
            .map_err(|e| ClusterError::Unreachable(format!("clock subject: {e}")))?;
        let responder = tokio::spawn(respond(args.clone(), sub, myself.clone()));
        myself.send_after(interval(&args.settings), || ClockSyncMsg::Round);
        Ok(ClockSyncState {
            args,
            subjects,
            _responder: AbortOnDrop::new(responder),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ClockSyncMsg>,
        msg: ClockSyncMsg,
        state: &mut ClockSyncState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ClockSyncMsg::Round => {
                if state.args.members.is_primary() {
                    state.round().await;
                }
                myself.send_after(interval(&state.args.settings), || ClockSyncMsg::Round);
            }
        }
        Ok(())
    }
}

fn interval(settings: &ClusterSettings) -> Duration {
    Duration::from_millis(settings.clock_sync_interval_ms)
}
