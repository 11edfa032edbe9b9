//! [`FileCache`]: the handle on the cache of a docroot's files.

use super::backend::Resolved;
use super::file::{cache_key, compressible, file_id, gzip, ns_since_epoch, strip_gz};
use super::{front, CacheBackend, CacheSettings, CachedFile, OUTCOME_HIT, OUTCOME_MISS};
use crate::metrics::Metrics;
use bytes::Bytes;
use moka::notification::RemovalCause;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The `cache` label of the file cache's metrics.
const LABEL: &str = "file";

/// What a [`FileCache`] works with: the docroot and `[cache]`.
#[derive(Debug, Clone)]
pub(crate) struct FileCacheSettings {
    /// The directory served.
    pub(crate) docroot: PathBuf,
    /// Most bytes held (contents and gzip variants).
    pub(crate) max_bytes: u64,
    /// Largest file cached; larger files are streamed from disk.
    pub(crate) max_file_bytes: u64,
    /// Smallest compressible file given a gzip variant.
    pub(crate) gzip_min_bytes: u64,
    /// How long an entry is served without checking its file (zero: checked
    /// on every request).
    pub(crate) revalidate: Duration,
}

impl FileCacheSettings {
    pub(super) fn new(docroot: PathBuf, c: &CacheSettings) -> Self {
        FileCacheSettings {
            docroot,
            max_bytes: c.max_bytes,
            max_file_bytes: c.max_file_bytes,
            gzip_min_bytes: c.gzip_min_bytes,
            revalidate: Duration::from_millis(c.revalidate_ms),
        }
    }
}

