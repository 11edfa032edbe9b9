//! [`CachedFile`]: one file in the cache, with the headers of its answers
//! made once, and the helpers that read and describe files.

use crate::http::sendfile::{register, Registration};
use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    LAST_MODIFIED, SERVER, VARY,
};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

/// Bytes counted for an entry on top of its contents (key, bookkeeping).
const ENTRY_OVERHEAD: u64 = 256;

/// Bytes counted for each per-thread copy of an entry's headers and bytes
/// handle (the copy's slot, header map and values, the handle's owner).
const VIEW_OVERHEAD: usize = 512;

/// One cached file, with the headers of its responses made once.
pub(crate) struct CachedFile {
    /// The open file the bytes were read from, registered for `sendfile`
    /// (large files only). First, so that it is dropped before `bytes`:
    /// a registration never outlives the memory it names.
    on_disk: Option<Registration>,
    pub(super) bytes: Bytes,
    pub(super) gzip: Option<Bytes>,
    pub(super) modified: SystemTime,
    pub(super) len: u64,
    /// Device, inode and change time of the file read.
    pub(super) id: Option<FileId>,
    /// The headers of a 200 answer with the bytes, and with the gzip
    /// variant (`None` for an mtime before the epoch, which has no ETag:
    /// such an entry is not served on the fast path).
    pub(super) headers: Option<HeaderMap>,
    pub(super) gzip_headers: Option<HeaderMap>,
    /// When the file was last found unchanged, in ns since [`epoch`].
    pub(super) checked: AtomicU64,
    /// Set once the entry has left the cache (see [`front`]).
    pub(super) retired: AtomicBool,
    /// Per-thread copies of the headers and bytes handles the fast path
    /// clones for every answer (see [`crate::util::shard`]): the plain
    /// representation's for each shard, then the gzip variant's.
    pub(super) views: Box<[OnceLock<(HeaderMap, Bytes)>]>,
}

/// What identifies one version of a file: device, inode, and the change
/// time (ctime), which the kernel updates on every write, rename, link or
/// chmod and no user can set back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) ctime: i64,
    pub(super) ctime_nsec: i64,
}

/// One representation of a cached file: its bytes and the headers of a
/// 200 answer with them.
pub(crate) struct Representation<'a> {
    /// The bytes.
    pub(super) bytes: &'a Bytes,
    /// `Content-Type`, `Accept-Ranges`, `Content-Encoding` (for the gzip
    /// variant), `Vary`, `Last-Modified`, `ETag`, `Content-Length`: those
    /// tower-http's `ServeDir` gives, with the same values.
    pub(super) headers: &'a HeaderMap,
    /// This thread's copies of both.
    pub(super) view: &'a OnceLock<(HeaderMap, Bytes)>,
}

impl Representation<'_> {
    /// The headers and bytes of an answer, from this thread's copies: the
    /// same values as the entry's, whose reference counts no other thread
    /// writes (the copy of the bytes shares their memory).
    pub(crate) fn parts(&self) -> (HeaderMap, Bytes) {
        let (headers, bytes) = self.view.get_or_init(|| {
            let mut own = HeaderMap::with_capacity(self.headers.len() + 1);
            for (name, value) in self.headers {
                let copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or(value.clone());
                own.insert(name.clone(), copy);
            }
            // The server adds it to every answer: here already, its insert
            // replaces a value in place instead of growing a cloned map (a
            // clone has no spare room), a reallocation a request saved.
            own.insert(SERVER, HeaderValue::from_static(crate::http::SERVER_NAME));
            (own, Bytes::from_owner(self.bytes.clone()))
        });
        (headers.clone(), bytes.clone())
    }
}

impl CachedFile {
    pub(super) fn new(
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
            on_disk: None,
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

    /// Registers the bytes with `file`, which they were read from while it
    /// was version `read`, so that answers with them go out with
    /// `sendfile` (see [`crate::http::sendfile`]); nothing for a small
    /// file, or one that changed while it was read.
    pub(super) fn read_from(mut self, file: File, read: Option<FileId>) -> Self {
        self.on_disk = read.and_then(|id| register(file, id, &self.bytes));
        self
    }

    /// True when `meta` (of the path this entry is cached under) is the
    /// same file, unchanged.
    pub(super) fn is_current(&self, meta: &std::fs::Metadata) -> bool {
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

    pub(super) fn weight(&self) -> u64 {
        let views = self.views.len() * VIEW_OVERHEAD;
        self.bytes.len() as u64
            + self.gzip.as_ref().map_or(0, |g| g.len() as u64)
            + ENTRY_OVERHEAD
            + views as u64
    }
}

/// The process's time base for [`CachedFile::checked`].
pub(super) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The cache key of `path`.
pub(super) fn cache_key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// Nanoseconds since [`epoch`].
pub(super) fn since_epoch() -> u64 {
    ns_since_epoch(Instant::now())
}

/// Nanoseconds from [`epoch`] to `t` (0 for a `t` before it).
pub(super) fn ns_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// The identity of a version of a file (`None` where unknown: then a
/// cached entry is never taken on the fast path).
pub(crate) fn file_id(meta: &std::fs::Metadata) -> Option<FileId> {
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
pub(super) fn etag_of(modified: SystemTime, len: u64) -> Option<HeaderValue> {
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
pub(super) fn strip_gz(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let base = name.strip_suffix(".gz").filter(|b| !b.is_empty())?;
    Some(path.with_file_name(base))
}

/// Text-like files worth compressing.
pub(super) fn compressible(path: &Path) -> bool {
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

pub(super) fn gzip(bytes: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::default(),
    );
    enc.write_all(bytes)?;
    Ok(Some(enc.finish()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
            // The entry's headers, and the server's name beside them.
            let mut expected = rep.headers.clone();
            expected.insert(SERVER, HeaderValue::from_static("corral"));
            (headers, body, expected)
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
