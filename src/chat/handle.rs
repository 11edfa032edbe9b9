//! [`Chat`]: the handle on a node's chat (store, hub, clock, settings).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::{
    services, BackupReport, ChatError, ChatSettings, Event, EventKind, Hub, Store, StoreError,
    Topic, Write, WriteError, WriteLog, Written,
};
use crate::clock::{now_ms, LamportClock, WallClock};
use crate::metrics::Metrics;
use crate::rpc::{Push, Registry};

struct Inner {
    store: Store,
    hub: Hub,
    clock: LamportClock,
    /// The wall clock of every `timestamp` the chat stamps (corrected by the
    /// cluster's clock synchronisation).
    wall_clock: WallClock,
    config: ChatSettings,
    metrics: Option<Arc<Metrics>>,
    /// Largest reply body the transports carry (list replies stay below).
    reply_limit: AtomicUsize,
    /// Where [`Chat::backup`] writes.
    backup_dir: PathBuf,
    /// The `<n>` of the last backup's name.
    backup_seq: AtomicU64,
    /// One backup at a time.
    backup_lock: tokio::sync::Mutex<()>,
    /// The log writes go through instead of the store (cluster mode).
    log: std::sync::OnceLock<Arc<dyn WriteLog>>,
}

/// Names tried for one backup before giving up (each taken already).
const BACKUP_NAME_TRIES: u32 = 1000;

/// A backup's file name: `chat-<YYYYMMDD>T<HHMMSS>Z-<n>.redb`, UTC.
fn backup_name(unix_ms: u64, n: u64) -> String {
    let secs = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "chat-{:04}{:02}{:02}T{:02}{:02}{:02}Z-{n}.redb",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The chat of one node: store, hub, clock and services. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat").finish_non_exhaustive()
    }
}

impl Chat {
    /// Opens the store at `<data_dir>/chat.redb` and builds the hub. The
    /// clock starts at the highest clock the store holds, so it never goes
    /// back across a restart.
    pub fn open(
        config: &ChatSettings,
        data_dir: &Path,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Chat, ChatError> {
        let store = Store::open(&data_dir.join("chat.redb"), config.commit_batch_max)?;
        let hub = Hub::new(metrics.clone(), config.rate_per_second, config.rate_burst);
        let chat = Chat {
            inner: Arc::new(Inner {
                store,
                hub,
                clock: LamportClock::new(),
                wall_clock: WallClock::new(),
                config: config.clone(),
                metrics,
                reply_limit: AtomicUsize::new(crate::rpc::RpcSettings::default().max_frame_bytes),
                backup_dir: config.backup_dir_in(data_dir),
                backup_seq: AtomicU64::new(0),
                backup_lock: tokio::sync::Mutex::new(()),
                log: std::sync::OnceLock::new(),
            }),
        };
        chat.inner.clock.advance_to(chat.inner.store.stored_clock());
        // Pushes go out from the commit: one fan-out per group commit, in
        // `seq` order, before the writes are acknowledged. Weak: the store
        // (which holds the hook) must not keep the chat alive.
        let weak = Arc::downgrade(&chat.inner);
        chat.inner.store.on_commit(Box::new(move |events| {
            if let Some(inner) = weak.upgrade() {
                Chat { inner }.fan_out(events);
            }
        }));
        Ok(chat)
    }

    /// Counts the events a commit stored and pushes them to the subscribers
    /// of their topics, each subscriber getting its share in one batch.
    fn fan_out(&self, events: &[&Event]) {
        let inner = &self.inner;
        let now = inner.wall_clock.now_ms();
        let pushes = events
            .iter()
            .map(|ev| {
                if let Some(m) = &inner.metrics {
                    let label = match ev.kind {
                        EventKind::Publish => "publish",
                        EventKind::Message => "message",
                    };
                    m.chat_messages.with_label_values(&[label]).inc();
                }
                // The event's fields, its own clock as `event_clock`, and
                // the node's time and clock at sending.
                let data = ev.data(now, inner.clock.tick(), Some(ev.clock));
                let topic = match ev.kind {
                    EventKind::Publish => Topic::Channel(ev.target.clone()),
                    EventKind::Message => Topic::Private(ev.target.clone()),
                };
                (topic, Push::from_serialize(ev.target.clone(), data))
            })
            .collect();
        inner.hub.publish_to(pushes);
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The node's Lamport clock.
    pub fn clock(&self) -> &LamportClock {
        &self.inner.clock
    }

    /// The node's wall clock: every `timestamp` the chat stamps reads it.
    /// A clustered node's clock synchronisation corrects it (and its
    /// `[cluster] clock_skew_ms`, a test setting, skews it); alone, it is
    /// the OS clock.
    pub fn wall_clock(&self) -> &WallClock {
        &self.inner.wall_clock
    }

    /// The chat services, `login`, `logout`, `users`, `channel`, `channels`,
    /// `subscribe`, `unsubscribe`, `publish`, `message`, `history` and
    /// `store_backup` (loopback callers only).
    pub fn services(&self) -> Registry {
        let mut r = Registry::new();
        self.register_into(&mut r);
        r
    }

    /// Registers the chat services into `registry` (a name already there is
    /// left alone).
    pub fn register_into(&self, registry: &mut Registry) {
        services::register_into(self, registry);
    }

    /// Writes a consistent copy of the store (see [`Store::backup`]) into
    /// the backup directory (`[chat] backup_dir`, default
    /// `<data_dir>/backups`, created when needed), under a name of its own,
    /// `chat-<YYYYMMDD>T<HHMMSS>Z-<n>.redb` (UTC; `n` counts this node's
    /// backups), never overwriting a file. One backup runs at a time.
    pub async fn backup(&self) -> Result<BackupReport, StoreError> {
        let inner = &self.inner;
        let _one = inner.backup_lock.lock().await;
        let dir = inner.backup_dir.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(dir))
            .await
            .map_err(|_| StoreError::Closed)??;
        for _ in 0..BACKUP_NAME_TRIES {
            let n = inner.backup_seq.fetch_add(1, Ordering::Relaxed) + 1;
            let dest = inner.backup_dir.join(backup_name(now_ms(), n));
            match inner.store.backup(&dest).await {
                Err(StoreError::Exists { .. }) => continue,
                r => return r,
            }
        }
        Err(StoreError::Conflict(format!(
            "no free backup file name in {} after {BACKUP_NAME_TRIES} tries",
            inner.backup_dir.display()
        )))
    }

    /// The directory [`Chat::backup`] writes into.
    pub fn backup_dir(&self) -> &Path {
        &self.inner.backup_dir
    }

    /// Sends the chat's writes through `log` from now on instead of
    /// straight to the store (set once, before the listeners start; false
    /// if a log was set already).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn set_log(&self, log: Arc<dyn WriteLog>) -> bool {
        self.inner.log.set(log).is_ok()
    }

