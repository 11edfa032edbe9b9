//! [`Waiters`]: writes published by this node, waiting for their
//! application, by idempotency key (`Nats-Msg-Id`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::chat::Written;

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

/// Waiters by key (a retried write may be waited for twice).
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    next: AtomicU64,
    map: Mutex<HashMap<String, Vec<(u64, Answer)>>>,
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
}
