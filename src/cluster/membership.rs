//! The `membership` actor: this node's registration in the members bucket
//! (a JetStream KV bucket), its heartbeats, and the live view of the
//! cluster ([`Members`]) kept from a watch on the bucket.
//!
//! - The bucket (`[cluster] members_bucket`) is created when missing, with
//!   `replicas` copies, history 1 and `max_age` = the expiry time
//!   (`heartbeat_interval_ms` × `heartbeat_misses`): an entry that is not
//!   renewed disappears.
//! - Rank = order of registration. A rank is the sequence number JetStream
//!   gives a message on the stream `<bucket>_ranks` (one message kept):
//!   JetStream hands out each sequence once, in order, whoever publishes,
//!   so two nodes never get the same rank and a later registration always
//!   gets a higher one; the stream outlives every member.
//! - A node keeps its rank while its registration lives and is its own
//!   (same [`NodeFacts::instance`]: the actor restarted by its supervisor,
//!   the node never left), so a hiccup does not move the primary. A node
//!   that comes back after its registration expired, or as a new process,
//!   gets a new, higher rank, as the seeds' reference server gave it: the
//!   others saw it leave, so it comes back as the newest member. A new
//!   process first waits out the registration of its predecessor of the
//!   same name (at most the expiry time); if that registration is renewed
//!   meanwhile, another live node has this name, and it refuses to start.
//! - Every heartbeat is a compare-and-set on the entry's revision, so a
//!   node notices when someone else wrote its entry.
//! - Liveness is judged by this node's own monotonic clock: a member not
//!   renewed for the expiry time leaves the view (the bucket's `max_age`
//!   removes the entry without telling watchers).
//!
//! A value in the bucket that is not a registration is ignored with a log
//! line; a NATS error in a heartbeat is logged and retried at the next
//! tick (the actor does not crash; its registration expires if NATS stays
//! away longer than the expiry time).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, kv, stream};
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::connection::NatsSource;
use super::members::{Left, Members};
use super::registration::Registration;
use super::subjects::Subjects;
use super::{ClusterError, ClusterSettings, NodeFacts};
use crate::clock::WallClock;
use crate::supervisor::ChildSpec;
use crate::util::AbortOnDrop;

/// The header of a KV entry's operation (`DEL`, `PURGE`; none for a put).
const KV_OPERATION: &str = "KV-Operation";

/// The `membership` actor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MembershipActor;

/// What the `membership` actor starts with.
#[derive(Debug, Clone)]
pub(crate) struct MembershipArgs {
    pub(crate) client: NatsSource,
    pub(crate) settings: Arc<ClusterSettings>,
    pub(crate) facts: NodeFacts,
    /// The same facts with the addresses the listeners got, once they are
    /// bound (a port 0 is known only then); registrations use them from
    /// then on.
    pub(crate) bound: Arc<OnceLock<NodeFacts>>,
    pub(crate) wall_clock: WallClock,
    pub(crate) members: Members,
}

/// The `membership` actor's messages.
#[derive(Debug)]
pub(crate) enum MembershipMsg {
    /// Time to renew the registration and expire silent members.
    Tick,
}

/// The `membership` actor's state.
#[derive(Debug)]
pub(crate) struct MembershipState {
    args: MembershipArgs,
    kv: kv::Store,
    js: jetstream::Context,
    rank: u64,
    revision: u64,
    watch: AbortOnDrop,
    /// When the watch last delivered an entry.
    watch_seen: Arc<Mutex<Instant>>,
}

/// The `membership` child of `cluster_sup`: registers this node (`facts`)
/// in the members bucket, renews it every `heartbeat_interval_ms`, and keeps
/// `members` (share it with [`clock_sync_spec`](super::clock_sync_spec) and
/// [`register_servers`](super::register_servers)) up to date. `wall_clock`
/// stamps the heartbeats and gives the clock offset they carry (the chat's,
/// [`Chat::wall_clock`](crate::chat::Chat::wall_clock)).
pub fn membership_spec(
    client: async_nats::Client,
    settings: &ClusterSettings,
    facts: NodeFacts,
    wall_clock: WallClock,
    members: Members,
) -> ChildSpec {
    ChildSpec::worker(
        "membership",
        MembershipActor,
        MembershipArgs {
            client: NatsSource::Client(client),
            settings: Arc::new(settings.clone()),
            bound: Arc::new(OnceLock::from(facts.clone())),
            facts,
            wall_clock,
            members,
        },
    )
}

