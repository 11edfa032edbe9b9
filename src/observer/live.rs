//! The live stream: while at least one page (or script) watches, a sampler
//! task takes the node's figures every interval and sends them to every
//! watcher as server-sent events; a restart is sent at once. With no
//! watcher no task runs and nothing is computed: the restart hook only
//! counts receivers.

use super::collect::{sample, Counters, Sources};
use super::view::Sample;
use super::ObserverSettings;
use crate::supervisor::RestartEvent;
use bytes::Bytes;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};

/// How long a restart is given to complete before the tree is read again.
const SETTLE: Duration = Duration::from_millis(50);
/// Events a slow watcher may fall behind by before it skips some.
const BACKLOG: usize = 64;

/// The live engine of one node's observer.
pub(crate) struct Live {
    pub(crate) sources: Sources,
    settings: ObserverSettings,
    tx: broadcast::Sender<Bytes>,
    wake: Notify,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whether the sampler task runs.
    sampling: bool,
    /// The counters of the last sample.
    last: Option<Counters>,
    /// The samples of the charts, oldest first.
    history: VecDeque<Sample>,
}

/// One watcher's receiver of the stream; when it goes, the sampler is
/// woken to see whether anyone still watches.
pub(crate) struct Watcher {
    pub(crate) rx: broadcast::Receiver<Bytes>,
    live: std::sync::Weak<Live>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(live) = self.live.upgrade() {
            // The receiver is dropped after this body: the sampler, woken,
            // looks once the settle pause has passed.
            live.wake.notify_one();
        }
    }
}

/// One server-sent event: `event: <name>` and its JSON on one `data` line.
pub(crate) fn event(name: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// The restart the page marks, as sent.
#[derive(Serialize)]
struct Restart<'a> {
    supervisor: &'a str,
    child: &'a str,
    reason: &'a str,
    at_ms: u64,
}

impl Live {
    pub(crate) fn new(sources: Sources, settings: ObserverSettings) -> Arc<Live> {
        Arc::new(Live {
            sources,
            settings,
            tx: broadcast::channel(BACKLOG).0,
            wake: Notify::new(),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watchers connected now.
    pub(crate) fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Whether the sampler task runs.
    pub(crate) fn is_sampling(&self) -> bool {
        self.lock().sampling
    }

    /// The counters of the last sample, to compute rates against; `None`
    /// when it is older than three intervals (no one watched since: a
    /// rate over that span would mislead).
    pub(crate) fn last_counters(&self) -> Option<Counters> {
        let fresh = 3 * self.settings.sample_interval();
        self.lock().last.clone().filter(|c| c.at.elapsed() <= fresh)
    }

    /// The samples kept.
    pub(crate) fn history(&self) -> Vec<Sample> {
        self.lock().history.iter().cloned().collect()
    }

    /// A new watcher: its receiver, the sampler started if it was not.
    /// `None` when `max_watchers` watch already.
    pub(crate) fn subscribe(self: &Arc<Self>) -> Option<Watcher> {
        let mut st = self.lock();
        if self.tx.receiver_count() >= self.settings.max_watchers {
            return None;
        }
        let rx = self.tx.subscribe();
        if !st.sampling {
            st.sampling = true;
            let me = self.clone();
            tokio::spawn(async move { me.sample_while_watched().await });
        }
        Some(Watcher {
            rx,
            live: Arc::downgrade(self),
        })
    }

    /// Called by the supervisors on each restart (the node's restart hook):
    /// sent to the watchers at once, and the tree read again soon after.
    pub(crate) fn restarted(&self, e: RestartEvent<'_>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let r = Restart {
            supervisor: e.supervisor,
            child: e.child,
            reason: e.reason,
            at_ms: super::collect::now_ms(),
        };
        let _ = self.tx.send(event("restart", &r));
        self.wake.notify_one();
    }

    /// Reads everything again now (after an action).
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// The sampler: one frame per interval (or at once when woken), until
    /// no one watches.
    async fn sample_while_watched(self: Arc<Self>) {
        let interval = self.settings.sample_interval();
        loop {
            {
                let mut st = self.lock();
                if self.tx.receiver_count() == 0 {
                    st.sampling = false;
                    return;
                }
            }
            let frame = self.frame(true).await;
            let _ = self.tx.send(frame);
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.wake.notified() => tokio::time::sleep(SETTLE).await,
            }
        }
    }

    /// A `frame` event: the tree, listeners, chat, cluster and (when
    /// `record`, taking a sample) the new point of the charts.
    pub(crate) async fn frame(&self, record: bool) -> Bytes {
        let tree = self.sources.tree().await;
        let now = self.sources.counters();
        let prev = self.last_counters();
        let point = match (&prev, record) {
            (Some(p), true) => Some(sample(&now, p)),
            _ => None,
        };
        let frame = serde_json::json!({
            "tree": tree,
            "listeners": self.sources.listeners(&now, prev.as_ref()),
            "chat": self.sources.chat(&now, prev.as_ref()),
            "cluster": self.sources.cluster(),
            "sample": point,
            "watchers": self.watchers(),
        });
        if record {
            let mut st = self.lock();
            if let Some(p) = &point {
                st.history.push_back(p.clone());
                while st.history.len() > self.settings.history_samples {
                    st.history.pop_front();
                }
            }
            st.last = Some(now);
        }
        event("frame", &frame)
    }
}
