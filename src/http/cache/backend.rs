//! [`CacheBackend`]: the cache as tower-http's `ServeDir` backend.

use super::{CachedFile, FileCache};
use bytes::Bytes;
use std::future::Future;
use std::io::{self, Cursor};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tower_http::services::fs::{Backend, File as BackendFile, Metadata as BackendMetadata};

pub(super) enum Resolved {
    Dir(SystemTime),
    /// The entry, and whether its gzip variant is meant.
    Cached(Arc<CachedFile>, bool),
    Disk(PathBuf, SystemTime, u64),
}

impl Resolved {
    pub(super) fn metadata(&self) -> FileMeta {
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
    pub(super) cache: FileCache,
    /// Where the hits and misses of one request are recorded, to be
    /// counted once; `None`: each lookup is counted.
    pub(super) outcome: Option<Arc<AtomicU8>>,
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
    pub(super) dir: bool,
    pub(super) modified: SystemTime,
    pub(super) len: u64,
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
    pub(super) meta: FileMeta,
    pub(super) source: Source,
}

#[derive(Debug)]
pub(super) enum Source {
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
