//! The static file cache: `cache_sup` / `file_cache`.
//!
//! [`FileCache`] is a moka cache bounded in bytes (a weigher) of the files
//! under a docroot: each entry holds the file's bytes, a gzip variant made
//! once when the file is cached (for text-like files that shrink), the
//! headers of its answers (Content-Type, ETag, Last-Modified, ...) made
//! once too, and the identity of the version read: device, inode, ctime,
//! mtime and size. Every lookup stats the file (one syscall on a cached
//! dentry) and reads it again when any of these changed, so a file changed
//! on disk is served fresh; the ctime, which every write, rename, link and
//! chmod updates and no user can set back, catches a rewrite that keeps
//! the size and restores the mtime.
//!
//! The static files' fast path answers a plain request of a cached,
//! unchanged file straight from its entry ([`FileCache`]'s `fresh`); for
//! everything else the cache is the backend of tower-http's `ServeDir`
//! ([`CacheBackend`]), which does the HTTP semantics (ETag and Last-Modified
//! from the entry's mtime and size, 304, Range, MIME types, index.html).
//!
//! Lookups go straight to the shared cache, not through an actor's mailbox
//! (one mailbox would serialise every request of every connection); the
//! `file_cache` actor under `cache_sup` owns the cache's life cycle: it
//! empties it when (re)started, runs moka's pending maintenance (evictions,
//! the size gauges) once a second, and answers [`FileCacheMsg`] requests.
//!
//! Nothing outside the docroot is read: a path is canonicalised (symlinks
//! resolved) and must stay under the canonical docroot before its file is
//! cached; a later hit on the same path takes the entry only while the path
//! still leads to the same version of the same file, so a symlink turned to
//! point elsewhere (even to the same inode through a new hard link outside
//! the docroot, which changes the ctime) is checked again.

mod front;
mod settings;

pub use settings::CacheSettings;

use crate::metrics::Metrics;
use crate::supervisor::{ChildSpec, Strategy, SupervisorFlags, SupervisorSpec};
use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    LAST_MODIFIED, VARY,
};
use moka::notification::RemovalCause;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::future::Future;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tower_http::services::fs::{Backend, File as BackendFile, Metadata as BackendMetadata};

/// The `cache` label of the file cache's metrics.
const LABEL: &str = "file";

/// Bytes counted for an entry on top of its contents (key, bookkeeping).
const ENTRY_OVERHEAD: u64 = 256;

/// Bytes counted for each per-thread copy of an entry's headers and bytes
/// handle (the copy's slot, header map and values, the handle's owner).
const VIEW_OVERHEAD: usize = 512;

/// How often the `file_cache` actor runs the cache's pending maintenance.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

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
    fn new(docroot: PathBuf, c: &CacheSettings) -> Self {
        FileCacheSettings {
            docroot,
            max_bytes: c.max_bytes,
            max_file_bytes: c.max_file_bytes,
            gzip_min_bytes: c.gzip_min_bytes,
            revalidate: Duration::from_millis(c.revalidate_ms),
        }
    }
}

/// One cached file, with the headers of its responses made once.
pub(crate) struct CachedFile {
    bytes: Bytes,
    gzip: Option<Bytes>,
    modified: SystemTime,
    len: u64,
    /// Device, inode and change time of the file read.
    id: Option<FileId>,
    /// The headers of a 200 answer with the bytes, and with the gzip
    /// variant (`None` for an mtime before the epoch, which has no ETag:
    /// such an entry is not served on the fast path).
    headers: Option<HeaderMap>,
    gzip_headers: Option<HeaderMap>,
    /// When the file was last found unchanged, in ns since [`epoch`].
    checked: AtomicU64,
    /// Set once the entry has left the cache (see [`front`]).
    retired: AtomicBool,
    /// Per-thread copies of the headers and bytes handles the fast path
    /// clones for every answer (see [`crate::util::shard`]): the plain
    /// representation's for each shard, then the gzip variant's.
    views: Box<[OnceLock<(HeaderMap, Bytes)>]>,
}