/// Opens the members bucket, creating it when missing. A bucket that
/// exists with other settings (another node's heartbeat settings) is used
/// as it is, with a warning.
async fn open_bucket(
    js: &jetstream::Context,
    settings: &ClusterSettings,
) -> Result<kv::Store, ClusterError> {
    let config = kv::Config {
        bucket: settings.members_bucket.clone(),
        description: "corral cluster members: registrations and heartbeats".into(),
        history: 1,
        max_age: Duration::from_millis(settings.member_ttl_ms()),
        num_replicas: settings.replicas,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(kv) => Ok(kv),
        Err(create) => match js.get_key_value(&settings.members_bucket).await {
            Ok(kv) => {
                tracing::warn!(
                    bucket = %settings.members_bucket,
                    error = %create,
                    "the members bucket exists with other settings; using it as it is"
                );
                Ok(kv)
            }
            Err(get) => Err(ClusterError::JetStream(format!(
                "members bucket {:?}: cannot create it ({create}) nor open it ({get})",
                settings.members_bucket
            ))),
        },
    }
}

/// Opens (or creates) the stream whose sequence hands out ranks.
async fn open_ranks(
    js: &jetstream::Context,
    settings: &ClusterSettings,
    subjects: &Subjects,
) -> Result<(), ClusterError> {
    js.get_or_create_stream(stream::Config {
        name: subjects.ranks_stream(),
        description: Some("corral cluster ranks: the sequence is the rank".into()),
        subjects: vec![subjects.ranks()],
        max_messages: 1,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| {
        ClusterError::JetStream(format!("ranks stream {:?}: {e}", subjects.ranks_stream()))
    })
}

/// A new rank: the sequence of a message on the ranks stream.
async fn new_rank(
    js: &jetstream::Context,
    subjects: &Subjects,
    facts: &NodeFacts,
) -> Result<u64, ClusterError> {
    let payload = bytes::Bytes::from(format!("{} {}", facts.name, facts.instance));
    let ack = js
        .publish(subjects.ranks(), payload)
        .await
        .map_err(|e| ClusterError::JetStream(format!("rank request: {e}")))?
        .await
        .map_err(|e| ClusterError::JetStream(format!("rank request: {e}")))?;
    Ok(ack.sequence)
}

/// What the bucket holds under this node's name.
enum Found {
    /// Nothing (or a delete marker at this revision; 0 when none).
    Nothing(u64),
    /// A registration, at this revision.
    Registered(Registration, u64),
    /// A value that is not a registration, at this revision.
    Garbage(u64),
}

/// Reads `key`'s last entry from the bucket's stream leader (not a direct
/// get: a direct get that finds no responder, during a leader election,
/// looks like a missing entry, and a live member must not be taken for an
/// expired one).
async fn find(kv: &kv::Store, key: &str) -> Result<Found, ClusterError> {
    let subject = format!("{}{key}", kv.prefix);
    let raw = match kv.stream.get_last_raw_message_by_subject(&subject).await {
        Ok(raw) => raw,
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
            return Ok(Found::Nothing(0))
        }
        Err(e) => return Err(ClusterError::JetStream(format!("reading {key:?}: {e}"))),
    };
    let revision = raw.sequence;
    let msg = async_nats::Message::try_from(raw)
        .map_err(|e| ClusterError::JetStream(format!("reading {key:?}: {e}")))?;
    let op = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(KV_OPERATION))
        .map(|v| v.as_str().to_string());
    if matches!(op.as_deref(), Some("DEL") | Some("PURGE")) {
        return Ok(Found::Nothing(revision));
    }
    Ok(match Registration::parse(key, &msg.payload) {
        Ok(r) => Found::Registered(r, revision),
        Err(why) => {
            tracing::warn!(
                key,
                revision,
                why = %why,
                "ignoring a value in the members bucket that is not a registration"
            );
            Found::Garbage(revision)
        }
    })
}

