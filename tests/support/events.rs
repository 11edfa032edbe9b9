//! What test children report: each start, stop and refused start is an
//! event on a channel, so that supervisor tests synchronise on events rather
//! than on sleeps.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;

/// What a test child reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ev {
    Started(String),
    /// post_stop ran (not after a kill).
    Stopped(String),
    /// The start function refused to start.
    StartFailed(String),
}

/// The sending side, shared by the children of a test.
#[derive(Clone)]
pub(crate) struct Probe {
    tx: mpsc::UnboundedSender<Ev>,
}

impl Probe {
    pub(crate) fn report(&self, ev: Ev) {
        let _ = self.tx.send(ev);
    }
}

/// The receiving side, read by the test.
pub(crate) struct Events {
    pub(super) rx: mpsc::UnboundedReceiver<Ev>,
    /// Events read ahead (by `quiet`) and not yet returned.
    pub(super) pending: VecDeque<Ev>,
}

/// A channel for the events of many children.
pub(crate) fn probe() -> (Probe, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Probe { tx },
        Events {
            rx,
            pending: VecDeque::new(),
        },
    )
}

/// A generous guard so that a broken supervisor fails a test instead of
/// hanging it; it is not a timing assertion.
pub(crate) const GUARD: Duration = Duration::from_secs(20);

impl Events {
    pub(crate) async fn next(&mut self) -> Ev {
        if let Some(ev) = self.pending.pop_front() {
            return ev;
        }
        tokio::time::timeout(GUARD, self.rx.recv())
            .await
            .expect("an event within the guard time")
            .expect("event channel open")
    }

    /// Waits for this exact event, failing on any other one first.
    pub(crate) async fn expect(&mut self, ev: Ev) {
        let got = self.next().await;
        assert_eq!(got, ev);
    }
}

pub(crate) fn started(name: &str) -> Ev {
    Ev::Started(name.to_string())
}
