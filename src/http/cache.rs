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

mod actor;
mod backend;
mod file;
mod front;
mod handle;
mod settings;
mod spec;

pub(crate) use backend::{CacheBackend, OUTCOME_HIT, OUTCOME_MISS, OUTCOME_NONE};
pub(crate) use file::{file_id, CachedFile, FileId};
pub use handle::FileCache;
#[cfg(test)]
pub(crate) use handle::FileCacheSettings;
pub use settings::CacheSettings;
