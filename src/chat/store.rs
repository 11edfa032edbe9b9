//! `chat_store`: the durable log of chat events, on redb.
//!
//! One file, `<data_dir>/chat.redb`, holds:
//!
//! - `users`: name -> the user's record (creation and login timestamps);
//! - `channels`: name -> the channel's record;
//! - `events`: seq -> an event (a publication or a private message), the
//!   append-only log; `seq` is assigned here, strictly increasing, and the
//!   Lamport clock of the event is kept as metadata;
//! - `channel_index` / `user_index`: (name, seq) pairs, for history by
//!   channel and by user (a private message is indexed under both ends);
//! - `client_ids`: (sender, client message id) -> seq, so that a retried
//!   write with the same client id is stored once;
//! - `meta`: `clock` -> the highest Lamport clock stored (events, channels,
//!   and the node's clock at a clean close), so a restarted node's clock
//!   resumes above it; `applied_seq` -> the last entry of the replicated
//!   log applied (cluster mode), written in the same transaction as the
//!   entries it covers.
//!
//! # Local and replicated writes
//!
//! A write ([`Write`]) is local ([`Store::write_local`], single-node mode:
//! an event gets the store's next `seq`) or an entry of the replicated log
//! ([`Store::apply_replicated`], cluster mode: an event's `seq` is the
//! entry's stream sequence, and `applied_seq` advances with it). Both go
//! through the same writer and group commit, and the same rules decide
//! them (CONFLICT, NOT_FOUND, client-id dedupe), at apply time.
//!
//! A commit of local writes is synced before any of them is answered: the
//! store is their only copy. A commit of replicated entries is not synced
//! (redb's `Durability::None`): the log holds them durably, and a synced
//! commit follows within 200 ms (an empty one when no write comes), so a
//! node that crashes re-reads at most that much of the log after the
//! applied sequence it finds. This keeps an fsync off the path of each
//! cluster write, which waits for its own node to apply it.
//!
//! # Damage, close, check and backup
//!
//! A file that cannot be opened as a store (truncated, overwritten, header
//! bytes changed, ...) is refused with [`StoreError::Damaged`], which names
//! the file and says what to do: restore it from a backup, or move it aside
//! to start with an empty store. redb may panic on such a file; the panic
//! is caught (and not printed) and becomes that error. A zero-length file
//! is refused too ([`StoreError::Empty`]): redb never leaves one behind (it
//! writes its header on creation), so an empty file is data that was lost,
//! and starting an empty store over it would hide that. [`Store::close`]
//! closes the file cleanly (the node calls it at shutdown), so the next
//! open needs no repair. [`Store::check`] opens a store file and reads
//! every record; [`Store::backup`] (of an open store) and
//! [`Store::backup_file`] copy every table, from one read transaction,
//! into a new file: a consistent copy, also while writes go on.
//!
//! # Group commit
//!
//! Every write goes to one writer thread through a queue. The thread takes
//! everything queued (up to `batch_max`), applies it in one write transaction
//! and commits it with one fsync (redb's immediate durability), then answers
//! each write. A write is acknowledged only once its batch has committed, so
//! whatever was acknowledged survives a crash; under load many concurrent
//! writes share one fsync. A write that is refused (a channel that already
//! exists, ...) is answered with its error and does not affect the others.
//! Reads run on the blocking pool against the last committed state.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{Write, Written};

const USERS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("users");
const CHANNELS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("channels");
const EVENTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("events");
/// History indexes, keyed `(name_key(channel or user), seq)`. The keys are
/// fixed-size on purpose: redb rewrites the offset of every key of a leaf on
/// each insert when keys vary in size, which made these small entries the
/// writer's hottest code. Two names with the same key never mix: `history`
/// checks each event's own names.
const CHANNEL_INDEX: TableDefinition<'static, (u64, u64), ()> = TableDefinition::new("channel_seq");
const USER_INDEX: TableDefinition<'static, (u64, u64), ()> = TableDefinition::new("user_seq");

/// A name's index key: 64-bit FNV-1a, a hash whose values never change
/// (they are stored).
fn name_key(name: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(name.as_bytes());
    h.finish()
}
const CLIENT_IDS: TableDefinition<'static, (&str, &str), u64> = TableDefinition::new("client_ids");
/// Store-wide values: [`CLOCK_KEY`] -> the highest Lamport clock stored.
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
const CLOCK_KEY: &str = "clock";
/// `meta` key of the last replicated log sequence applied (cluster mode).
const APPLIED_KEY: &str = "applied_seq";
/// Events read back from the end of the log to find the highest clock of
/// a store written before `meta` existed.
const CLOCK_SCAN: usize = 100_000;

/// Most login timestamps kept per user (the oldest are dropped).
pub(crate) const MAX_LOGINS_KEPT: usize = 100;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (I/O, corruption, ...); the source is the
    /// embedded database's error.
    #[error("chat store: {0}")]
    Db(#[source] BoxError),
    /// A record or event could not be encoded or decoded; the source is
    /// the encoding's error.
    #[error("chat store record: {0}")]
    Record(#[source] BoxError),
    /// The data directory could not be created, or the file not read or
    /// written.
    #[error("chat store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The thing to create exists already.
    #[error("{0}")]
    Conflict(String),
    /// A thing referred to does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The writer thread is gone, or the store was closed.
    #[error("the chat store is closed")]
    Closed,
    /// The file is not a readable store (truncated, overwritten, ...).
    #[error(
        "chat store {path} is damaged; restore it from a backup (`corral store \
         backup` makes one), or move it aside to start with an empty store"
    )]
    Damaged {
        /// The store's file.
        path: PathBuf,
        /// What opening or reading it found.
        #[source]
        source: BoxError,
    },
    /// The file is empty (0 bytes) where a store was expected.
    #[error(
        "chat store {path} is empty (0 bytes) where a store was expected; \
         restore it from a backup, or move it aside (or delete it) to start \
         with an empty store"
    )]
    Empty {
        /// The store's file.
        path: PathBuf,
    },
    /// Another process (a running node?) has the file open.
    #[error("chat store {path} is in use by another process (a running node?)")]
    InUse {
        /// The store's file.
        path: PathBuf,
    },
    /// A backup's destination exists already (a backup never overwrites).
    #[error("{path} exists already; a backup never overwrites a file")]
    Exists {
        /// The destination.
        path: PathBuf,
    },
}

/// A user's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's name.
    pub user: String,
    /// When the user first logged in (ms since the epoch).
    pub created: u64,
    /// Login timestamps, oldest first (the last 100).
    pub logins: Vec<u64>,
}

/// A channel's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    /// The channel's name.
    pub channel: String,
    /// Who created it, if known.
    pub creator: Option<String>,
    /// When it was created (ms since the epoch).
    pub created: u64,
    /// The Lamport clock of its creation.
    pub clock: u64,
}

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A publication on a channel.
    Publish,
    /// A private message from one user to another.
    Message,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The server-assigned sequence number (0 before it is stored).
    pub seq: u64,
    /// What it is.
    pub kind: EventKind,
    /// The sender.
    pub user: String,
    /// The channel of a publication, or the recipient of a private message.
    pub target: String,
    /// The text.
    pub message: String,
    /// When the node received it (ms since the epoch).
    pub timestamp: u64,
    /// The node's Lamport clock when it received it.
    pub clock: u64,
    /// The client's message id, if it gave one.
    pub client_id: Option<String>,
}

