//! The `servers` RPC service, and the seeds' reference-server names for
//! it: `rank`, `list` and `heartbeat`. They read this node's live view of
//! the membership ([`Members`]); nothing is asked of NATS.
//!
//! ```text
//! servers / list   {}              -> {"node": "n2", "primary": "n1", "servers": [
//!                                        {"name": "n1", "rank": 1, "role": "primary",
//!                                         "rpc": "10.0.0.1:7070", "http": "10.0.0.1:8080",
//!                                         "started_ms": ..., "last_heartbeat_ms": ...,
//!                                         "offset_ms": -3}, ...]}   (by rank)
//! rank             {}              -> {"node": "n2", "rank": 2, "role": "backup", "primary": "n1"}
//! heartbeat        {"node": "n1"?} -> {"node": "n1", "rank": 1, "role": "primary",
//!                                      "last_heartbeat_ms": ..., "offset_ms": -3,
//!                                      "interval_ms": 1000, "expiry_ms": 3000}
//! ```
//!
//! In the seeds, servers sent `heartbeat` to the reference server, which
//! answered `rank` and `list`. Here registration and heartbeats go through
//! the members bucket, never through RPC: `heartbeat` answers when a node
//! (this one by default) last renewed its registration, and how often it
//! must (NOT_FOUND when it is not a live member). `list` answers the same
//! as `servers`. `rank` answers UNAVAILABLE while this node is not a live
//! member (not registered yet, or cut off from NATS longer than the expiry
//! time).

use std::sync::Arc;

use serde_json::{json, Value};

use super::members::{Member, Members};
use super::ClusterSettings;
use crate::async_trait;
use crate::rpc::{CallContext, Registry, Request, Service, ServiceError};

/// The service names, as registered.
pub(crate) const SERVICES: [&str; 4] = ["servers", "list", "rank", "heartbeat"];

#[derive(Debug, Clone, Copy)]
enum Op {
    Servers,
    Rank,
    Heartbeat,
}

struct ServersService {
    members: Members,
    interval_ms: u64,
    expiry_ms: u64,
    op: Op,
}

/// Registers `servers`, `list`, `rank` and `heartbeat` into `registry`,
/// answering from `members` (the view the `membership` child keeps).
pub fn register_servers(registry: &mut Registry, members: &Members, settings: &ClusterSettings) {
    for (name, op) in SERVICES
        .iter()
        .zip([Op::Servers, Op::Servers, Op::Rank, Op::Heartbeat])
    {
        registry.register(
            *name,
            Arc::new(ServersService {
                members: members.clone(),
                interval_ms: settings.heartbeat_interval_ms,
                expiry_ms: settings.member_ttl_ms(),
                op,
            }),
        );
    }
}

fn entry(m: &Member) -> Value {
    json!({
        "name": m.name,
        "rank": m.rank,
        "role": m.role.as_str(),
        "rpc": m.rpc,
        "http": m.http,
        "started_ms": m.started_ms,
        "last_heartbeat_ms": m.last_heartbeat_ms,
        "offset_ms": m.offset_ms,
    })
}

#[async_trait]
impl Service for ServersService {
    async fn call(&self, req: Request, _: &CallContext) -> Result<Value, ServiceError> {
        let me = self.members.me();
        match self.op {
            Op::Servers => {
                let list: Vec<Value> = self.members.members().iter().map(entry).collect();
                Ok(json!({"node": me, "primary": self.members.primary(), "servers": list}))
            }
            Op::Rank => match (self.members.my_rank(), self.members.role()) {
                (Some(rank), Some(role)) => Ok(json!({
                    "node": me,
                    "rank": rank,
                    "role": role.as_str(),
                    "primary": self.members.primary(),
                })),
                _ => Err(ServiceError::unavailable(format!(
                    "{me} is not a live member of the cluster (not registered yet, or cut \
                     off from NATS)"
                ))),
            },
            Op::Heartbeat => {
                let node = match req.data.get("node") {
                    None | Some(Value::Null) => me,
                    Some(Value::String(s)) => s.as_str(),
                    Some(_) => return Err(ServiceError::bad_request("node must be a string")),
                };
                let m = self.members.member(node).ok_or_else(|| {
                    ServiceError::not_found(format!("{node:?} is not a live member"))
                })?;
                Ok(json!({
                    "node": m.name,
                    "rank": m.rank,
                    "role": m.role.as_str(),
                    "last_heartbeat_ms": m.last_heartbeat_ms,
                    "offset_ms": m.offset_ms,
                    "interval_ms": self.interval_ms,
                    "expiry_ms": self.expiry_ms,
                }))
            }
        }
    }
}