    /// Whether the writes go through a replicated log.
    pub fn replicated(&self) -> bool {
        self.inner.log.get().is_some()
    }

    /// Applies a write: through the installed log when there is one, else
    /// straight to the store.
    pub async fn write(&self, write: Write) -> Result<Written, WriteError> {
        match self.inner.log.get() {
            Some(log) => log.submit(write).await,
            None => Ok(self.inner.store.write_local(write).await?),
        }
    }

    /// `Err(why)` when this node's state must not be served as whole (its
    /// log no longer holds entries this node needs).
    pub(crate) fn readable(&self) -> Result<(), String> {
        match self.inner.log.get() {
            Some(log) => log.readable(),
            None => Ok(()),
        }
    }

    /// The chat settings.
    pub(crate) fn settings(&self) -> &ChatSettings {
        &self.inner.config
    }

    /// Sets the largest reply body the node's transports carry (its RPC
    /// frame limit): `users`, `channels` and `history` replies stay below.
    pub fn set_reply_limit(&self, bytes: usize) {
        self.inner.reply_limit.store(bytes, Ordering::Relaxed);
    }

    /// The largest reply body (see [`Chat::set_reply_limit`]).
    pub(crate) fn reply_limit(&self) -> usize {
        self.inner.reply_limit.load(Ordering::Relaxed)
    }

    /// Closes the store cleanly, recording the node's clock in it (the node
    /// calls this at shutdown, once the listeners are gone). Later chat
    /// writes and reads fail.
    pub async fn close(&self) -> Result<(), ChatError> {
        let store = self.inner.store.clone();
        let clock = self.inner.clock.now();
        tokio::task::spawn_blocking(move || store.close(clock))
            .await
            .map_err(|_| super::StoreError::Closed)??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::backup_name;

    #[test]
    fn backup_names_are_utc_stamped_and_numbered() {
        // 2024-02-29T23:59:58.5Z
        assert_eq!(
            backup_name(1_709_251_198_500, 7),
            "chat-20240229T235958Z-7.redb"
        );
        assert_eq!(backup_name(0, 1), "chat-19700101T000000Z-1.redb");
    }
}