impl Event {
    /// The event as wire `data`, with the seed's field names: a publication
    /// is `{kind: "publish", seq, user, channel, message, timestamp, clock,
    /// client_id?}`, a private message `{kind: "message", seq, src, dst,
    /// message, timestamp, clock, client_id?}`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.data(self.timestamp, self.clock, None)).unwrap_or(Value::Null)
    }

    /// The event's wire fields (see [`Event::to_json`]) with `timestamp`
    /// and `clock` as given, and `event_clock` when given (a push carries
    /// the node's time and clock at sending, and the event's own clock).
    pub(crate) fn data(&self, timestamp: u64, clock: u64, event_clock: Option<u64>) -> EventData {
        let (channel, user, src, dst) = match self.kind {
            EventKind::Publish => (
                Some(self.target.clone()),
                Some(self.user.clone()),
                None,
                None,
            ),
            EventKind::Message => (
                None,
                None,
                Some(self.user.clone()),
                Some(self.target.clone()),
            ),
        };
        EventData {
            channel,
            client_id: self.client_id.clone(),
            clock,
            dst,
            event_clock,
            kind: self.kind,
            message: self.message.clone(),
            seq: self.seq,
            src,
            timestamp,
            user,
        }
    }
}

/// An event's wire fields, serialized straight from them in the key order
/// of a JSON value (sorted).
#[derive(Serialize)]
pub(crate) struct EventData {
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    clock: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_clock: Option<u64>,
    kind: EventKind,
    message: String,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<String>,
    timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored event (for a duplicate, the original one).
    pub event: Event,
    /// Whether the client id had been seen: nothing new was stored.
    pub duplicate: bool,
}

/// Whose history to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Publications on a channel.
    Channel(String),
    /// Private messages sent or received by a user.
    User(String),
}

enum Op {
    /// A write of this node alone (single-node mode): events get the
    /// store's next `seq`.
    Local(Write),
    /// An entry of the replicated log at this stream sequence (`None`: an
    /// entry that is not a write, skipped): events get the sequence as
    /// their `seq`, and the applied sequence is recorded.
    Replicated(u64, Option<Write>),
    /// Wakes the writer after [`Store::close`] (it then ends).
    Stop,
}

type Out = Written;

type Job = (Op, oneshot::Sender<Result<Out, StoreError>>);

/// What the writer thread calls after each commit with the events the commit
/// made durable, in `seq` order (retries found already stored are not
/// among them), before any write of the batch is acknowledged.
pub(crate) type CommitHook = Box<dyn Fn(&[&Event]) + Send + Sync>;

/// The database, shared by the handles, the readers and the writer; `None`
/// once [`Store::close`] has closed it.
struct Shared {
    db: RwLock<Option<Database>>,
    path: PathBuf,
    /// The highest Lamport clock known to be stored (or to be stored at
    /// close).
    clock: AtomicU64,
    /// The last replicated log sequence applied (0: none).
    applied: AtomicU64,
    /// Writes committed (the sum of the batch sizes).
    written: AtomicU64,
    /// The largest batch committed.
    largest_batch: AtomicU64,
}

impl Shared {
    fn db(&self) -> RwLockReadGuard<'_, Option<Database>> {
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle on the store; cheap to clone. The writer thread stops when the
/// last handle is dropped or the store is closed.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    writes: std::sync::mpsc::Sender<Job>,
    commits: Arc<AtomicU64>,
    hook: Arc<std::sync::OnceLock<CommitHook>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

/// The group commit's figures ([`Store::commit_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Writes they held.
    pub writes: u64,
    /// The most writes one transaction held.
    pub largest_batch: u64,
}

/// What [`Store::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// The store's file.
    pub path: PathBuf,
    /// Whether redb had to repair the file on opening it (it was not closed
    /// cleanly); the repair has been done.
    pub repaired: bool,
    /// Users stored.
    pub users: u64,
    /// Channels stored.
    pub channels: u64,
    /// Events in the log.
    pub events: u64,
    /// The last event's `seq` (0 when there is none).
    pub last_seq: u64,
    /// The highest Lamport clock stored.
    pub clock: u64,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "OK: {}", self.path.display())?;
        writeln!(
            f,
            "  users {}, channels {}, events {}, last seq {}, clock {}",
            self.users, self.channels, self.events, self.last_seq, self.clock
        )?;
        let repair = if self.repaired {
            "done (the store had not been closed cleanly)"
        } else {
            "not needed"
        };
        write!(f, "  repair: {repair}")
    }
}

/// What a backup ([`Store::backup`], [`Store::backup_file`]) holds: the
/// state of one commit of the store it copies.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The new store file.
    pub path: PathBuf,
    /// Its size, in bytes.
    pub bytes: u64,
    /// Users it holds.
    pub users: u64,
    /// Channels it holds.
    pub channels: u64,
    /// Events it holds.
    pub events: u64,
    /// Its last event's `seq` (0 when it holds none): every write
    /// acknowledged before the backup started is at or below it.
    pub last_seq: u64,
}

/// An opened database with what opening it learned.
struct Opened {
    db: Database,
    next_seq: u64,
    clock: u64,
    applied: u64,
    repaired: bool,
}

thread_local! {
    /// Set while this thread opens a store: a panic then is caught and
    /// reported as [`StoreError::Damaged`], so the panic hook stays quiet.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic (redb panics on some damaged files) as its
/// message; the panic hook prints nothing for it.
fn catch_panics<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET_PANICS.with(|q| q.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(was));
    r.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned())
    })
}

/// Opens (creating when absent) the database at `path` and every table,
/// refusing a damaged or empty file.
fn open_db(path: &Path, integrity: bool) -> Result<Opened, StoreError> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => {
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let damaged = |source: BoxError| StoreError::Damaged {
        path: path.to_path_buf(),
        source,
    };
    let repaired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = repaired.clone();
    let opened = catch_panics(|| -> Result<Opened, StoreError> {
        let mut db = Database::builder()
            .set_repair_callback(move |_| seen.store(true, Ordering::Relaxed))
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
                    path: path.to_path_buf(),
                },
                redb::DatabaseError::Storage(redb::StorageError::Io(io))
                    if !matches!(
                        io.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                    ) =>
                {
                    StoreError::Io(io)
                }
                e => damaged(Box::new(e)),
            })?;
        if integrity && !db.check_integrity().map_err(|e| damaged(Box::new(e)))? {
            repaired.store(true, Ordering::Relaxed);
        }
        let (next_seq, clock, applied) = init_tables(&db).map_err(|e| match e {
            StoreError::Db(source) | StoreError::Record(source) => damaged(source),
            e => e,
        })?;
        Ok(Opened {
            db,
            next_seq,
            clock,
            applied,
            repaired: repaired.load(Ordering::Relaxed),
        })
    });
    match opened {
        Ok(r) => r,
        Err(panic) => Err(damaged(format!("redb failed reading it: {panic}").into())),
    }
}

