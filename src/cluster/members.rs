//! [`Members`]: the live view of the cluster's membership that the
//! `membership` actor keeps (from its watch on the members bucket) and
//! everyone else reads cheaply: the members, this node's rank and role, the
//! primary. It logs every membership change and every failover.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::registration::Registration;
use crate::metrics::Metrics;

/// A member's role: the live member with the lowest rank is the primary,
/// every other one a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The live member with the lowest rank: it runs clock synchronisation.
    Primary,
    /// Any other live member.
    Backup,
}

impl Role {
    /// `"primary"` or `"backup"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
        }
    }
}

/// One live member, as this node last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The node's name.
    pub name: String,
    /// Its rank (registration order; lower is older).
    pub rank: u64,
    /// Its role.
    pub role: Role,
    /// Its RPC address, if it has one.
    pub rpc: Option<String>,
    /// Its HTTP address, if it has one.
    pub http: Option<String>,
    /// When it started, in ms since the Unix epoch (its clock).
    pub started_ms: u64,
    /// Its wall clock at its last heartbeat, ms since the Unix epoch.
    pub last_heartbeat_ms: u64,
    /// The correction clock synchronisation applies to its clock, in ms.
    pub offset_ms: i64,
}

/// A registration and when this node last saw it renewed (its own
/// monotonic clock: no other node's clock decides who is alive here).
#[derive(Debug, Clone)]
struct Seen {
    reg: Registration,
    /// Its revision in the bucket (a renewal has a higher one).
    revision: u64,
    at: Instant,
}

#[derive(Debug, Default)]
struct View {
    members: BTreeMap<String, Seen>,
    primary: Option<String>,
    failovers: u64,
    metrics: Option<Arc<Metrics>>,
    /// How long a registration lives without renewal (set by the
    /// `membership` actor): reads leave out what is older.
    expiry: Option<Duration>,
}

/// The live membership as this node sees it. Cheap to clone (the clones
/// share one view); reads take a short read lock.
#[derive(Debug, Clone)]
pub struct Members {
    me: Arc<str>,
    view: Arc<RwLock<View>>,
}

/// Why a member left the view.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Left {
    /// No heartbeat seen for longer than the expiry time.
    Expired,
    /// Its entry was deleted or purged.
    Deleted,
}

impl Members {
    /// An empty view kept by the node called `me`.
    pub fn new(me: &str) -> Self {
        Members {
            me: Arc::from(me),
            view: Arc::default(),
        }
    }

    /// The same view, with its gauges (`corral_cluster_rank`, `_role`,
    /// `_members`) kept in `metrics`.
    pub fn with_metrics(self, metrics: Option<Arc<Metrics>>) -> Self {
        if let Ok(mut v) = self.view.write() {
            v.metrics = metrics;
            self.update_metrics(&v);
        }
        self
    }

    /// This node's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The live members, by rank (lowest, the primary, first).
    pub fn members(&self) -> Vec<Member> {
        self.refresh();
        let Ok(v) = self.view.read() else {
            return Vec::new();
        };
        let mut out: Vec<Member> = v
            .members
            .values()
            .map(|s| Member {
                name: s.reg.name.clone(),
                rank: s.reg.rank,
                role: if v.primary.as_deref() == Some(s.reg.name.as_str()) {
                    Role::Primary
                } else {
                    Role::Backup
                },
                rpc: s.reg.rpc.clone(),
                http: s.reg.http.clone(),
                started_ms: s.reg.started_ms,
                last_heartbeat_ms: s.reg.heartbeat_ms,
                offset_ms: s.reg.offset_ms,
            })
            .collect();
        out.sort_by_key(|m| m.rank);
        out
    }