impl MembershipState {
    fn registration(&self) -> Registration {
        let a = &self.args;
        Registration::new(
            a.bound.get().unwrap_or(&a.facts),
            self.rank,
            a.wall_clock.now_ms(),
            a.wall_clock.correction_ms(),
        )
    }

    /// Writes this node's registration over `revision` (0: none there).
    async fn write(&mut self, revision: u64) -> Result<(), ClusterError> {
        let reg = self.registration();
        let rev = self
            .kv
            .update(&self.args.facts.name, reg.to_bytes(), revision)
            .await
            .map_err(|e| ClusterError::JetStream(format!("registration: {e}")))?;
        self.revision = rev;
        self.args.members.seen(reg, rev);
        Ok(())
    }

    /// Takes a new rank and writes the registration over `revision`.
    async fn register_new(&mut self, revision: u64) -> Result<(), ClusterError> {
        let subjects = Subjects::new(&self.args.settings);
        self.rank = new_rank(&self.js, &subjects, &self.args.facts).await?;
        self.write(revision).await?;
        tracing::info!(
            node = %self.args.facts.name,
            rank = self.rank,
            "registered in the cluster"
        );
        Ok(())
    }

    /// The first registration (see the module docs for the rank rules).
    async fn register(&mut self) -> Result<(), ClusterError> {
        let name = self.args.facts.name.clone();
        match find(&self.kv, &name).await? {
            Found::Nothing(rev) | Found::Garbage(rev) => self.register_new(rev).await,
            Found::Registered(reg, rev) if reg.instance == self.args.facts.instance => {
                self.rank = reg.rank;
                self.write(rev).await?;
                tracing::info!(node = %name, rank = self.rank, "registered again, keeping its rank");
                Ok(())
            }
            Found::Registered(reg, rev) => {
                tracing::info!(
                    node = %name,
                    rank = reg.rank,
                    "a registration of this name by another process is still live; \
                     waiting for it to expire"
                );
                let rev = self.wait_out(rev).await?;
                self.register_new(rev).await
            }
        }
    }

    /// Waits until the registration at `revision` (another process's)
    /// expires; fails if it is renewed meanwhile (another live node has
    /// this name). Returns the revision to write over.
    async fn wait_out(&mut self, revision: u64) -> Result<u64, ClusterError> {
        let s = &self.args.settings;
        let interval = Duration::from_millis(s.heartbeat_interval_ms);
        let deadline =
            Instant::now() + Duration::from_millis(s.member_ttl_ms()) + interval.saturating_mul(2);
        let name = self.args.facts.name.clone();
        while Instant::now() < deadline {
            tokio::time::sleep(interval).await;
            match find(&self.kv, &name).await? {
                Found::Nothing(rev) | Found::Garbage(rev) => return Ok(rev),
                Found::Registered(reg, rev) if rev != revision => {
                    if reg.instance != self.args.facts.instance {
                        return Err(ClusterError::NameTaken(name));
                    }
                    return Ok(rev);
                }
                Found::Registered(..) => {}
            }
        }
        // Not renewed for longer than the expiry time: its owner is gone.
        Ok(revision)
    }

