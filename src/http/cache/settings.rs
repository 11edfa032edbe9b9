//! The static file cache's settings: the `[cache]` section.

use serde::{Deserialize, Serialize};

/// `[cache]`: the static file cache (`cache_sup` / `file_cache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Most bytes the cache holds (contents plus gzip variants); least
    /// recently used entries are evicted past it. Default 67108864 (64 MiB).
    pub max_bytes: u64,
    /// Largest file kept in the cache, in bytes; larger files are streamed
    /// from disk (and not gzipped). Default 1048576 (1 MiB).
    pub max_file_bytes: u64,
    /// Smallest compressible file given a gzip variant, in bytes. Default 1024.
    pub gzip_min_bytes: u64,
    /// How long a cached file is served without checking it on disk, in ms
    /// (nginx's `open_file_cache_valid`). 0, the default, checks it on
    /// every request (one stat), so a changed file is served fresh at once;
    /// with N, a change shows within N ms.
    pub revalidate_ms: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_bytes: 64 << 20,
            max_file_bytes: 1 << 20,
            gzip_min_bytes: 1024,
            revalidate_ms: 0,
        }
    }
}

impl CacheSettings {
    /// Checks the values that types alone cannot; on failure, the key
    /// (relative to the section) and what is wrong with it.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, message: &str) -> Result<(), (String, String)> {
            Err((key.to_string(), message.to_string()))
        }
        if self.revalidate_ms > 3_600_000 {
            return bad("revalidate_ms", "must be at most 3600000 (an hour)");
        }
        if self.max_file_bytes > u64::from(u32::MAX) / 2 {
            return bad("max_file_bytes", "must be below 2 GiB");
        }
        Ok(())
    }
}
