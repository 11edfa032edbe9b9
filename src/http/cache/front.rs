//! Each thread's front of the file cache: the few entries it found lately.
//!
//! A lookup in moka hashes the key, pins an epoch, records the read for
//! the eviction policy, and clones the entry's `Arc`, whose count every
//! thread serving that file writes. A hit in the front reads only the
//! entry's own flags. An entry leaves moka (replaced by a newer version of
//! its file, evicted, invalidated) through the cache's eviction listener,
//! which marks it retired; the front drops retired entries when it meets
//! them and whenever it takes a new one. Every [`TOUCH_EVERY`]th hit still
//! goes through moka, so that the eviction policy sees the file in use.

use super::CachedFile;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most entries a thread's front holds.
const ENTRIES: usize = 32;

/// One hit in this many also looks the entry up in moka.
const TOUCH_EVERY: u32 = 64;

struct Slot {
    /// Which cache (see [`super::Inner`]'s `id`).
    cache: u64,
    key: Box<[u8]>,
    entry: Arc<CachedFile>,
}

#[derive(Default)]
struct Front {
    slots: Vec<Slot>,
    hits: u32,
}

thread_local! {
    static FRONT: RefCell<Front> = RefCell::default();
}

/// `f` of the entry under `key` in cache `cache`: from this thread's front,
/// else from `lookup` (moka), which the front then keeps. `touch` is
/// called on some hits (see the module docs). `None` if neither has it.
/// `f` must not look up files itself.
pub(super) fn with_entry<R>(
    cache: u64,
    key: &[u8],
    lookup: impl FnOnce() -> Option<Arc<CachedFile>>,
    touch: impl FnOnce(),
    f: impl FnOnce(&CachedFile) -> Option<R>,
) -> Option<R> {
    FRONT.with_borrow_mut(|front| {
        let found = front
            .slots
            .iter()
            .position(|s| s.cache == cache && *s.key == *key);
        let at = match found {
            Some(i) if !front.slots[i].entry.retired.load(Ordering::Relaxed) => {
                front.hits = front.hits.wrapping_add(1);
                if front.hits % TOUCH_EVERY == 0 {
                    touch();
                }
                i
            }
            _ => {
                let entry = lookup()?;
                front.take(cache, key, entry)
            }
        };
        f(&front.slots[at].entry)
    })
}

impl Front {
    /// Keeps `entry`, dropping retired entries and, when full, the oldest;
    /// returns its index.
    fn take(&mut self, cache: u64, key: &[u8], entry: Arc<CachedFile>) -> usize {
        self.slots.retain(|s| {
            !(s.entry.retired.load(Ordering::Relaxed) || (s.cache == cache && *s.key == *key))
        });
        if self.slots.len() >= ENTRIES {
            self.slots.remove(0);
        }
        self.slots.push(Slot {
            cache,
            key: key.into(),
            entry,
        });
        self.slots.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::cell::Cell;
    use std::path::Path;
    use std::time::SystemTime;

    fn file(text: &'static str) -> Arc<CachedFile> {
        Arc::new(CachedFile::new(
            Path::new("/d/a.txt"),
            Bytes::from_static(text.as_bytes()),
            None,
            SystemTime::now(),
            None,
        ))
    }

    /// The bytes `with_entry` finds for `key`, and whether it looked in moka.
    fn find(cache: u64, key: &[u8], moka: Option<&Arc<CachedFile>>) -> (Option<Bytes>, bool) {
        let looked = Cell::new(false);
        let found = with_entry(
            cache,
            key,
            || {
                looked.set(true);
                moka.cloned()
            },
            || {},
            |e| Some(e.bytes.clone()),
        );
        (found, looked.get())
    }

    #[test]
    fn a_kept_entry_is_found_without_moka_until_retired() {
        let old = file("old");
        assert_eq!(
            find(900, b"/a", Some(&old)),
            (Some(Bytes::from("old")), true)
        );
        assert_eq!(find(900, b"/a", None), (Some(Bytes::from("old")), false));
        // Another cache's entry under the same key is not this one.
        assert_eq!(find(901, b"/a", None), (None, true));
        old.retired.store(true, Ordering::Relaxed);
        let new = file("new");
        assert_eq!(
            find(900, b"/a", Some(&new)),
            (Some(Bytes::from("new")), true)
        );
        assert_eq!(find(900, b"/a", None), (Some(Bytes::from("new")), false));
        // The retired entry is no longer held.
        assert_eq!(Arc::strong_count(&old), 1);
    }

    #[test]
    fn the_front_holds_at_most_its_entries_dropping_the_oldest() {
        let files: Vec<_> = (0..=ENTRIES).map(|_| file("x")).collect();
        for (i, f) in files.iter().enumerate() {
            find(910, format!("/{i}").as_bytes(), Some(f));
        }
        assert_eq!(Arc::strong_count(&files[0]), 1, "the oldest was dropped");
        assert_eq!(find(910, b"/0", None), (None, true));
        assert!(
            !find(910, format!("/{ENTRIES}").as_bytes(), None).1,
            "the newest is kept"
        );
    }

    #[test]
    fn some_hits_touch_moka() {
        let f = file("x");
        find(920, b"/t", Some(&f));
        let touched = Cell::new(0);
        for _ in 0..(2 * TOUCH_EVERY) {
            with_entry(
                920,
                b"/t",
                || None,
                || touched.set(touched.get() + 1),
                |_| Some(()),
            );
        }
        assert_eq!(touched.get(), 2);
    }
}