/// Creates every table (so that readers never find one missing); returns
/// the next `seq`, the highest clock stored and the applied log sequence.
fn init_tables(db: &Database) -> Result<(u64, u64, u64), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    let found = {
        txn.open_table(USERS).map_err(db_err)?;
        txn.open_table(CHANNEL_INDEX).map_err(db_err)?;
        txn.open_table(USER_INDEX).map_err(db_err)?;
        txn.open_table(CLIENT_IDS).map_err(db_err)?;
        let channels = txn.open_table(CHANNELS).map_err(db_err)?;
        let events = txn.open_table(EVENTS).map_err(db_err)?;
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let last = events.last().map_err(db_err)?.map(|(k, _)| k.value());
        let stored = meta.get(CLOCK_KEY).map_err(db_err)?.map(|v| v.value());
        let clock = match stored {
            Some(c) => c,
            None => {
                // A store of an earlier version: its highest clock, from
                // the channels and the end of the log.
                let mut c = 0;
                for row in channels.iter().map_err(db_err)? {
                    let (_, v) = row.map_err(db_err)?;
                    let rec: ChannelRecord = serde_json::from_slice(v.value())?;
                    c = c.max(rec.clock);
                }
                for row in events.iter().map_err(db_err)?.rev().take(CLOCK_SCAN) {
                    let (_, v) = row.map_err(db_err)?;
                    c = c.max(decode_event(v.value())?.clock);
                }
                meta.insert(CLOCK_KEY, c).map_err(db_err)?;
                c
            }
        };
        let applied = meta
            .get(APPLIED_KEY)
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        (last.unwrap_or(0) + 1, clock, applied)
    };
    txn.commit().map_err(db_err)?;
    Ok(found)
}

/// Copies every row of `def` from `src` into `dst`.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &redb::ReadTransaction,
    dst: &redb::WriteTransaction,
    def: TableDefinition<'static, K, V>,
) -> Result<(), StoreError> {
    let from = src.open_table(def).map_err(db_err)?;
    let mut to = dst.open_table(def).map_err(db_err)?;
    for row in from.iter().map_err(db_err)? {
        let (k, v) = row.map_err(db_err)?;
        to.insert(k.value(), v.value()).map_err(db_err)?;
    }
    Ok(())
}

/// Writes a copy of everything `src` holds into a new store at `dest`
/// (which must not exist), from one read transaction, and says what the
/// copy holds. The copy is synced and closed before this returns; a failed
/// copy leaves no file behind.
fn backup_into(src: &Database, dest: &Path) -> Result<BackupReport, StoreError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => StoreError::Exists {
                path: dest.to_path_buf(),
            },
            _ => StoreError::Io(e),
        })?;
    let copy = || -> Result<BackupReport, StoreError> {
        let out = Database::builder().create_file(file).map_err(db_err)?;
        let read = src.begin_read().map_err(db_err)?;
        let write = out.begin_write().map_err(db_err)?;
        copy_table(&read, &write, USERS)?;
        copy_table(&read, &write, CHANNELS)?;
        copy_table(&read, &write, EVENTS)?;
        copy_table(&read, &write, CHANNEL_INDEX)?;
        copy_table(&read, &write, USER_INDEX)?;
        copy_table(&read, &write, CLIENT_IDS)?;
        copy_table(&read, &write, META)?;
        write.commit().map_err(db_err)?;
        // What the copy holds: the read transaction's state.
        let users = read
            .open_table(USERS)
            .map_err(db_err)?
            .len()
            .map_err(db_err)?;
        let channels = read
            .open_table(CHANNELS)
            .map_err(db_err)?
            .len()
            .map_err(db_err)?;
        let events = read.open_table(EVENTS).map_err(db_err)?;
        let last_seq = events.last().map_err(db_err)?.map_or(0, |(k, _)| k.value());
        let events = events.len().map_err(db_err)?;
        drop(out);
        let bytes = std::fs::metadata(dest)?.len();
        Ok(BackupReport {
            path: dest.to_path_buf(),
            bytes,
            users,
            channels,
            events,
            last_seq,
        })
    };
    let r = copy();
    if r.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    r
}