    /// Renews the registration; on a failed compare-and-set, finds out why.
    async fn heartbeat(&mut self) -> Result<(), ClusterError> {
        // A heartbeat that takes longer than an interval is late anyway:
        // the next tick tries again.
        let timeout = Duration::from_millis(self.args.settings.heartbeat_interval_ms);
        let reg = self.registration();
        let name = self.args.facts.name.clone();
        let put = tokio::time::timeout(
            timeout,
            self.kv.update(&name, reg.to_bytes(), self.revision),
        )
        .await;
        let err = match put {
            Ok(Ok(rev)) => {
                self.revision = rev;
                self.args.members.seen(reg, rev);
                return Ok(());
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        let found = match tokio::time::timeout(timeout, find(&self.kv, &name)).await {
            Ok(Ok(f)) => f,
            Err(_) => {
                tracing::warn!(node = %name, error = %err, "heartbeat failed; retrying");
                return Ok(());
            }
            Ok(Err(e)) => {
                tracing::warn!(node = %name, error = %err, then = %e, "heartbeat failed; retrying");
                return Ok(());
            }
        };
        match found {
            Found::Nothing(rev) => {
                tracing::warn!(
                    node = %name,
                    old_rank = self.rank,
                    "this node's registration expired (no heartbeat within the expiry \
                     time); registering again with a new rank"
                );
                self.register_new(rev).await
            }
            Found::Garbage(rev) => {
                tracing::warn!(node = %name, "this node's entry was overwritten; writing it again");
                self.write(rev).await
            }
            Found::Registered(r, rev) if r.instance == self.args.facts.instance => {
                // An earlier heartbeat that seemed to fail went through.
                self.rank = r.rank;
                self.write(rev).await
            }
            Found::Registered(..) => Err(ClusterError::NameTaken(name)),
        }
    }
}

impl MembershipState {
    /// Restarts a silent watch: it shows this node's own heartbeats, so
    /// when they get through and the watch shows nothing for three
    /// intervals, it is stuck (its consumer lost with a JetStream leader,
    /// say). The bucket is read again in full.
    async fn check_watch(&mut self) {
        let interval = Duration::from_millis(self.args.settings.heartbeat_interval_ms);
        let silent = self
            .watch_seen
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        if silent <= interval.saturating_mul(3) || self.args.members.my_rank().is_none() {
            return;
        }
        tracing::warn!(
            node = %self.args.facts.name,
            silent_ms = silent.as_millis() as u64,
            "members watch silent while heartbeats get through; restarting it"
        );
        if let Ok(mut t) = self.watch_seen.lock() {
            *t = Instant::now();
        }
        self.watch = AbortOnDrop::new(tokio::spawn(watch(
            self.kv.clone(),
            self.args.members.clone(),
            interval,
            self.watch_seen.clone(),
        )));
        if let Ok(Err(e)) = tokio::time::timeout(interval, load(&self.kv, &self.args.members)).await
        {
            tracing::warn!(node = %self.args.facts.name, error = %e, "reading the members failed");
        }
    }

    /// Reads the entries of the members the watch has not shown renewed
    /// for two heartbeat intervals (a watch can lag or stall: its consumer
    /// is recreated only after its own idle heartbeats go missing). An
    /// entry gone from the bucket is a member gone.
    async fn check_unrenewed(&self) {
        let interval = Duration::from_millis(self.args.settings.heartbeat_interval_ms);
        for (name, known) in self.args.members.unrenewed(interval.saturating_mul(2)) {
            match tokio::time::timeout(interval, find(&self.kv, &name)).await {
                Ok(Ok(Found::Registered(reg, rev))) if rev > known => {
                    self.args.members.seen(reg, rev)
                }
                Ok(Ok(Found::Nothing(_))) => self.args.members.left(&name, Left::Expired),
                _ => {}
            }
        }
    }
}

/// Reads every registration in the bucket into `members`.
async fn load(kv: &kv::Store, members: &Members) -> Result<(), ClusterError> {
    let keys: Vec<String> = match kv.keys().await {
        Ok(keys) => keys.filter_map(|k| async move { k.ok() }).collect().await,
        Err(e) => return Err(ClusterError::JetStream(format!("listing the members: {e}"))),
    };
    for key in keys {
        if let Found::Registered(reg, rev) = find(kv, &key).await? {
            members.seen(reg, rev);
        }
    }
    Ok(())
}

/// Follows the bucket (current values first, then every change) into
/// `members`, again after any error.
async fn watch(kv: kv::Store, members: Members, retry: Duration, seen: Arc<Mutex<Instant>>) {
    loop {
        match kv.watch_with_history(">").await {
            Ok(mut w) => {
                while let Some(next) = w.next().await {
                    match next {
                        Ok(e) => {
                            if let Ok(mut t) = seen.lock() {
                                *t = Instant::now();
                            }
                            take(&members, e)
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "members watch failed; restarting it");
                            break;
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot watch the members bucket; retrying"),
        }
        tokio::time::sleep(retry).await;
    }
}

/// One change of the bucket.
fn take(members: &Members, e: kv::Entry) {
    match e.operation {
        kv::Operation::Delete | kv::Operation::Purge => members.left(&e.key, Left::Deleted),
        kv::Operation::Put => match Registration::parse(&e.key, &e.value) {
            Ok(reg) => members.seen(reg, e.revision),
            Err(why) => tracing::warn!(
                node = %members.me(),
                key = %e.key,
                revision = e.revision,
                why = %why,
                "ignoring a value in the members bucket that is not a registration"
            ),
        },
    }
}

/// Opens the bucket and the ranks, starts watching, loads the members
/// there and registers this node.
async fn join(args: MembershipArgs) -> Result<MembershipState, ClusterError> {
    let js = jetstream::new(args.client.client().await);
    let kv = open_bucket(&js, &args.settings).await?;
    open_ranks(&js, &args.settings, &Subjects::new(&args.settings)).await?;
    let interval = Duration::from_millis(args.settings.heartbeat_interval_ms);
    let watch_seen = Arc::new(Mutex::new(Instant::now()));
    let watch = tokio::spawn(watch(
        kv.clone(),
        args.members.clone(),
        interval,
        watch_seen.clone(),
    ));
    // The members already there, before this node counts itself: it
    // never takes itself for the primary while the watch catches up.
    load(&kv, &args.members).await?;
    let mut state = MembershipState {
        args,
        kv,
        js,
        rank: 0,
        revision: 0,
        watch: AbortOnDrop::new(watch),
        watch_seen,
    };
    state.register().await?;
    Ok(state)
}

/// The `membership` actor's state: its arguments, and what it has once it
/// joined the cluster.
#[derive(Debug)]
pub(crate) struct Membership {
    args: MembershipArgs,
    joined: Option<MembershipState>,
}

impl Actor for MembershipActor {
    type Msg = MembershipMsg;
    type State = Membership;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MembershipMsg>,
        args: MembershipArgs,
    ) -> Result<Membership, ActorProcessingErr> {
        if !NodeFacts::valid_name(&args.facts.name) {
            return Err(ClusterError::Settings {
                key: "name",
                message: format!(
                    "node name {:?}: a cluster member's name is 1 to 64 letters, digits, -, _ or =",
                    args.facts.name
                ),
            }
            .into());
        }
        args.members
            .set_expiry(Duration::from_millis(args.settings.member_ttl_ms()));
        // Joining talks to NATS: it is the first tick's work, never the
        // start's, so a node starts (and serves) whatever NATS is doing.
        myself.send_message(MembershipMsg::Tick)?;
        Ok(Membership { args, joined: None })
    }

    async fn handle(
        &self,
        myself: ActorRef<MembershipMsg>,
        msg: MembershipMsg,
        cell: &mut Membership,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MembershipMsg::Tick => {
                let name = &cell.args.facts.name;
                match &mut cell.joined {
                    None => match join(cell.args.clone()).await {
                        Ok(state) => cell.joined = Some(state),
                        Err(e @ ClusterError::NameTaken(_)) => {
                            tracing::error!(node = %name, error = %e, "membership stops");
                            return Err(e.into());
                        }
                        Err(e) => {
                            tracing::warn!(node = %name, error = %e, "cannot join the cluster yet; retrying")
                        }
                    },
                    Some(state) => {
                        if let Err(e) = state.heartbeat().await {
                            if matches!(e, ClusterError::NameTaken(_)) {
                                tracing::error!(node = %name, error = %e, "membership stops");
                                return Err(e.into());
                            }
                            tracing::warn!(node = %name, error = %e, "heartbeat failed; retrying");
                        }
                        state.check_watch().await;
                        state.check_unrenewed().await;
                        state.args.members.expire();
                    }
                }
                let interval = Duration::from_millis(cell.args.settings.heartbeat_interval_ms);
                myself.send_after(interval, || MembershipMsg::Tick);
            }
        }
        Ok(())
    }
}
