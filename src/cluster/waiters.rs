//! [`Waiters`]: writes published by this node, waiting for their
//! application, by idempotency key (`Nats-Msg-Id`); and this node's own
//! acknowledged entries, which the consumer may apply before the stream
//! hands them back ([`Waiters::acked`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::{oneshot, Notify};

use crate::chat::{Write, Written};

/// This node's acknowledged entries kept for the consumer, at most: beyond,
/// an entry waits for the stream like any other.
const MAX_OWN: usize = 8192;

/// What applying an entry decided, in a form every waiter of its key can
/// take a copy of.
#[derive(Debug, Clone)]
pub(crate) enum Applied {
    /// Applied: its result.
    Done(Written),
    /// Refused at apply time: CONFLICT.
    Conflict(String),
    /// Refused at apply time: NOT_FOUND.
    NotFound(String),
    /// The store failed applying it.
    Failed(String),
}

/// A registered waiter: its key, and its number among the key's waiters.
#[derive(Debug)]
pub(crate) struct Ticket {
    key: String,
    id: u64,
}

/// Where a waiter is answered: the entry's stream sequence and result.
type Answer = oneshot::Sender<(u64, Applied)>;

/// An entry this node published, acknowledged at a stream sequence: its
/// key and the write, decoded from the bytes published.
#[derive(Debug)]
pub(crate) struct Own {
    pub(crate) key: String,
    pub(crate) write: Write,
}

/// Waiters by key (a retried write may be waited for twice).
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    next: AtomicU64,
    map: Mutex<HashMap<String, Vec<(u64, Answer)>>>,
    own: Mutex<BTreeMap<u64, Own>>,
    own_added: Notify,
}

impl Waiters {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(u64, Answer)>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a waiter for `key`; it gets the stream sequence and the
    /// result of the first entry of that key applied after now.
    pub(crate) fn register(&self, key: &str) -> (Ticket, oneshot::Receiver<(u64, Applied)>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.map().entry(key.to_owned()).or_default().push((id, tx));
        (
            Ticket {
                key: key.to_owned(),
                id,
            },
            rx,
        )
    }

    /// Forgets a waiter (it gave up).
    pub(crate) fn cancel(&self, ticket: &Ticket) {
        let mut map = self.map();
        if let Some(list) = map.get_mut(&ticket.key) {
            list.retain(|(id, _)| *id != ticket.id);
            if list.is_empty() {
                map.remove(&ticket.key);
            }
        }
    }

    /// Answers every waiter of `key`: the entry at `seq` decided `applied`.
    pub(crate) fn fire(&self, key: &str, seq: u64, applied: &Applied) {
        let list = self.map().remove(key);
        for (_, tx) in list.into_iter().flatten() {
            let _ = tx.send((seq, applied.clone()));
        }
    }

    /// Records that JetStream stored this node's entry `own` at `seq`
    /// (not a duplicate: the entry at `seq` is this one) and wakes the
    /// consumer, which applies it as soon as every entry before it is
    /// applied, without waiting for the stream to hand it back.
    pub(crate) fn acked(&self, seq: u64, own: Own) {
        {
            let mut map = self.own.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= MAX_OWN {
                return;
            }
            map.insert(seq, own);
        }
        self.own_added.notify_one();
    }

    /// The own entry at `applied + 1`, if there is one; forgets those at
    /// or below `applied` (the stream handed them over first).
    pub(crate) fn next_own(&self, applied: u64) -> Option<(u64, Own)> {
        let mut map = self.own.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(entry) = map.first_entry() {
            match (*entry.key()).cmp(&(applied + 1)) {
                std::cmp::Ordering::Less => {
                    entry.remove();
                }
                std::cmp::Ordering::Equal => return Some(entry.remove_entry()),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// Completes when an own entry was recorded since the last call.
    pub(crate) async fn own_added(&self) {
        self.own_added.notified().await;
    }

    /// Waiters registered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_of_a_key_is_answered_once_and_cancel_forgets() {
        let w = Waiters::default();
        let (_, a) = w.register("k");
        let (_, b) = w.register("k");
        let (gone, _c) = w.register("other");
        w.cancel(&gone);
        assert_eq!(w.len(), 2);
        w.fire("k", 7, &Applied::Conflict("taken".into()));
        assert_eq!(w.len(), 0);
        for rx in [a, b] {
            let (seq, got) = rx.await.expect("answered");
            assert_eq!(seq, 7);
            assert!(matches!(got, Applied::Conflict(m) if m == "taken"));
        }
        w.fire("nobody", 8, &Applied::NotFound("x".into()));
    }

    #[tokio::test]
    async fn own_entries_come_out_in_order_only_when_next() {
        let w = Waiters::default();
        let login = |u: &str| Write::Login {
            user: u.into(),
            ts: 1,
        };
        for (seq, key) in [(5, "e"), (3, "c"), (2, "b")] {
            w.acked(
                seq,
                Own {
                    key: key.into(),
                    write: login(key),
                },
            );
        }
        // Woken (a permit is kept for a consumer that was busy).
        tokio::time::timeout(std::time::Duration::from_secs(5), w.own_added())
            .await
            .expect("notified");
        assert!(w.next_own(0).is_none(), "entry 1 is not ours: wait for it");
        let (seq, own) = w.next_own(1).expect("2 follows 1");
        assert_eq!((seq, own.key.as_str()), (2, "b"));
        assert!(w.next_own(2).is_some_and(|(s, _)| s == 3));
        // 4 came from the stream, then 5 is next; nothing stays behind.
        assert!(w.next_own(3).is_none());
        assert!(w.next_own(4).is_some_and(|(s, _)| s == 5));
        w.acked(
            7,
            Own {
                key: "g".into(),
                write: login("g"),
            },
        );
        assert!(w.next_own(9).is_none(), "below the applied: forgotten");
        assert!(w.own.lock().expect("lock").is_empty());
    }
}