impl Store {
    /// Opens (or creates) the store at `path` and starts its writer thread,
    /// which commits at most `batch_max` writes per transaction. A damaged
    /// file is refused ([`StoreError::Damaged`]), as is an empty one
    /// ([`StoreError::Empty`]).
    pub fn open(path: &Path, batch_max: usize) -> Result<Store, StoreError> {
        let opened = open_db(path, false)?;
        if opened.repaired {
            tracing::warn!(
                path = %path.display(),
                "chat store: repaired (it had not been closed cleanly)"
            );
        }
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(opened.db)),
            path: path.to_path_buf(),
            clock: AtomicU64::new(opened.clock),
            applied: AtomicU64::new(opened.applied),
            written: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let writer_shared = shared.clone();
        let batch_max = batch_max.max(1);
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let hook = Arc::new(std::sync::OnceLock::new());
        let writer_hook = hook.clone();
        let next_seq = opened.next_seq;
        std::thread::Builder::new()
            .name("chat-store-writer".into())
            .spawn(move || {
                writer(
                    &writer_shared,
                    rx,
                    next_seq,
                    batch_max,
                    &counter,
                    &writer_hook,
                )
            })?;
        Ok(Store {
            shared,
            writes: tx,
            commits,
            hook,
        })
    }

    /// Opens the store file at `path` (which must exist), checks redb's
    /// integrity and reads every record; the store must not be in use. A
    /// store that was not closed cleanly is repaired, as opening it for a
    /// node would.
    pub fn check(path: &Path) -> Result<CheckReport, StoreError> {
        if !path.exists() {
            return Err(StoreError::NotFound(format!(
                "no chat store at {}",
                path.display()
            )));
        }
        let opened = open_db(path, true)?;
        let damaged = |source: BoxError| StoreError::Damaged {
            path: path.to_path_buf(),
            source,
        };
        let counted = catch_panics(|| -> Result<(u64, u64, u64, u64), StoreError> {
            let txn = opened.db.begin_read().map_err(db_err)?;
            let mut users = 0;
            for row in txn
                .open_table(USERS)
                .map_err(db_err)?
                .iter()
                .map_err(db_err)?
            {
                let (_, v) = row.map_err(db_err)?;
                let _: UserRecord = serde_json::from_slice(v.value())?;
                users += 1;
            }
            let mut channels = 0;
            for row in txn
                .open_table(CHANNELS)
                .map_err(db_err)?
                .iter()
                .map_err(db_err)?
            {
                let (_, v) = row.map_err(db_err)?;
                let _: ChannelRecord = serde_json::from_slice(v.value())?;
                channels += 1;
            }
            let (mut events, mut last_seq) = (0, 0);
            for row in txn
                .open_table(EVENTS)
                .map_err(db_err)?
                .iter()
                .map_err(db_err)?
            {
                let (k, v) = row.map_err(db_err)?;
                decode_event(v.value())?;
                events += 1;
                last_seq = k.value();
            }
            for def in [CHANNEL_INDEX, USER_INDEX] {
                for row in txn
                    .open_table(def)
                    .map_err(db_err)?
                    .iter()
                    .map_err(db_err)?
                {
                    row.map_err(db_err)?;
                }
            }
            for row in txn
                .open_table(CLIENT_IDS)
                .map_err(db_err)?
                .iter()
                .map_err(db_err)?
            {
                row.map_err(db_err)?;
            }
            Ok((users, channels, events, last_seq))
        });
        let (users, channels, events, last_seq) = match counted {
            Ok(Ok(c)) => c,
            Ok(Err(StoreError::Db(e) | StoreError::Record(e))) => return Err(damaged(e)),
            Ok(Err(e)) => return Err(e),
            Err(panic) => return Err(damaged(format!("redb failed reading it: {panic}").into())),
        };
        Ok(CheckReport {
            path: path.to_path_buf(),
            repaired: opened.repaired,
            users,
            channels,
            events,
            last_seq,
            clock: opened.clock,
        })
    }

    /// Copies the store file at `path` (not in use) into a new store at
    /// `dest` (see [`Store::backup`]). Fails with [`StoreError::InUse`]
    /// when a running node holds it: ask that node instead (service
    /// `store_backup`, which `corral store backup` calls).
    pub fn backup_file(path: &Path, dest: &Path) -> Result<BackupReport, StoreError> {
        if !path.exists() {
            return Err(StoreError::NotFound(format!(
                "no chat store at {}",
                path.display()
            )));
        }
        let opened = open_db(path, false)?;
        backup_into(&opened.db, dest)
    }

    /// Copies this (open, possibly busy) store into a new store file at
    /// `dest`, which must not exist ([`StoreError::Exists`]): every table
    /// from one read transaction, so the copy is the state of one commit,
    /// while writes go on: it holds every write acknowledged before the
    /// call. Runs on the blocking pool.
    pub async fn backup(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        let shared = self.shared.clone();
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let db = shared.db();
            let db = db.as_ref().ok_or(StoreError::Closed)?;
            backup_into(db, &dest)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The highest Lamport clock stored: the node's clock starts above it.
    pub fn stored_clock(&self) -> u64 {
        self.shared.clock.load(Ordering::SeqCst)
    }

    /// Closes the store: waits for the reads and the commit in progress,
    /// records `clock` (the node's clock, when higher than the stored one)
    /// and closes the file cleanly, so the next open needs no repair. Every
    /// later operation fails with [`StoreError::Closed`]; closing twice does
    /// nothing. Blocks: call it from the blocking pool or a plain thread.
    pub fn close(&self, clock: u64) -> Result<(), StoreError> {
        let mut guard = self.shared.db.write().unwrap_or_else(|p| p.into_inner());
        let Some(db) = guard.take() else {
            return Ok(());
        };
        // One synced commit, always: it records the clock and makes the
        // writer's unsynced commits of replicated entries durable.
        let saved = (|| -> Result<(), StoreError> {
            let txn = db.begin_write().map_err(db_err)?;
            let raise = clock > self.shared.clock.load(Ordering::SeqCst);
            if raise {
                let mut meta = txn.open_table(META).map_err(db_err)?;
                let stored = meta.get(CLOCK_KEY).map_err(db_err)?.map(|v| v.value());
                meta.insert(CLOCK_KEY, stored.unwrap_or(0).max(clock))
                    .map_err(db_err)?;
            }
            txn.commit().map_err(db_err)?;
            if raise {
                self.shared.clock.fetch_max(clock, Ordering::SeqCst);
            }
            Ok(())
        })();
        drop(db);
        // Wake the writer so that it sees the store closed and ends.
        let (tx, _) = oneshot::channel();
        let _ = self.writes.send((Op::Stop, tx));
        saved
    }

    /// Sets the hook called after each commit with the events it stored
    /// (see [`CommitHook`]); false if one was set already. The hook runs on
    /// the writer thread: it must be quick and must not wait for the store.
    pub(crate) fn on_commit(&self, hook: CommitHook) -> bool {
        self.hook.set(hook).is_ok()
    }

    /// Write transactions committed since the store was opened (one fsync
    /// each): with group commit, fewer than the writes under concurrency.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// The group commit's figures: transactions, the writes they held and
    /// the largest batch, since the store was opened. The mean batch size
    /// over a span is the growth of `writes` over that of `commits`.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.commits(),
            writes: self.shared.written.load(Ordering::Relaxed),
            largest_batch: self.shared.largest_batch.load(Ordering::Relaxed),
        }
    }

    /// Applies a write of this node alone (single-node mode): through the
    /// group commit, events numbered by the store.
    pub async fn write_local(&self, write: Write) -> Result<Written, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send((Op::Local(write), tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues the replicated log's entry at stream sequence `seq` (`None`:
    /// an entry that is no write, only recorded as applied) and returns
    /// where its result will come. Entries queued back to back share a
    /// commit; each is decided at apply time by the same rules as a local
    /// write (CONFLICT, NOT_FOUND, client-id dedupe), so every node that
    /// applies the same log decides the same. A stored event's `seq` is
    /// `seq`; the applied sequence is recorded in the same transaction. An
    /// entry at or below the applied sequence is ignored (answered
    /// [`StoreError::Conflict`]).
    pub fn apply_replicated(
        &self,
        seq: u64,
        write: Option<Write>,
    ) -> oneshot::Receiver<Result<Written, StoreError>> {
        let (tx, rx) = oneshot::channel();
        if let Err(std::sync::mpsc::SendError((_, tx))) =
            self.writes.send((Op::Replicated(seq, write), tx))
        {
            let _ = tx.send(Err(StoreError::Closed));
        }
        rx
    }

    /// The last replicated log sequence applied (0: none; always 0 in
    /// single-node mode).
    pub fn applied_seq(&self) -> u64 {
        self.shared.applied.load(Ordering::SeqCst)
    }

    /// The event stored for `user`'s client message id `client_id`, if any.
    pub async fn by_client_id(
        &self,
        user: &str,
        client_id: &str,
    ) -> Result<Option<Event>, StoreError> {
        let (user, client_id) = (user.to_owned(), client_id.to_owned());
        self.read(move |txn| {
            let ids = txn.open_table(CLIENT_IDS).map_err(db_err)?;
            let Some(seq) = ids
                .get((user.as_str(), client_id.as_str()))
                .map_err(db_err)?
                .map(|v| v.value())
            else {
                return Ok(None);
            };
            let events = txn.open_table(EVENTS).map_err(db_err)?;
            let found = events.get(seq).map_err(db_err)?;
            match found {
                Some(v) => Ok(Some(decode_event(v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Records a login of `user` at `ts` (creating the user on first login;
    /// [`StoreError::Conflict`] when a channel has that name).
    pub async fn login(&self, user: &str, ts: u64) -> Result<UserRecord, StoreError> {
        match self
            .write_local(Write::Login {
                user: user.to_owned(),
                ts,
            })
            .await?
        {
            Out::User(u) => Ok(u),
            _ => Err(StoreError::Closed),
        }
    }

    /// Creates a channel; [`StoreError::Conflict`] if it exists, or if a
    /// user has that name.
    pub async fn create_channel(&self, rec: ChannelRecord) -> Result<ChannelRecord, StoreError> {
        match self.write_local(Write::Channel { channel: rec }).await? {
            Out::Channel(c) => Ok(c),
            _ => Err(StoreError::Closed),
        }
    }

    /// Appends an event (its `seq` is assigned here). A publication's channel
    /// and a message's recipient must exist ([`StoreError::NotFound`]). An
    /// event whose sender and client id were seen before is not stored again:
    /// the original is returned, marked duplicate.
    pub async fn append(&self, event: Event) -> Result<Appended, StoreError> {
        match self.write_local(Write::Append { event }).await? {
            Out::Appended(a) => Ok(a),
            _ => Err(StoreError::Closed),
        }
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let db = shared.db();
            let txn = db
                .as_ref()
                .ok_or(StoreError::Closed)?
                .begin_read()
                .map_err(db_err)?;
            f(&txn)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    #[cfg(test)]
    fn begin_write(&self) -> redb::WriteTransaction {
        let db = self.shared.db();
        db.as_ref()
            .expect("open")
            .begin_write()
            .expect("write transaction")
    }

    /// A user's record.
    pub async fn user(&self, user: &str) -> Result<Option<UserRecord>, StoreError> {
        let user = user.to_owned();
        self.read(move |txn| {
            let t = txn.open_table(USERS).map_err(db_err)?;
            let got = t.get(user.as_str()).map_err(db_err)?;
            match got {
                Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(USERS).map_err(db_err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(db_err)? {
                let (_, v) = row.map_err(db_err)?;
                out.push(serde_json::from_slice(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// Whether a channel exists.
    pub async fn channel_exists(&self, channel: &str) -> Result<bool, StoreError> {
        let channel = channel.to_owned();
        self.read(move |txn| {
            let t = txn.open_table(CHANNELS).map_err(db_err)?;
            let found = t.get(channel.as_str()).map_err(db_err)?.is_some();
            Ok(found)
        })
        .await
    }

    /// Every channel, by name.
    pub async fn channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(CHANNELS).map_err(db_err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(db_err)? {
                let (_, v) = row.map_err(db_err)?;
                out.push(serde_json::from_slice(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// A page of users by name: at most `limit`, after `after` when given.
    pub async fn users_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        self.read(move |txn| page(txn, USERS, after.as_deref(), limit))
            .await
    }

    /// A page of channels by name: at most `limit`, after `after` when given.
    pub async fn channels_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<ChannelRecord>, StoreError> {
        self.read(move |txn| page(txn, CHANNELS, after.as_deref(), limit))
            .await
    }

    /// The last event's `seq` (0 when there is none).
    pub async fn last_seq(&self) -> Result<u64, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(EVENTS).map_err(db_err)?;
            let last = t.last().map_err(db_err)?.map_or(0, |(k, _)| k.value());
            Ok(last)
        })
        .await
    }

    /// Number of events in the log.
    pub async fn event_count(&self) -> Result<u64, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(EVENTS).map_err(db_err)?;
            let n = t.len().map_err(db_err)?;
            Ok(n)
        })
        .await
    }

    /// A page of history: the (at most) `limit` latest events of `scope`
    /// with a seq below `before` (all when `None`), in ascending seq order.
    pub async fn history(
        &self,
        scope: Scope,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(move |txn| {
            let (index, name) = match &scope {
                Scope::Channel(c) => (CHANNEL_INDEX, c.as_str()),
                Scope::User(u) => (USER_INDEX, u.as_str()),
            };
            let key = name_key(name);
            let idx = txn.open_table(index).map_err(db_err)?;
            let events = txn.open_table(EVENTS).map_err(db_err)?;
            let end = before.unwrap_or(u64::MAX);
            let mut out = Vec::new();
            for row in idx.range((key, 0)..(key, end)).map_err(db_err)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (k, _) = row.map_err(db_err)?;
                let seq = k.value().1;
                let Some(v) = events.get(seq).map_err(db_err)? else {
                    continue;
                };
                let ev = decode_event(v.value())?;
                let belongs = match &scope {
                    Scope::Channel(c) => ev.kind == EventKind::Publish && ev.target == *c,
                    Scope::User(u) => {
                        ev.kind == EventKind::Message && (ev.user == *u || ev.target == *u)
                    }
                };
                if belongs {
                    out.push(ev);
                }
            }
            out.reverse();
            Ok(out)
        })
        .await
    }
}

/// An event as stored: MessagePack, fields by position. Half the size of
/// its JSON, so the log's pages hold twice as many events.
fn encode_event(ev: &Event) -> Result<Vec<u8>, StoreError> {
    Ok(rmp_serde::to_vec(ev)?)
}

/// A stored event: MessagePack, or JSON as earlier versions stored them (a
/// JSON object starts with `{`, which is no MessagePack array's first byte).
fn decode_event(bytes: &[u8]) -> Result<Event, StoreError> {
    if bytes.first() == Some(&b'{') {
        Ok(serde_json::from_slice(bytes)?)
    } else {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(Box::new(e.into()))
}

/// The error of an encoding a record or event went through.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Record(Box::new(e))
    }
}

impl From<rmp_serde::encode::Error> for StoreError {
    fn from(e: rmp_serde::encode::Error) -> Self {
        StoreError::Record(Box::new(e))
    }
}

impl From<rmp_serde::decode::Error> for StoreError {
    fn from(e: rmp_serde::decode::Error) -> Self {
        StoreError::Record(Box::new(e))
    }
}

/// The longest a commit of replicated entries stays unsynced (see
/// [`writer`]): what a crashed node re-reads from the log at most.
const REPLICATED_SYNC_EVERY: Duration = Duration::from_millis(200);

/// Makes every commit so far durable: an empty synced commit.
fn sync(db: &Database) -> Result<(), StoreError> {
    db.begin_write().map_err(db_err)?.commit().map_err(db_err)
}

/// The writer thread: batches of queued writes, one transaction each.
fn writer(
    shared: &Shared,
    rx: std::sync::mpsc::Receiver<Job>,
    mut next_seq: u64,
    max: usize,
    commits: &AtomicU64,
    hook: &std::sync::OnceLock<CommitHook>,
) {
    // Replicated entries are committed without a sync (redb's
    // `Durability::None`): the log is their durable copy, and a node that
    // crashes resumes after the applied sequence it last synced. A synced
    // commit follows at most REPLICATED_SYNC_EVERY later (an empty one
    // when nothing else comes), and every commit of local writes syncs.
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    loop {
        let first = if unsynced {
            let wait = REPLICATED_SYNC_EVERY.saturating_sub(last_sync.elapsed());
            match rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(db) = shared.db().as_ref() {
                        if let Err(e) = sync(db) {
                            tracing::error!(error = %e, "chat store: sync commit failed");
                        }
                    }
                    unsynced = false;
                    last_sync = Instant::now();
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batch.retain(|(op, _)| !matches!(op, Op::Stop));
        let db = shared.db();
        let Some(db) = db.as_ref() else {
            // Closed: refuse what is queued, and end.
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::Closed));
            }
            return;
        };
        if batch.is_empty() {
            continue;
        }
        let start_seq = next_seq;
        let synced = last_sync.elapsed() >= REPLICATED_SYNC_EVERY
            || batch
                .iter()
                .any(|(op, _)| !matches!(op, Op::Replicated(..)));
        match apply(db, &batch, &mut next_seq, synced) {
            Ok((results, clock, applied)) => {
                if synced {
                    last_sync = Instant::now();
                    unsynced = false;
                } else {
                    unsynced = true;
                }
                shared.clock.fetch_max(clock, Ordering::SeqCst);
                shared.applied.fetch_max(applied, Ordering::SeqCst);
                commits.fetch_add(1, Ordering::Relaxed);
                let size = batch.len() as u64;
                shared.written.fetch_add(size, Ordering::Relaxed);
                shared.largest_batch.fetch_max(size, Ordering::Relaxed);
                if let Some(hook) = hook.get() {
                    let stored: Vec<&Event> = results
                        .iter()
                        .filter_map(|r| match r {
                            Ok(Out::Appended(a)) if !a.duplicate => Some(&a.event),
                            _ => None,
                        })
                        .collect();
                    if !stored.is_empty() {
                        let run = std::panic::AssertUnwindSafe(|| hook(&stored));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!("chat store: the commit hook panicked");
                        }
                    }
                }
                for ((_, reply), r) in batch.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                // Nothing of the batch was committed.
                next_seq = start_seq;
                tracing::error!(error = %e, "chat store: batch commit failed");
                let msg = e.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Io(std::io::Error::other(msg.clone()))));
                }
            }
        }
    }
    if unsynced {
        if let Some(db) = shared.db().as_ref() {
            if let Err(e) = sync(db) {
                tracing::error!(error = %e, "chat store: sync commit failed");
            }
        }
    }
}

/// Applies a batch in one transaction; returns each write's result, the
/// highest clock stored and the last replicated sequence applied.
#[allow(clippy::type_complexity)]
fn apply(
    db: &Database,
    batch: &[Job],
    next_seq: &mut u64,
    synced: bool,
) -> Result<(Vec<Result<Out, StoreError>>, u64, u64), StoreError> {
    let mut txn = db.begin_write().map_err(db_err)?;
    if !synced {
        txn.set_durability(Durability::None);
    }
    let mut results = Vec::with_capacity(batch.len());
    let mut max_clock = 0;
    // The applied sequence matters to replicated entries only: a batch of
    // local writes (single-node mode) does not read it.
    let replicated = batch.iter().any(|(op, _)| matches!(op, Op::Replicated(..)));
    let applied_before = if replicated {
        let meta = txn.open_table(META).map_err(db_err)?;
        let v = meta
            .get(APPLIED_KEY)
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        v
    } else {
        0
    };
    let mut applied = applied_before;
    {
        let mut users = txn.open_table(USERS).map_err(db_err)?;
        let mut channels = txn.open_table(CHANNELS).map_err(db_err)?;
        let mut events = txn.open_table(EVENTS).map_err(db_err)?;
        let mut chan_idx = txn.open_table(CHANNEL_INDEX).map_err(db_err)?;
        let mut user_idx = txn.open_table(USER_INDEX).map_err(db_err)?;
        let mut ids = txn.open_table(CLIENT_IDS).map_err(db_err)?;
        for (op, _) in batch {
            let (write, fixed_seq) = match op {
                Op::Stop => {
                    results.push(Err(StoreError::Closed));
                    continue;
                }
                Op::Local(w) => (w, None),
                Op::Replicated(seq, w) => {
                    if *seq <= applied {
                        results.push(Err(StoreError::Conflict(format!(
                            "log entry {seq} is applied already (at {applied})"
                        ))));
                        continue;
                    }
                    applied = *seq;
                    match w {
                        Some(w) => (w, Some(*seq)),
                        None => {
                            results.push(Err(StoreError::NotFound(format!(
                                "log entry {seq} is not a chat write"
                            ))));
                            continue;
                        }
                    }
                }
            };
            let r = match write {
                Write::Login { user, ts } => {
                    let old = match users.get(user.as_str()).map_err(db_err)? {
                        Some(v) => Some(serde_json::from_slice::<UserRecord>(v.value())?),
                        None => None,
                    };
                    let taken =
                        old.is_none() && channels.get(user.as_str()).map_err(db_err)?.is_some();
                    if taken {
                        results.push(Err(StoreError::Conflict(format!(
                            "{user:?} is a channel's name; a name is a user's or a channel's, \
                             not both"
                        ))));
                        continue;
                    }
                    let mut rec = match old {
                        Some(r) => r,
                        None => UserRecord {
                            user: user.clone(),
                            created: *ts,
                            logins: Vec::new(),
                        },
                    };
                    rec.logins.push(*ts);
                    if rec.logins.len() > MAX_LOGINS_KEPT {
                        let extra = rec.logins.len() - MAX_LOGINS_KEPT;
                        rec.logins.drain(..extra);
                    }
                    let bytes = serde_json::to_vec(&rec)?;
                    users
                        .insert(user.as_str(), bytes.as_slice())
                        .map_err(db_err)?;
                    Ok(Out::User(rec))
                }
                Write::Channel { channel: rec } => {
                    let exists = channels
                        .get(rec.channel.as_str())
                        .map_err(db_err)?
                        .is_some();
                    if exists {
                        Err(StoreError::Conflict(format!(
                            "channel {:?} already exists",
                            rec.channel
                        )))
                    } else if users.get(rec.channel.as_str()).map_err(db_err)?.is_some() {
                        Err(StoreError::Conflict(format!(
                            "{:?} is a user's name; a name is a user's or a channel's, not both",
                            rec.channel
                        )))
                    } else {
                        max_clock = max_clock.max(rec.clock);
                        let bytes = serde_json::to_vec(rec)?;
                        channels
                            .insert(rec.channel.as_str(), bytes.as_slice())
                            .map_err(db_err)?;
                        Ok(Out::Channel(rec.clone()))
                    }
                }
                Write::Append { event: ev } => {
                    let dup = match &ev.client_id {
                        Some(id) => ids
                            .get((ev.user.as_str(), id.as_str()))
                            .map_err(db_err)?
                            .map(|v| v.value()),
                        None => None,
                    };
                    if let Some(seq) = dup {
                        match events.get(seq).map_err(db_err)? {
                            Some(v) => Ok(Out::Appended(Appended {
                                event: decode_event(v.value())?,
                                duplicate: true,
                            })),
                            None => Err(StoreError::NotFound(format!("event {seq} is missing"))),
                        }
                    } else {
                        let target_ok = match ev.kind {
                            EventKind::Publish => {
                                channels.get(ev.target.as_str()).map_err(db_err)?.is_some()
                            }
                            EventKind::Message => {
                                users.get(ev.target.as_str()).map_err(db_err)?.is_some()
                            }
                        };
                        if !target_ok {
                            Err(StoreError::NotFound(match ev.kind {
                                EventKind::Publish => format!("no channel {:?}", ev.target),
                                EventKind::Message => format!("no user {:?}", ev.target),
                            }))
                        } else {
                            let mut ev = ev.clone();
                            max_clock = max_clock.max(ev.clock);
                            ev.seq = fixed_seq.unwrap_or(*next_seq);
                            *next_seq = ev.seq + 1;
                            let bytes = encode_event(&ev)?;
                            events.insert(ev.seq, bytes.as_slice()).map_err(db_err)?;
                            match ev.kind {
                                EventKind::Publish => {
                                    chan_idx
                                        .insert((name_key(&ev.target), ev.seq), ())
                                        .map_err(db_err)?;
                                }
                                EventKind::Message => {
                                    user_idx
                                        .insert((name_key(&ev.user), ev.seq), ())
                                        .map_err(db_err)?;
                                    user_idx
                                        .insert((name_key(&ev.target), ev.seq), ())
                                        .map_err(db_err)?;
                                }
                            }
                            if let Some(id) = &ev.client_id {
                                ids.insert((ev.user.as_str(), id.as_str()), ev.seq)
                                    .map_err(db_err)?;
                            }
                            Ok(Out::Appended(Appended {
                                event: ev,
                                duplicate: false,
                            }))
                        }
                    }
                }
            };
            results.push(r);
        }
        if max_clock > 0 {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let stored = meta.get(CLOCK_KEY).map_err(db_err)?.map(|v| v.value());
            if stored.is_none_or(|s| s < max_clock) {
                meta.insert(CLOCK_KEY, max_clock).map_err(db_err)?;
            }
        }
    }
    if applied != applied_before {
        let mut meta = txn.open_table(META).map_err(db_err)?;
        meta.insert(APPLIED_KEY, applied).map_err(db_err)?;
    }
    txn.commit().map_err(db_err)?;
    Ok((results, max_clock, applied))
}

/// At most `limit` records of a table keyed by name, in name order, after
/// `after` when given (the pages of `users` and `channels`).
fn page<T: serde::de::DeserializeOwned>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<'static, &str, &[u8]>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<T>, StoreError> {
    let t = txn.open_table(table).map_err(db_err)?;
    let rows = match after {
        Some(a) => t.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
        None => t.range::<&str>(..),
    }
    .map_err(db_err)?;
    let mut out = Vec::new();
    for row in rows.take(limit) {
        let (_, v) = row.map_err(db_err)?;
        out.push(serde_json::from_slice(v.value())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Creates channel `name` (at clock 1, no creator).
    async fn add_channel(store: &Store, name: &str) {
        store
            .create_channel(ChannelRecord {
                channel: name.into(),
                creator: None,
                created: 1,
                clock: 1,
            })
            .await
            .expect("channel");
    }

    fn publish(user: &str, channel: &str, msg: &str, id: Option<&str>) -> Event {
        Event {
            seq: 0,
            kind: EventKind::Publish,
            user: user.into(),
            target: channel.into(),
            message: msg.into(),
            timestamp: 1,
            clock: 1,
            client_id: id.map(Into::into),
        }
    }

    /// An index entry under a channel's key that points at another
    /// channel's event (what a hash collision would make) is not history.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_ignores_index_entries_of_other_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("chat.redb"), 16).expect("open");
        for channel in ["a", "b"] {
            add_channel(&store, channel).await;
        }
        let in_a = store
            .append(publish("ann", "a", "for a", None))
            .await
            .expect("a");
        let in_b = store
            .append(publish("ann", "b", "for b", None))
            .await
            .expect("b");
        {
            let txn = store.begin_write();
            {
                let mut idx = txn.open_table(CHANNEL_INDEX).expect("index");
                idx.insert((name_key("a"), in_b.event.seq), ())
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }
        let a = store
            .history(Scope::Channel("a".into()), None, 10)
            .await
            .expect("history");
        assert_eq!(a, vec![in_a.event]);
        let b = store
            .history(Scope::Channel("b".into()), None, 10)
            .await
            .expect("history");
        assert_eq!(b, vec![in_b.event]);
    }

    /// Events stored as JSON (by earlier versions) are read beside events
    /// stored as MessagePack; a record that is neither is an error, not a
    /// panic or a wrong event.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_reads_json_events_of_earlier_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("chat.redb"), 16).expect("open");
        add_channel(&store, "a").await;
        let new = store
            .append(publish("ann", "a", "stored now", None))
            .await
            .expect("append")
            .event;
        let mut old = publish("bob", "a", "stored before", Some("m1"));
        old.seq = new.seq + 1;
        {
            let txn = store.begin_write();
            {
                let mut events = txn.open_table(EVENTS).expect("events");
                let json = serde_json::to_vec(&old).expect("json");
                events.insert(old.seq, json.as_slice()).expect("insert");
                let mut idx = txn.open_table(CHANNEL_INDEX).expect("index");
                idx.insert((name_key("a"), old.seq), ()).expect("insert");
            }
            txn.commit().expect("commit");
        }
        let got = store
            .history(Scope::Channel("a".into()), None, 10)
            .await
            .expect("history");
        assert_eq!(got, vec![new.clone(), old.clone()]);
        assert!(
            encode_event(&new).expect("encode").len()
                < serde_json::to_vec(&new).expect("json").len()
        );
        {
            let txn = store.begin_write();
            {
                let mut events = txn.open_table(EVENTS).expect("events");
                events.insert(new.seq, &[0xc1u8, 0xff][..]).expect("insert");
            }
            txn.commit().expect("commit");
        }
        let err = store
            .history(Scope::Channel("a".into()), None, 10)
            .await
            .expect_err("a broken record");
        assert!(matches!(err, StoreError::Record(_)), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_many_concurrent_writes_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chat.redb");
        {
            let store = Store::open(&path, 1024).expect("open");
            store.login("ann", 5).await.expect("login");
            add_channel(&store, "room").await;
            let mut tasks = Vec::new();
            for i in 0..500 {
                let s = store.clone();
                tasks.push(tokio::spawn(async move {
                    s.append(publish("ann", "room", &format!("m{i}"), None))
                        .await
                }));
            }
            let mut seqs = Vec::new();
            for t in tasks {
                seqs.push(t.await.expect("join").expect("append").event.seq);
            }
            seqs.sort_unstable();
            seqs.dedup();
            assert_eq!(seqs.len(), 500);
            // Group commit: 502 writes, fewer transactions (the first append
            // finds the writer idle; the others queue behind its commit).
            assert!(store.commits() < 502, "commits: {}", store.commits());
            // Refusals do not spoil a batch.
            let dup = store
                .create_channel(ChannelRecord {
                    channel: "room".into(),
                    creator: None,
                    created: 2,
                    clock: 2,
                })
                .await;
            assert!(matches!(dup, Err(StoreError::Conflict(_))));
            let missing = store.append(publish("ann", "nowhere", "x", None)).await;
            assert!(matches!(missing, Err(StoreError::NotFound(_))));
        }
        // The writer thread lets go of the file once its queue is dropped.
        let store = loop {
            match Store::open(&path, 16) {
                Ok(s) => break s,
                Err(_) => tokio::task::yield_now().await,
            }
        };
        assert_eq!(store.event_count().await.expect("count"), 500);
        let all = store
            .history(Scope::Channel("room".into()), None, 1000)
            .await
            .expect("history");
        assert_eq!(all.len(), 500);
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        let next = store
            .append(publish("ann", "room", "after", Some("c1")))
            .await
            .expect("append");
        assert_eq!(next.event.seq, 501);
        let again = store
            .append(publish("ann", "room", "after", Some("c1")))
            .await
            .expect("append");
        assert!(again.duplicate);
        assert_eq!(again.event.seq, 501);
        let u = store.user("ann").await.expect("user").expect("ann");
        assert_eq!(u.logins, vec![5]);
    }

    /// A backup taken while writes go on is one commit's state: a store
    /// that opens, whose events are a prefix of the log with their indexes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_of_a_busy_store_is_consistent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("chat.redb"), 8).expect("open");
        add_channel(&store, "room").await;
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..2000 {
                    store
                        .append(publish("ann", "room", &format!("m{i}"), None))
                        .await
                        .expect("append");
                }
            })
        };
        let dest = dir.path().join("copy.redb");
        let made = store.backup(&dest).await.expect("backup");
        assert_eq!(made.path, dest);
        assert_eq!(made.bytes, std::fs::metadata(&dest).expect("stat").len());
        assert_eq!(made.channels, 1);
        assert!(matches!(
            store.backup(&dest).await,
            Err(StoreError::Exists { .. })
        ));
        writer.await.expect("join");
        let report = Store::check(&dest).expect("the copy checks");
        assert!(!report.repaired);
        assert_eq!(report.channels, 1);
        let copy = Store::open(&dest, 8).expect("the copy opens");
        let n = copy.event_count().await.expect("count");
        let all = copy
            .history(Scope::Channel("room".into()), None, 5000)
            .await
            .expect("history");
        assert_eq!(all.len() as u64, n);
        assert!(all.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));
        assert_eq!((made.events, made.last_seq), (n, n));
        store.close(0).expect("close");
        copy.close(0).expect("close");
    }

    /// A closed store refuses operations, records the clock it is given,
    /// and reopens without repair above that clock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_records_the_clock_and_reopens_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chat.redb");
        let store = Store::open(&path, 8).expect("open");
        add_channel(&store, "room").await;
        let mut ev = publish("ann", "room", "x", None);
        ev.clock = 40;
        store.append(ev).await.expect("append");
        assert_eq!(store.stored_clock(), 40);
        store.close(77).expect("close");
        store.close(90).expect("closing twice does nothing");
        assert!(matches!(store.channels().await, Err(StoreError::Closed)));
        assert!(matches!(store.login("x", 1).await, Err(StoreError::Closed)));
        let report = Store::check(&path).expect("check");
        assert!(!report.repaired);
        assert_eq!((report.events, report.clock), (1, 77));
        let again = Store::open(&path, 8).expect("reopen");
        assert_eq!(again.stored_clock(), 77);
        again.close(0).expect("close");
    }

    /// Replicated entries: events take the entry's sequence as `seq`, the
    /// same rules decide at apply time, skipped entries and refusals still
    /// advance the applied sequence, which survives a reopen; an entry at
    /// or below it is not applied again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicated_entries_apply_at_their_sequence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chat.redb");
        let store = Store::open(&path, 16).expect("open");
        let channel = |name: &str| Write::Channel {
            channel: ChannelRecord {
                channel: name.into(),
                creator: None,
                created: 1,
                clock: 1,
            },
        };
        let append = |id: Option<&str>| Write::Append {
            event: publish("ann", "room", "hi", id),
        };
        // Queued back to back: one batch, answered in order.
        let rxs = vec![
            store.apply_replicated(3, Some(channel("room"))),
            store.apply_replicated(4, Some(channel("room"))),
            store.apply_replicated(5, None),
            store.apply_replicated(7, Some(append(Some("k")))),
            store.apply_replicated(8, Some(append(Some("k")))),
            store.apply_replicated(8, Some(append(None))),
        ];
        let mut got = Vec::new();
        for rx in rxs {
            got.push(rx.await.expect("answered"));
        }
        assert!(matches!(got[0], Ok(Written::Channel(_))));
        assert!(matches!(got[1], Err(StoreError::Conflict(_))));
        assert!(matches!(got[2], Err(StoreError::NotFound(_))));
        match (&got[3], &got[4]) {
            (Ok(Written::Appended(a)), Ok(Written::Appended(b))) => {
                assert_eq!((a.event.seq, a.duplicate), (7, false));
                assert_eq!((b.event.seq, b.duplicate), (7, true));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(got[5], Err(StoreError::Conflict(_))),
            "already applied"
        );
        assert_eq!(store.applied_seq(), 8);
        assert_eq!(store.last_seq().await.expect("last"), 7);
        store.close(0).expect("close");
        let again = Store::open(&path, 16).expect("reopen");
        assert_eq!(again.applied_seq(), 8);
        let next = again
            .apply_replicated(9, Some(append(None)))
            .await
            .expect("answered");
        assert!(matches!(next, Ok(Written::Appended(a)) if a.event.seq == 9));
        again.close(0).expect("close");
    }

    /// Replicated entries are committed unsynced, then synced within
    /// REPLICATED_SYNC_EVERY even when nothing else comes: a copy of the
    /// file taken after that (what a crash would leave) holds them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unsynced_replicated_entries_are_synced_when_the_writer_idles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chat.redb");
        let store = Store::open(&path, 16).expect("open");
        let rxs = [1, 2, 3].map(|seq| {
            store.apply_replicated(
                seq,
                Some(Write::Channel {
                    channel: ChannelRecord {
                        channel: format!("room{seq}"),
                        creator: None,
                        created: 1,
                        clock: 1,
                    },
                }),
            )
        });
        for rx in rxs {
            assert!(matches!(rx.await, Ok(Ok(Written::Channel(_)))));
        }
        tokio::time::sleep(REPLICATED_SYNC_EVERY * 4).await;
        let crashed = dir.path().join("crashed.redb");
        std::fs::copy(&path, &crashed).expect("copy");
        let image = Store::open(&crashed, 16).expect("open the copy");
        assert_eq!(image.applied_seq(), 3);
        assert_eq!(image.channels().await.expect("channels").len(), 3);
        image.close(0).expect("close the copy");
        store.close(0).expect("close");
    }

    /// A user name and a channel name never coincide.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_is_a_users_or_a_channels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("chat.redb"), 8).expect("open");
        store.login("ann", 1).await.expect("login");
        add_channel(&store, "room").await;
        let squat = store
            .create_channel(ChannelRecord {
                channel: "ann".into(),
                creator: None,
                created: 1,
                clock: 1,
            })
            .await;
        assert!(matches!(squat, Err(StoreError::Conflict(_))));
        assert!(matches!(
            store.login("room", 2).await,
            Err(StoreError::Conflict(_))
        ));
        store.login("ann", 3).await.expect("ann again");
        store.close(0).expect("close");
    }
}
