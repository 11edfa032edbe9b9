//! A connection's inbox: a bounded queue that allocates on first use.
//!
//! Most connections never get a message from the rest of the node (an idle
//! RPC client, a browser): a tokio channel made for each would cost ~1 KB
//! of the connection's memory (its first block of 32 slots and its two
//! cache-padded halves) for nothing. The queue here is made by the first
//! send; until then the inbox is a few words, and a receive waits for it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{mpsc, Notify};

/// The queue once made: its sender, and its receiver until the inbox takes it.
type Chan<M> = (mpsc::Sender<M>, Mutex<Option<mpsc::Receiver<M>>>);

/// What both ends share.
#[derive(Debug)]
struct Shared<M> {
    capacity: usize,
    /// The queue, once something was sent; its receiver waits in the
    /// mutex until the [`Inbox`] takes it.
    chan: OnceLock<Chan<M>>,
    /// Told when the queue is made (the inbox waits for it) and when the
    /// inbox is dropped (`closed` waits for that).
    changed: Notify,
    /// Set when the [`Inbox`] is dropped.
    gone: AtomicBool,
    /// Live [`InboxSender`]s: with none left, the inbox ends once empty.
    senders: AtomicUsize,
}

impl<M> Shared<M> {
    /// The receiver waiting in the queue, if the queue was made and the
    /// inbox has not taken it.
    fn take_receiver(&self) -> Option<mpsc::Receiver<M>> {
        let (_, rx) = self.chan.get()?;
        rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Makes an inbox holding at most `capacity` messages, and its sender.
pub(crate) fn inbox<M>(capacity: usize) -> (InboxSender<M>, Inbox<M>) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        chan: OnceLock::new(),
        changed: Notify::new(),
        gone: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
    });
    (
        InboxSender {
            shared: shared.clone(),
        },
        Inbox { shared, rx: None },
    )
}

/// The receiving end of a connection's inbox
/// ([`Connection::inbox`](super::Connection::inbox)): messages the rest of
/// the node sent the connection through its
/// [`ConnectionRef`](super::ConnectionRef), in order.
#[derive(Debug)]
pub struct Inbox<M> {
    shared: Arc<Shared<M>>,
    rx: Option<mpsc::Receiver<M>>,
}

impl<M> Inbox<M> {
    /// The queue's receiver, once something was sent.
    fn receiver(&mut self) -> Option<&mut mpsc::Receiver<M>> {
        if self.rx.is_none() {
            self.rx = self.shared.take_receiver();
        }
        self.rx.as_mut()
    }

    /// The next message. Waits while there is none; `None` once every
    /// sender is gone and the queue is empty (a connection holds a sender
    /// of its own until it splits itself with `into_parts`).
    pub async fn recv(&mut self) -> Option<M> {
        let shared = self.shared.clone();
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let orphan = shared.senders.load(Ordering::SeqCst) == 0;
            match self.receiver() {
                Some(rx) if orphan => return rx.try_recv().ok(),
                Some(rx) => tokio::select! {
                    biased;
                    m = rx.recv() => return m,
                    () = &mut changed => {}
                },
                None if orphan => return None,
                None => changed.await,
            }
        }
    }

    /// Up to `limit` messages into `buf`, waiting for the first; the number
    /// received, 0 once every sender is gone and the queue is empty.
    pub async fn recv_many(&mut self, buf: &mut Vec<M>, limit: usize) -> usize {
        let shared = self.shared.clone();
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let orphan = shared.senders.load(Ordering::SeqCst) == 0;
            match self.receiver() {
                Some(rx) if orphan => {
                    let before = buf.len();
                    while buf.len() - before < limit {
                        match rx.try_recv() {
                            Ok(m) => buf.push(m),
                            Err(_) => break,
                        }
                    }
                    return buf.len() - before;
                }
                Some(rx) => tokio::select! {
                    biased;
                    n = rx.recv_many(buf, limit) => return n,
                    () = &mut changed => {}
                },
                None if orphan => return 0,
                None => changed.await,
            }
        }
    }

    /// A message if one is waiting.
    pub fn try_recv(&mut self) -> Option<M> {
        self.receiver()?.try_recv().ok()
    }

    /// Messages waiting.
    pub fn len(&mut self) -> usize {
        self.receiver().map_or(0, |rx| rx.len())
    }

    /// True when no message is waiting.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }
}