/// What identifies one version of a file: device, inode, and the change
/// time (ctime), which the kernel updates on every write, rename, link or
/// chmod and no user can set back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
}

/// One representation of a cached file: its bytes and the headers of a
/// 200 answer with them.
pub(crate) struct Representation<'a> {
    /// The bytes.
    bytes: &'a Bytes,
    /// `Content-Type`, `Accept-Ranges`, `Content-Encoding` (for the gzip
    /// variant), `Vary`, `Last-Modified`, `ETag`, `Content-Length`: those
    /// tower-http's `ServeDir` gives, with the same values.
    headers: &'a HeaderMap,
    /// This thread's copies of both.
    view: &'a OnceLock<(HeaderMap, Bytes)>,
}

impl Representation<'_> {
    /// The headers and bytes of an answer, from this thread's copies: the
    /// same values as the entry's, whose reference counts no other thread
    /// writes (the copy of the bytes shares their memory).
    pub(crate) fn parts(&self) -> (HeaderMap, Bytes) {
        let (headers, bytes) = self.view.get_or_init(|| {
            let mut own = HeaderMap::with_capacity(self.headers.len());
            for (name, value) in self.headers {
                let copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or(value.clone());
                own.insert(name.clone(), copy);
            }
            (own, Bytes::from_owner(self.bytes.clone()))
        });
        (headers.clone(), bytes.clone())
    }
}