/// The cache of the files under a docroot. Cheap to clone: clones share it.
#[derive(Clone)]
pub struct FileCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// Tells this cache's entries from another's in a thread's [`front`].
    id: u64,
    /// Keyed by the path's bytes: hashing them is one pass, where a
    /// `Path` hashes component by component.
    cache: moka::sync::Cache<Box<[u8]>, Arc<CachedFile>>,
    docroot: PathBuf,
    /// The canonical docroot, once it exists.
    root: OnceLock<PathBuf>,
    max_file_bytes: u64,
    gzip_min_bytes: u64,
    /// [`FileCacheSettings::revalidate`] in ns.
    revalidate_ns: u64,
    metrics: Option<Arc<Metrics>>,
    /// The hit and miss counters of this cache, looked up once.
    counters: Option<(
        crate::metrics::ShardedCounter,
        crate::metrics::ShardedCounter,
    )>,
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("docroot", &self.inner.docroot)
            .field("entries", &self.inner.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl FileCache {
    /// A cache of the files under `docroot`, bounded by `settings`,
    /// counting hits, misses, evictions and size in `metrics` (if given).
    pub fn new(
        docroot: impl Into<PathBuf>,
        settings: &CacheSettings,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self::with_settings(FileCacheSettings::new(docroot.into(), settings), metrics)
    }

    pub(crate) fn with_settings(
        settings: FileCacheSettings,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let listener_metrics = metrics.clone();
        let cache = moka::sync::Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(|_, v: &Arc<CachedFile>| u32::try_from(v.weight()).unwrap_or(u32::MAX))
            .eviction_listener(move |_, v: Arc<CachedFile>, cause| {
                v.retired.store(true, Ordering::Relaxed);
                if let Some(m) = &listener_metrics {
                    m.cache_bytes
                        .with_label_values(&[LABEL])
                        .sub(i64::try_from(v.weight()).unwrap_or(i64::MAX));
                    m.cache_entries.with_label_values(&[LABEL]).dec();
                    if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                        m.cache_evictions.with_label_values(&[LABEL]).inc();
                    }
                }
            })
            .build();
        static IDS: AtomicU64 = AtomicU64::new(0);
        let inner = Inner {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            cache,
            docroot: settings.docroot,
            root: OnceLock::new(),
            max_file_bytes: settings.max_file_bytes,
            gzip_min_bytes: settings.gzip_min_bytes,
            revalidate_ns: u64::try_from(settings.revalidate.as_nanos()).unwrap_or(u64::MAX),
            counters: metrics.as_ref().map(|m| {
                (
                    m.cache_hits.with_label_values(&[LABEL]),
                    m.cache_misses.with_label_values(&[LABEL]),
                )
            }),
            metrics,
        };
        FileCache {
            inner: Arc::new(inner),
        }
    }

    /// The directory served (as configured).
    pub fn docroot(&self) -> &Path {
        &self.inner.docroot
    }

    /// Entries held (after pending maintenance).
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.run_pending_tasks();
        self.inner.cache.entry_count()
    }

    /// Bytes held (after pending maintenance).
    pub fn weighted_size(&self) -> u64 {
        self.inner.cache.run_pending_tasks();
        self.inner.cache.weighted_size()
    }

    /// Empties the cache.
    pub fn clear(&self) {
        self.inner.cache.invalidate_all();
        self.inner.cache.run_pending_tasks();
    }

    /// Runs the cache's pending maintenance (evictions, listeners).
    pub fn run_maintenance(&self) {
        self.inner.cache.run_pending_tasks();
    }

    /// A backend that records its hits and misses in `outcome` instead of
    /// counting them (`OUTCOME_*`: the request's caller counts once).
    pub(crate) fn backend_recording(&self, outcome: Arc<AtomicU8>) -> CacheBackend {
        CacheBackend {
            cache: self.clone(),
            outcome: Some(outcome),
        }
    }

    /// The canonical docroot, if the docroot exists.
    pub(super) fn root(&self) -> Option<&Path> {
        if let Some(r) = self.inner.root.get() {
            return Some(r);
        }
        let canonical = std::fs::canonicalize(&self.inner.docroot).ok()?;
        if !canonical.is_dir() {
            return None;
        }
        Some(self.inner.root.get_or_init(|| canonical))
    }

    /// Counts a cache hit or miss.
    pub(crate) fn count(&self, hit: bool) {
        if let Some((hits, misses)) = &self.inner.counters {
            if hit {
                hits.inc();
            } else {
                misses.inc();
            }
        }
    }

    /// Counts a hit or miss, or records it in `outcome` (a miss outranks a
    /// hit) for the caller to count once per request.
    pub(super) fn note(&self, outcome: Option<&AtomicU8>, hit: bool) {
        match outcome {
            Some(o) => {
                o.fetch_max(
                    if hit { OUTCOME_HIT } else { OUTCOME_MISS },
                    Ordering::Relaxed,
                );
            }
            None => self.count(hit),
        }
    }

    /// `f` of the entry cached under `path` (a file path under the docroot,
    /// as `ServeDir` builds it), if the path still leads to the same
    /// version of the same file: one stat, unless the entry was found
    /// unchanged less than the revalidation interval ago. That file was
    /// checked to be inside the docroot when it was cached, and any change
    /// to it (a write, a rename, a new link, a symlink turned to another
    /// file) changes its identity, so a stale or escaping entry is never
    /// given once checked. `now` is the request's start (one clock read
    /// less). The entry comes from this thread's [`front`] when it can.
    pub(crate) fn with_fresh<R>(
        &self,
        path: &Path,
        now: Instant,
        f: impl FnOnce(&CachedFile) -> Option<R>,
    ) -> Option<R> {
        let key = cache_key(path);
        let cache = &self.inner.cache;
        front::with_entry(
            self.inner.id,
            key,
            || cache.get(key),
            || drop(cache.get(key)),
            |entry| self.is_fresh(entry, path, now).then(|| f(entry)).flatten(),
        )
    }

    /// See [`FileCache::with_fresh`].
    pub(super) fn is_fresh(&self, entry: &CachedFile, path: &Path, now: Instant) -> bool {
        let revalidate = self.inner.revalidate_ns;
        let now = if revalidate > 0 {
            ns_since_epoch(now)
        } else {
            0
        };
        if revalidate > 0 && now.saturating_sub(entry.checked.load(Ordering::Relaxed)) < revalidate
        {
            return true;
        }
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        if !(meta.is_file() && entry.is_current(&meta)) {
            return false;
        }
        if revalidate > 0 {
            entry.checked.store(now, Ordering::Relaxed);
        }
        true
    }

    /// Resolves `path` (built by ServeDir under the docroot) to a directory,
    /// a cached file, or a large file to stream. A `.gz` path that does not
    /// exist names the gzip variant of the file without the suffix.
    pub(super) async fn resolve(
        &self,
        path: PathBuf,
        outcome: Option<&AtomicU8>,
    ) -> io::Result<Resolved> {
        let not_found = || io::Error::from(io::ErrorKind::NotFound);
        let Some(root) = self.root().map(Path::to_path_buf) else {
            return Err(not_found());
        };
        if path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        match self.resolve_plain(&root, &path, outcome).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(base) = strip_gz(&path) else {
                    return Err(e);
                };
                match self.resolve_plain(&root, &base, outcome).await? {
                    Resolved::Cached(entry, false) if entry.gzip.is_some() => {
                        Ok(Resolved::Cached(entry, true))
                    }
                    _ => Err(not_found()),
                }
            }
            other => other,
        }
    }

    pub(super) async fn resolve_plain(
        &self,
        root: &Path,
        path: &Path,
        outcome: Option<&AtomicU8>,
    ) -> io::Result<Resolved> {
        // Blocking calls, on purpose: stat and realpath of a cached dentry
        // take microseconds, far less than a hop to the blocking pool.
        //
        // One stat: the entry cached under this very path, when the path
        // still leads to the same version of the same file (see `fresh`).
        let meta = std::fs::metadata(path)?;
        if meta.is_file() {
            if let Some(entry) = self.inner.cache.get(cache_key(path)) {
                if entry.is_current(&meta) {
                    self.note(outcome, true);
                    return Ok(Resolved::Cached(entry, false));
                }
            }
        }
        let real = std::fs::canonicalize(path)?;
        if !real.starts_with(root) {
            tracing::warn!(path = %path.display(), "refused: resolves outside the docroot");
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        let meta = std::fs::metadata(&real)?;
        let modified = meta.modified()?;
        if meta.is_dir() {
            return Ok(Resolved::Dir(modified));
        }
        if !meta.is_file() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        if meta.len() > self.inner.max_file_bytes {
            return Ok(Resolved::Disk(real, modified, meta.len()));
        }
        self.note(outcome, false);
        let gzip_min = self.inner.gzip_min_bytes;
        let id = file_id(&meta);
        let named = path.to_path_buf();
        let size = usize::try_from(meta.len()).unwrap_or(0);
        let entry = tokio::task::spawn_blocking(move || -> io::Result<CachedFile> {
            let mut file = std::fs::File::open(&real)?;
            // The version read: sendfile may use the file only while it
            // stays this one (see `CachedFile::read_from`).
            let read = file.metadata().ok().and_then(|m| file_id(&m));
            let mut bytes = Vec::with_capacity(size);
            io::Read::read_to_end(&mut file, &mut bytes)?;
            let gzip = if bytes.len() as u64 >= gzip_min && compressible(&real) {
                gzip(&bytes)?.filter(|g| g.len() < bytes.len() / 10 * 9)
            } else {
                None
            };
            Ok(CachedFile::new(
                &named,
                Bytes::from(bytes),
                gzip.map(Bytes::from),
                modified,
                id,
            )
            .read_from(file, read))
        })
        .await
        .map_err(io::Error::other)??;
        if entry.len != meta.len() {
            // Changed while read: serve what was read, cache nothing.
            return Ok(Resolved::Cached(Arc::new(entry), false));
        }
        let entry = Arc::new(entry);
        if let Some(m) = &self.inner.metrics {
            m.cache_bytes
                .with_label_values(&[LABEL])
                .add(i64::try_from(entry.weight()).unwrap_or(i64::MAX));
            m.cache_entries.with_label_values(&[LABEL]).inc();
        }
        self.inner
            .cache
            .insert(Box::from(cache_key(path)), entry.clone());
        Ok(Resolved::Cached(entry, false))
    }
}