impl<M> Drop for Inbox<M> {
    fn drop(&mut self) {
        self.shared.gone.store(true, Ordering::SeqCst);
        // A queue made meanwhile loses its receiver here: senders see it closed.
        drop(self.shared.take_receiver());
        self.shared.changed.notify_waiters();
    }
}

/// The sending end of an inbox: what a [`ConnectionRef`](super::ConnectionRef)
/// holds.
#[derive(Debug)]
pub(crate) struct InboxSender<M> {
    shared: Arc<Shared<M>>,
}

impl<M> Clone for InboxSender<M> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::SeqCst);
        InboxSender {
            shared: self.shared.clone(),
        }
    }
}

impl<M> Drop for InboxSender<M> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.changed.notify_waiters();
        }
    }
}

impl<M> InboxSender<M> {
    /// The queue's sender, made now if nothing was sent before; `None` if
    /// the inbox is gone.
    fn sender(&self) -> Option<&mpsc::Sender<M>> {
        if self.shared.gone.load(Ordering::SeqCst) {
            return None;
        }
        let mut made = false;
        let (tx, _) = self.shared.chan.get_or_init(|| {
            made = true;
            let (tx, rx) = mpsc::channel(self.shared.capacity);
            (tx, Mutex::new(Some(rx)))
        });
        if made {
            // The inbox may have gone between the check and the making:
            // then nobody would take the receiver.
            if self.shared.gone.load(Ordering::SeqCst) {
                drop(self.shared.take_receiver());
                return None;
            }
            self.shared.changed.notify_waiters();
        }
        Some(tx)
    }

    /// Queues `msg` without waiting.
    pub(crate) fn try_send(&self, msg: M) -> Result<(), mpsc::error::TrySendError<M>> {
        match self.sender() {
            Some(tx) => tx.try_send(msg),
            None => Err(mpsc::error::TrySendError::Closed(msg)),
        }
    }

    /// Queues `msg`, waiting for room.
    pub(crate) async fn send(&self, msg: M) -> Result<(), mpsc::error::SendError<M>> {
        match self.sender() {
            Some(tx) => tx.send(msg).await,
            None => Err(mpsc::error::SendError(msg)),
        }
    }

    /// True once the inbox is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.gone.load(Ordering::SeqCst)
            || self.shared.chan.get().is_some_and(|(tx, _)| tx.is_closed())
    }

    /// Waits until the inbox is gone.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    pub(crate) async fn closed(&self) {
        loop {
            let changed = self.shared.changed.notified();
            if self.is_closed() {
                return;
            }
            if let Some((tx, _)) = self.shared.chan.get() {
                return tx.closed().await;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_is_made_until_a_send_and_then_messages_arrive_in_order() {
        let (tx, mut rx) = inbox::<u32>(2);
        assert!(tx.shared.chan.get().is_none());
        assert!(rx.try_recv().is_none());
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first, second, rx)
        });
        tokio::task::yield_now().await;
        tx.try_send(1).expect("room");
        tx.try_send(2).expect("room");
        let (first, second, mut rx) = waiting.await.expect("no panic");
        assert_eq!((first, second), (Some(1), Some(2)));
        tx.try_send(3).expect("room");
        tx.try_send(4).expect("room");
        assert!(matches!(
            tx.try_send(5),
            Err(mpsc::error::TrySendError::Full(5))
        ));
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 8).await, 2);
        assert_eq!(buf, [3, 4]);
        drop(tx);
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_dropped_inbox_closes_its_senders_made_or_not() {
        let (tx, rx) = inbox::<u32>(4);
        let closed = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.closed().await })
        };
        drop(rx);
        closed.await.expect("closed wakes");
        assert!(tx.is_closed());
        assert!(matches!(
            tx.try_send(1),
            Err(mpsc::error::TrySendError::Closed(1))
        ));

        let (tx, rx) = inbox::<u32>(4);
        tx.try_send(1).expect("made");
        drop(rx);
        assert!(tx.is_closed());
        assert!(tx.send(2).await.is_err());
    }

    #[tokio::test]
    async fn an_inbox_nobody_can_send_to_ends() {
        let (tx, mut rx) = inbox::<u32>(4);
        drop(tx);
        assert_eq!(rx.recv().await, None);
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 4).await, 0);
    }
}