    /// A live member by name.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.members().into_iter().find(|m| m.name == name)
    }

    /// How many members are live.
    pub fn len(&self) -> usize {
        self.refresh();
        self.view.read().map(|v| v.members.len()).unwrap_or(0)
    }

    /// Whether no member is live (this node not yet registered, or cut off
    /// from NATS for longer than the expiry time).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The primary's name: the live member with the lowest rank.
    pub fn primary(&self) -> Option<String> {
        self.refresh();
        self.view.read().ok().and_then(|v| v.primary.clone())
    }

    /// This node's rank, while it is a live member.
    pub fn my_rank(&self) -> Option<u64> {
        self.refresh();
        let v = self.view.read().ok()?;
        v.members.get(&*self.me).map(|s| s.reg.rank)
    }

    /// This node's role, while it is a live member.
    pub fn role(&self) -> Option<Role> {
        self.refresh();
        let v = self.view.read().ok()?;
        v.members.get(&*self.me)?;
        Some(if v.primary.as_deref() == Some(&*self.me) {
            Role::Primary
        } else {
            Role::Backup
        })
    }

    /// Whether this node is the primary.
    pub fn is_primary(&self) -> bool {
        self.role() == Some(Role::Primary)
    }

    /// How many times the primary changed to another node (a failover)
    /// since this view was made (the first primary seen is not one).
    pub fn failovers(&self) -> u64 {
        self.view.read().map(|v| v.failovers).unwrap_or(0)
    }

    /// Takes in a registration seen now at `revision` (a put in the
    /// bucket, or this node's own heartbeat). A revision not newer than the
    /// one known is no renewal and changes nothing.
    pub(crate) fn seen(&self, reg: Registration, revision: u64) {
        let Ok(mut v) = self.view.write() else {
            return;
        };
        if v.members
            .get(&reg.name)
            .is_some_and(|s| s.revision >= revision)
        {
            return;
        }
        match v.members.get(&reg.name) {
            None => tracing::info!(
                node = %self.me,
                member = %reg.name,
                rank = reg.rank,
                rpc = reg.rpc.as_deref().unwrap_or("-"),
                http = reg.http.as_deref().unwrap_or("-"),
                "cluster member joined"
            ),
            Some(old) if old.reg.rank != reg.rank || old.reg.instance != reg.instance => {
                tracing::info!(
                    node = %self.me,
                    member = %reg.name,
                    rank = reg.rank,
                    old_rank = old.reg.rank,
                    "cluster member registered again"
                )
            }
            Some(_) => {}
        }
        let name = reg.name.clone();
        v.members.insert(
            name,
            Seen {
                reg,
                revision,
                at: Instant::now(),
            },
        );
        self.settle(&mut v);
    }

    /// Removes `name` from the view.
    pub(crate) fn left(&self, name: &str, why: Left) {
        let Ok(mut v) = self.view.write() else {
            return;
        };
        if let Some(s) = v.members.remove(name) {
            self.log_left(&s.reg, why);
            self.settle(&mut v);
        }
    }

    /// The other members (name and revision) not seen renewed for `age`:
    /// the `membership` actor reads their entries itself, in case its watch
    /// lags.
    pub(crate) fn unrenewed(&self, age: Duration) -> Vec<(String, u64)> {
        let Ok(v) = self.view.read() else {
            return Vec::new();
        };
        let now = Instant::now();
        v.members
            .iter()
            .filter(|(k, s)| **k != *self.me && now.saturating_duration_since(s.at) > age)
            .map(|(k, s)| (k.clone(), s.revision))
            .collect()
    }

    /// Sets how long a registration lives without renewal: from now on,
    /// reads leave out (and log as left) members not renewed for so long,
    /// even when no actor keeps the view any more.
    pub(crate) fn set_expiry(&self, ttl: Duration) {
        if let Ok(mut v) = self.view.write() {
            v.expiry = Some(ttl);
        }
    }

    /// Expires stale members before a read, when an expiry is set.
    fn refresh(&self) {
        let stale = self
            .view
            .read()
            .is_ok_and(|v| !self.stale(&v, Instant::now()).is_empty());
        if stale {
            self.expire();
        }
    }

    /// The members to expire now. This node's own registration lives as
    /// long as its heartbeats succeed; when it expires, this node is cut
    /// off and knows nothing of the others either: all of them. Another
    /// member expires when it was not renewed for the expiry time before
    /// this node's last successful heartbeat: time during which this node
    /// could not reach the bucket itself (a JetStream leader election, NATS
    /// away) proves nothing against the others.
    fn stale(&self, v: &View, now: Instant) -> Vec<String> {
        let Some(ttl) = v.expiry else {
            return Vec::new();
        };
        let mine = v.members.get(&*self.me).map(|s| s.at);
        if mine.is_some_and(|t| now.saturating_duration_since(t) > ttl) {
            return v.members.keys().cloned().collect();
        }
        let reference = mine.unwrap_or(now);
        v.members
            .iter()
            .filter(|(_, s)| reference.saturating_duration_since(s.at) > ttl)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Removes the members not renewed in time (see `stale`).
    pub(crate) fn expire(&self) {
        let Ok(mut v) = self.view.write() else {
            return;
        };
        let stale = self.stale(&v, Instant::now());
        if stale.is_empty() {
            return;
        }
        if stale.iter().any(|k| **k == *self.me) {
            tracing::warn!(
                node = %self.me,
                "cut off from the cluster: no heartbeat of its own got through within \
                 the expiry time; it knows no member until its heartbeats get through"
            );
        }
        for name in stale {
            if let Some(s) = v.members.remove(&name) {
                self.log_left(&s.reg, Left::Expired);
            }
        }
        self.settle(&mut v);
    }

    fn log_left(&self, reg: &Registration, why: Left) {
        let why = match why {
            Left::Expired => "no heartbeat within the expiry time",
            Left::Deleted => "its registration was deleted",
        };
        tracing::warn!(
            node = %self.me,
            member = %reg.name,
            rank = reg.rank,
            why,
            "cluster member left"
        );
    }

    /// Recomputes the primary after a change; logs a failover; updates the
    /// gauges.
    fn settle(&self, v: &mut View) {
        let primary = v
            .members
            .values()
            .min_by_key(|s| s.reg.rank)
            .map(|s| s.reg.name.clone());
        if primary != v.primary {
            match (&v.primary, &primary) {
                (Some(old), Some(new)) => {
                    v.failovers += 1;
                    tracing::warn!(
                        node = %self.me,
                        from = %old,
                        to = %new,
                        rank = v.members.get(new).map_or(0, |s| s.reg.rank),
                        "cluster failover: primary changed"
                    );
                }
                (None, Some(new)) => tracing::info!(
                    node = %self.me,
                    to = %new,
                    rank = v.members.get(new).map_or(0, |s| s.reg.rank),
                    "cluster primary"
                ),
                (Some(old), None) => tracing::warn!(
                    node = %self.me,
                    from = %old,
                    "cluster has no live member (no primary)"
                ),
                (None, None) => {}
            }
            v.primary = primary;
        }
        self.update_metrics(v);
    }

    fn update_metrics(&self, v: &View) {
        let Some(m) = &v.metrics else {
            return;
        };
        let mine = v.members.get(&*self.me);
        m.cluster_rank
            .set(mine.map_or(0, |s| i64::try_from(s.reg.rank).unwrap_or(i64::MAX)));
        let primary = mine.is_some() && v.primary.as_deref() == Some(&*self.me);
        m.cluster_role
            .with_label_values(&["primary"])
            .set(i64::from(primary));
        m.cluster_role
            .with_label_values(&["backup"])
            .set(i64::from(mine.is_some() && !primary));
        m.cluster_members
            .set(i64::try_from(v.members.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeFacts;

    fn reg(name: &str, rank: u64) -> Registration {
        Registration::new(&NodeFacts::new(name), rank, 1, 0)
    }

    #[test]
    fn the_lowest_live_rank_is_primary() {
        let m = Members::new("b").with_metrics(Some(Metrics::new()));
        assert_eq!(m.role(), None);
        m.seen(reg("b", 2), 1);
        assert!(m.is_primary());
        m.seen(reg("a", 1), 2);
        m.seen(reg("a", 7), 2);
        assert_eq!(
            m.member("a").map(|x| x.rank),
            Some(1),
            "no renewal: unchanged"
        );
        assert_eq!(m.primary().as_deref(), Some("a"));
        assert_eq!(m.role(), Some(Role::Backup));
        assert_eq!(m.failovers(), 1);
        m.seen(reg("c", 3), 3);
        assert!(m.unrenewed(Duration::ZERO).iter().all(|(k, _)| k != "b"));
        assert_eq!(
            m.members().iter().map(|x| x.rank).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        m.left("a", Left::Deleted);
        assert_eq!(m.primary().as_deref(), Some("b"));
        assert_eq!(m.my_rank(), Some(2));
        assert_eq!(m.failovers(), 2);
        m.set_expiry(Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(20));
        assert!(m.is_empty(), "a read leaves out what expired");
        assert_eq!(m.primary(), None);
    }
}
