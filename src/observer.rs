//! The observer: a live view of a running node in the browser, as Erlang's
//! `observer` gives one of a running system.
//!
//! At `/observer/` on every HTTP listener of a node (`[observer] enabled`,
//! the default), a page shows:
//!
//! - the supervision tree: every supervisor (strategy, intensity, restarts
//!   made) and child (restart type, status, uptime, restart count and the
//!   last restart's reason); a dynamic supervisor's children counted, as
//!   [`Supervisor::tree`](crate::supervisor::Supervisor::tree) does;
//! - each listener: transport, address, state (accepting, suspended,
//!   draining, restarting), connections open of `max_connections`, accept
//!   rate;
//! - the chat: users online, sessions, subscriptions, the busiest topics,
//!   push queue depths, pushes dropped, the store's size and its commit
//!   batches;
//! - the cluster, when on: its members (rank, role, clock offset, heartbeat
//!   age), the primary, this node's log lag;
//! - charts of the request rate and latency (HTTP and RPC, median and 99th
//!   percentile) over the last minutes watched, from the node's own metrics.
//!
//! It is updated live over server-sent events (`/observer/api/events`): a
//! frame every `sample_interval_ms` (1 s), and a restart at once, marked on
//! the page. The page is plain HTML, CSS and JavaScript built into the
//! binary (`web/observer/`), with no build step and nothing from another
//! origin; it is served with a strict Content-Security-Policy (no inline
//! script or style) and shows every name as text (`textContent`, never
//! `innerHTML`).
//!
//! # JSON API
//!
//! | request | answer |
//! |---|---|
//! | `GET /observer/api/tree` | [`TreeView`] of the root |
//! | `GET /observer/api/listeners` | list of [`ListenerView`] |
//! | `GET /observer/api/chat` | [`ChatView`] |
//! | `GET /observer/api/cluster` | [`ClusterView`] |
//! | `GET /observer/api/history` | list of [`Sample`], oldest first |
//! | `GET /observer/api/events` | `text/event-stream`: `history` (the samples), then `frame` (`{tree, listeners, chat, cluster, sample, watchers}`) every interval, and `restart` (`{supervisor, child, reason, at_ms}`) as they happen |
//! | `POST /observer/api/child/terminate` | `{"path": ["chat_sup", "chat_hub"]}`: `terminate_child` (stopped, not restarted) |
//! | `POST /observer/api/child/restart` | same body: stopped if running, then `restart_child` |
//! | `POST /observer/api/child/kill` | same body: killed; its supervisor restarts it as its restart type says |
//! | `POST /observer/api/listener/suspend` | `{"listener": "rpc"}`: stops accepting, keeps the connections |
//! | `POST /observer/api/listener/resume` | same body: listens again |
//!
//! A child is named by its `path`: the ids from the root's children down
//! to it, as [`TreeView::path`] gives it. An action answers `{"ok": true}`,
//! or 400 (bad body), 404 (no such child or listener), 409 (it cannot be
//! done now: not running, ...). `corral observe` prints the tree from the
//! same API.
//!
//! # Actions are guarded
//!
//! Off unless `[observer] admin = true`; then a request must carry the
//! admin token (`Authorization: Bearer <token>`, compared in constant
//! time) or, with `trust_loopback`, come from a loopback address naming a
//! loopback host (`127.0.0.1`, `[::1]`, `localhost`: a page elsewhere
//! cannot use DNS rebinding). A request a browser marks cross-site
//! (`Sec-Fetch-Site`, or an `Origin` other than its own host) is refused
//! whatever it carries. Refusals are 403. Every action and refusal is
//! logged (target `corral::observer`) with the client's address and how it
//! was let in (`token` or `loopback`).
//!
//! # Cost
//!
//! Nothing runs while no one watches: the sampler task starts with the
//! first live stream and ends with the last, and the restart hook then
//! only counts watchers. The charts hold the samples taken while watched.
//! A watched node pays one tree walk (a call to each supervisor), a read
//! of its counters and one JSON frame per interval.

mod actions;
mod auth;
mod collect;
mod live;
mod routes;
mod settings;
mod view;

pub use settings::ObserverSettings;
pub use view::{
    ChatView, ClusterView, ListenerView, MemberView, QueueView, Sample, TopicView, TreeView,
};

pub(crate) use collect::Sources;

use crate::http::Handler;
use crate::supervisor::{RestartHook, Supervisor};
use live::Live;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A node's observer: its live engine and its routes. Built by the node
/// ([`Node::observer`](crate::node::Node::observer)); cheap to clone.
#[derive(Clone)]
pub struct Observer {
    live: Arc<Live>,
    settings: ObserverSettings,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("watchers", &self.watchers())
            .finish_non_exhaustive()
    }
}

impl Observer {
    pub(crate) fn new(
        settings: ObserverSettings,
        sources: Sources,
        shutdown: CancellationToken,
    ) -> Observer {
        Observer {
            live: Live::new(sources, settings.clone()),
            settings,
            shutdown,
        }
    }

    /// Gives the observer the running tree's root.
    pub(crate) fn set_root(&self, root: Supervisor) {
        let _ = self.live.sources.root.set(root);
    }

    /// The hook the root's supervisors call on every restart: sent to the
    /// watchers at once.
    pub(crate) fn restart_hook(&self) -> RestartHook {
        let live = Arc::downgrade(&self.live);
        RestartHook::new(move |e| {
            if let Some(live) = live.upgrade() {
                live.restarted(e);
            }
        })
    }

    /// The routes under `/observer`.
    pub(crate) fn handler(&self) -> impl Handler {
        routes::ObserverRoutes {
            live: self.live.clone(),
            settings: self.settings.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Live streams open now.
    pub fn watchers(&self) -> usize {
        self.live.watchers()
    }

    /// Whether the sampler task runs (only while someone watches).
    pub fn is_sampling(&self) -> bool {
        self.live.is_sampling()
    }
}