impl CachedFile {
    fn new(
        path: &Path,
        bytes: Bytes,
        gzip: Option<Bytes>,
        modified: SystemTime,
        id: Option<FileId>,
    ) -> Self {
        let content_type = mime_guess::from_path(path).first_raw().map_or(
            HeaderValue::from_static("application/octet-stream"),
            HeaderValue::from_static,
        );
        let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(modified))
            .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
        let headers_of = |len: usize, gzip: bool| -> Option<HeaderMap> {
            let mut h = HeaderMap::with_capacity(8);
            h.insert(CONTENT_TYPE, content_type.clone());
            h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            if gzip {
                h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            h.insert(VARY, HeaderValue::from_static("accept-encoding"));
            h.insert(LAST_MODIFIED, last_modified.clone());
            h.insert(ETAG, etag_of(modified, len as u64)?);
            h.insert(CONTENT_LENGTH, HeaderValue::from(len));
            Some(h)
        };
        let headers = headers_of(bytes.len(), false);
        let gzip_headers = gzip.as_ref().and_then(|g| headers_of(g.len(), true));
        CachedFile {
            checked: AtomicU64::new(since_epoch()),
            retired: AtomicBool::new(false),
            len: bytes.len() as u64,
            bytes,
            gzip,
            modified,
            id,
            headers,
            gzip_headers,
            views: (0..2 * crate::util::shard::copies())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// True when `meta` (of the path this entry is cached under) is the
    /// same file, unchanged.
    fn is_current(&self, meta: &std::fs::Metadata) -> bool {
        self.id.is_some()
            && self.id == file_id(meta)
            && self.len == meta.len()
            && meta.modified().is_ok_and(|m| m == self.modified)
    }

    /// The representation to send: the gzip variant if there is one and
    /// `gzip` asks for it, else the bytes. `None` when it has no ETag.
    pub(crate) fn representation(&self, gzip: bool) -> Option<Representation<'_>> {
        let copies = self.views.len() / 2;
        let shard = crate::util::shard::index() % copies;
        match (&self.gzip, &self.gzip_headers) {
            (Some(bytes), Some(headers)) if gzip => Some(Representation {
                bytes,
                headers,
                view: &self.views[copies + shard],
            }),
            _ => Some(Representation {
                bytes: &self.bytes,
                headers: self.headers.as_ref()?,
                view: &self.views[shard],
            }),
        }
    }

    /// True when the entry has a gzip variant.
    pub(crate) fn has_gzip(&self) -> bool {
        self.gzip.is_some()
    }

    fn weight(&self) -> u64 {
        let views = self.views.len() * VIEW_OVERHEAD;
        self.bytes.len() as u64
            + self.gzip.as_ref().map_or(0, |g| g.len() as u64)
            + ENTRY_OVERHEAD
            + views as u64
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

    /// The `cache_sup` subtree: a one_for_one supervisor of the `file_cache`
    /// actor that owns this cache's life cycle.
    pub fn supervisor_spec(&self) -> ChildSpec {
        ChildSpec::supervisor(
            "cache_sup",
            SupervisorSpec::new("cache_sup")
                .flags(
                    SupervisorFlags::new(Strategy::OneForOne).intensity(5, Duration::from_secs(10)),
                )
                .child(ChildSpec::worker(
                    "file_cache",
                    FileCacheActor,
                    self.clone(),
                )),
        )
    }

    /// The canonical docroot, if the docroot exists.
    fn root(&self) -> Option<&Path> {
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
    fn note(&self, outcome: Option<&AtomicU8>, hit: bool) {
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
    fn is_fresh(&self, entry: &CachedFile, path: &Path, now: Instant) -> bool {
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
    async fn resolve(&self, path: PathBuf, outcome: Option<&AtomicU8>) -> io::Result<Resolved> {
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

    async fn resolve_plain(
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
        let entry = tokio::task::spawn_blocking(move || -> io::Result<CachedFile> {
            let bytes = std::fs::read(&real)?;
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
            ))
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

/// The process's time base for [`CachedFile::checked`].
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The cache key of `path`.
fn cache_key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// Nanoseconds since [`epoch`].
fn since_epoch() -> u64 {
    ns_since_epoch(Instant::now())
}

/// Nanoseconds from [`epoch`] to `t` (0 for a `t` before it).
fn ns_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// The identity of a version of a file (`None` where unknown: then a
/// cached entry is never taken on the fast path).
fn file_id(meta: &std::fs::Metadata) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// The `ETag` of `len` bytes last modified at `modified`, in the format
/// tower-http's `ServeDir` gives (seconds and nanoseconds since the epoch
/// in hex, and the length), so that a file has one ETag whether the fast
/// path or `ServeDir` answers; `None` before the epoch, as there.
fn etag_of(modified: SystemTime, len: u64) -> Option<HeaderValue> {
    let since = modified.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    let tag = format!(
        "\"{:x}.{:08x}-{:x}\"",
        since.as_secs(),
        since.subsec_nanos(),
        len
    );
    HeaderValue::from_str(&tag).ok()
}

/// `path` without a final `.gz`, if it has one.
fn strip_gz(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let base = name.strip_suffix(".gz").filter(|b| !b.is_empty())?;
    Some(path.with_file_name(base))
}

/// Text-like files worth compressing.
fn compressible(path: &Path) -> bool {
    let Some(mime) = mime_guess::from_path(path).first() else {
        return false;
    };
    mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.subtype().as_str(),
            "javascript" | "json" | "xml" | "svg" | "wasm" | "xhtml"
        )
        || mime.suffix().is_some_and(|s| s == "json" || s == "xml")
}

fn gzip(bytes: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::default(),
    );
    enc.write_all(bytes)?;
    Ok(Some(enc.finish()?))
}

enum Resolved {
    Dir(SystemTime),
    /// The entry, and whether its gzip variant is meant.
    Cached(Arc<CachedFile>, bool),
    Disk(PathBuf, SystemTime, u64),
}

impl Resolved {
    fn metadata(&self) -> FileMeta {
        match self {
            Resolved::Dir(modified) => FileMeta {
                dir: true,
                modified: *modified,
                len: 0,
            },
            Resolved::Cached(e, gz) => FileMeta {
                dir: false,
                modified: e.modified,
                len: if *gz {
                    e.gzip.as_ref().map_or(0, |g| g.len() as u64)
                } else {
                    e.bytes.len() as u64
                },
            },
            Resolved::Disk(_, modified, len) => FileMeta {
                dir: false,
                modified: *modified,
                len: *len,
            },
        }
    }
}

/// tower-http's `ServeDir` backend over a [`FileCache`].
#[derive(Clone, Debug)]
pub(crate) struct CacheBackend {
    cache: FileCache,
    /// Where the hits and misses of one request are recorded, to be
    /// counted once; `None`: each lookup is counted.
    outcome: Option<Arc<AtomicU8>>,
}

/// No file was looked up in the cache.
pub(crate) const OUTCOME_NONE: u8 = 0;
/// A file was served from the cache.
pub(crate) const OUTCOME_HIT: u8 = 1;
/// A file was read from disk into the cache.
pub(crate) const OUTCOME_MISS: u8 = 2;

/// Metadata of a file served by [`CacheBackend`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileMeta {
    dir: bool,
    modified: SystemTime,
    len: u64,
}

impl BackendMetadata for FileMeta {
    fn is_dir(&self) -> bool {
        self.dir
    }

    fn modified(&self) -> io::Result<SystemTime> {
        Ok(self.modified)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// A file opened by [`CacheBackend`]: cached bytes, or a large file on disk.
#[derive(Debug)]
pub(crate) struct CachedBody {
    meta: FileMeta,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Memory(Cursor<Bytes>),
    Disk(tokio::fs::File),
}

impl AsyncRead for CachedBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.source {
            Source::Memory(c) => Pin::new(c).poll_read(cx, buf),
            Source::Disk(f) => Pin::new(f).poll_read(cx, buf),
        }
    }
}

impl AsyncSeek for CachedBody {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        match &mut self.source {
            Source::Memory(c) => Pin::new(c).start_seek(position),
            Source::Disk(f) => Pin::new(f).start_seek(position),
        }
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match &mut self.source {
            Source::Memory(c) => Pin::new(c).poll_complete(cx),
            Source::Disk(f) => Pin::new(f).poll_complete(cx),
        }
    }
}

impl BackendFile for CachedBody {
    type Metadata = FileMeta;
    type MetadataFuture<'a> = Pin<Box<dyn Future<Output = io::Result<FileMeta>> + Send + 'a>>;

    fn metadata(&self) -> Self::MetadataFuture<'_> {
        let meta = self.meta;
        Box::pin(async move { Ok(meta) })
    }
}

type BoxIo<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl Backend for CacheBackend {
    type File = CachedBody;
    type Metadata = FileMeta;
    type OpenFuture = BoxIo<CachedBody>;
    type MetadataFuture = BoxIo<FileMeta>;

    fn open(&self, path: PathBuf) -> Self::OpenFuture {
        let cache = self.cache.clone();
        let outcome = self.outcome.clone();
        Box::pin(async move {
            let resolved = cache.resolve(path, outcome.as_deref()).await?;
            let meta = resolved.metadata();
            let source = match resolved {
                Resolved::Dir(_) => return Err(io::Error::from(io::ErrorKind::IsADirectory)),
                Resolved::Cached(e, gz) => {
                    let bytes = if gz {
                        e.gzip.clone().unwrap_or_default()
                    } else {
                        e.bytes.clone()
                    };
                    Source::Memory(Cursor::new(bytes))
                }
                Resolved::Disk(real, _, _) => Source::Disk(tokio::fs::File::open(real).await?),
            };
            Ok(CachedBody { meta, source })
        })
    }

    fn metadata(&self, path: PathBuf) -> Self::MetadataFuture {
        let cache = self.cache.clone();
        let outcome = self.outcome.clone();
        Box::pin(async move { Ok(cache.resolve(path, outcome.as_deref()).await?.metadata()) })
    }
}

/// Requests to the `file_cache` actor.
#[derive(Debug)]
pub(crate) enum FileCacheMsg {
    /// Run the cache's pending maintenance (sent by the actor's own timer).
    Maintain,
}

/// The `file_cache` actor: owns the [`FileCache`]'s life cycle (see the
/// module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileCacheActor;

/// The `file_cache` actor's state.
#[derive(Debug)]
pub(crate) struct FileCacheState {
    cache: FileCache,
    timer: tokio::task::JoinHandle<()>,
}

impl Actor for FileCacheActor {
    type Msg = FileCacheMsg;
    type State = FileCacheState;
    type Arguments = FileCache;

    async fn pre_start(
        &self,
        myself: ActorRef<FileCacheMsg>,
        cache: FileCache,
    ) -> Result<FileCacheState, ActorProcessingErr> {
        // A (re)started owner starts from an empty cache, as an OTP worker
        // starts from its initial state.
        cache.clear();
        let timer = myself.send_interval(MAINTENANCE_INTERVAL, || FileCacheMsg::Maintain);
        Ok(FileCacheState { cache, timer })
    }

    async fn handle(
        &self,
        _: ActorRef<FileCacheMsg>,
        msg: FileCacheMsg,
        state: &mut FileCacheState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FileCacheMsg::Maintain => state.cache.run_maintenance(),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<FileCacheMsg>,
        state: &mut FileCacheState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gz_suffix() {
        assert_eq!(
            strip_gz(Path::new("/a/b.txt.gz")),
            Some(PathBuf::from("/a/b.txt"))
        );
        assert_eq!(strip_gz(Path::new("/a/.gz")), None);
        assert_eq!(strip_gz(Path::new("/a/b.txt")), None);
    }

    #[test]
    fn text_is_compressible() {
        assert!(compressible(Path::new("a.txt")));
        assert!(compressible(Path::new("a.html")));
        assert!(compressible(Path::new("a.js")));
        assert!(compressible(Path::new("a.json")));
        assert!(!compressible(Path::new("a.png")));
        assert!(!compressible(Path::new("a")));
    }

    #[test]
    fn each_thread_answers_with_its_own_copy_of_the_same_parts() {
        let bytes = Bytes::from(vec![b'a'; 3000]);
        let gzip = Bytes::from_static(b"gzipped");
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let file = CachedFile::new(
            Path::new("/d/a.txt"),
            bytes.clone(),
            Some(gzip.clone()),
            modified,
            None,
        );
        let parts = |gzip: bool| {
            let rep = file.representation(gzip).expect("has an ETag");
            let (headers, body) = rep.parts();
            (headers, body, rep.headers.clone())
        };
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..3)
                .map(|_| s.spawn(|| (parts(false), parts(true), parts(true))))
                .collect();
            for t in threads {
                let (plain, zipped, again) = t.join().expect("no panic");
                assert_eq!(plain.0, plain.2);
                assert_eq!(plain.1, bytes);
                assert_eq!(
                    plain.1.as_ptr(),
                    bytes.as_ptr(),
                    "no copy of the bytes themselves"
                );
                assert_eq!(zipped.0, zipped.2);
                assert_eq!(zipped.1, gzip);
                assert_eq!(zipped.0["content-encoding"], "gzip");
                assert_eq!(zipped.0["content-length"], "7");
                assert_eq!(plain.0["content-length"], "3000");
                // The second answer on a thread reuses its copy.
                assert_eq!(again.0, zipped.0);
                assert_eq!(again.1.as_ptr(), zipped.1.as_ptr());
            }
        });
        // The copies share the entry's memory; they are counted in its weight.
        assert!(file.weight() >= 3000 + 7 + ENTRY_OVERHEAD + 2 * VIEW_OVERHEAD as u64);
    }
}
