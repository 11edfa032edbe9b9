//! `acceptor_sup`: the supervisor of a listener's connections, as Ranch's
//! `ranch_conns_sup` is: a supervisor made for one kind of child, a great
//! many of them, each temporary.
//!
//! Each connection is a task, not an actor: an idle connection then costs
//! its socket, its protocol's state and a row here, and no mailboxes (a
//! ractor actor's four channels cost ~7 KB before it does anything). What a
//! supervisor owes its children it still does: it knows each one (its
//! uptime), counts them, answers `which_children`, `count_children` and the
//! tree's `describe` as a `simple_one_for_one` supervisor, and takes them all
//! with it when it ends: stopped, they are aborted once the listener's drain
//! timeout has passed; killed, they are aborted at once. A connection never
//! restarts (temporary); one that panics is logged and ends alone.

use super::shared::lock;
use crate::supervisor::{
    ChildCounts, ChildHistory, ChildInfo, ChildKind, ChildState, Restart, Strategy,
    SupervisorError, SupervisorFlags,
};
use crate::supervisor::{Description, DynamicDescription, SupervisorMsg};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// How long a stopping acceptor_sup waits for its aborted connections to be
/// gone (their sockets closed) before it reports itself stopped.
const ABORT_WAIT: Duration = Duration::from_secs(5);

/// The template id the tree draws the connections under.
const TEMPLATE: &str = "connection";

/// The connections of one incarnation of acceptor_sup.
pub(crate) struct Conns {
    inner: Mutex<Registry>,
    /// Told when the last connection of a closed registry is gone.
    emptied: Notify,
}

struct Registry {
    /// Set when acceptor_sup ends: no connection starts any more.
    closed: bool,
    next: u64,
    running: HashMap<u64, Entry>,
}

struct Entry {
    task: AbortHandle,
    started: Instant,
}

/// acceptor_sup has ended: the connection was not started.
#[derive(Debug)]
pub(crate) struct Closed;

/// Takes a connection's row out of the registry when its task ends, however
/// it ends (returned, panicked, aborted).
struct Registered {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut r = lock(&self.conns.inner);
        r.running.remove(&self.id);
        if r.closed && r.running.is_empty() {
            self.conns.emptied.notify_waiters();
        }
    }
}

impl Conns {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Conns {
            inner: Mutex::new(Registry {
                closed: false,
                next: 0,
                running: HashMap::new(),
            }),
            emptied: Notify::new(),
        })
    }

    /// Starts `connection` as a child task; `Err` (and `connection` dropped,
    /// its socket closed) if acceptor_sup has ended.
    pub(crate) fn start<F>(self: &Arc<Self>, connection: F) -> Result<(), Closed>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut r = lock(&self.inner);
        if r.closed {
            return Err(Closed);
        }
        let id = r.next;
        r.next += 1;
        let registered = Registered {
            conns: self.clone(),
            id,
        };
        // The row goes in before the task can end: its `Registered` waits
        // for this lock to take the row out.
        let task = tokio::spawn(async move {
            let _registered = registered;
            connection.await;
        });
        r.running.insert(
            id,
            Entry {
                task: task.abort_handle(),
                started: Instant::now(),
            },
        );
        Ok(())
    }

    /// Connections running now.
    pub(crate) fn running(&self) -> usize {
        lock(&self.inner).running.len()
    }

    /// Starts no connection any more and aborts those running (they are
    /// dropped at their next await; see [`Conns::close_and_wait`]).
    pub(crate) fn close(&self) {
        let tasks: Vec<AbortHandle> = {
            let mut r = lock(&self.inner);
            r.closed = true;
            r.running.values().map(|e| e.task.clone()).collect()
        };
        for t in tasks {
            t.abort();
        }
    }

    /// Closes, then waits (at most `limit`) until every connection is gone.
    async fn close_and_wait(&self, limit: Duration) {
        let emptied = self.emptied.notified();
        tokio::pin!(emptied);
        emptied.as_mut().enable();
        self.close();
        if self.running() == 0 {
            return;
        }
        let _ = tokio::time::timeout(limit, emptied).await;
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        let r = lock(&self.inner);
        r.running
            .values()
            .map(|e| ChildInfo {
                id: None,
                state: ChildState::Task,
                kind: ChildKind::Worker,
                restart: Restart::Temporary,
                history: ChildHistory {
                    uptime: Some(e.started.elapsed()),
                    ..ChildHistory::default()
                },
            })
            .collect()
    }
}

/// The acceptor_sup actor: answers as a supervisor, owns the registry.
pub(crate) struct ConnsSup;

pub(crate) struct ConnsSupArgs {
    pub(crate) name: Arc<str>,
    pub(crate) conns: Arc<Conns>,
}

pub(crate) struct State {
    name: Arc<str>,
    conns: Arc<Conns>,
}

impl Drop for State {
    /// However acceptor_sup ended (a kill runs no `post_stop`), its
    /// connections end with it.
    fn drop(&mut self) {
        self.conns.close();
    }
}

impl State {
    fn describe(&self) -> Description {
        // OTP's defaults; nothing here restarts, so they are never reached.
        let flags = SupervisorFlags::default();
        let running = self.conns.running();
        Description {
            name: self.name.clone(),
            strategy: Strategy::OneForOne,
            children: Vec::new(),
            dynamic: Some(DynamicDescription {
                template: Arc::from(TEMPLATE),
                running,
                total: running,
            }),
            restarts: 0,
            max_restarts: flags.max_restarts,
            period: flags.period,
        }
    }
}

/// The answer to what acceptor_sup does not do: its children are made by
/// the listener, and end only by themselves or with it.
fn unsupported<T>() -> Result<T, SupervisorError> {
    Err(SupervisorError::Unsupported("listener's connection"))
}

impl Actor for ConnsSup {
    type Msg = SupervisorMsg;
    type State = State;
    type Arguments = ConnsSupArgs;

    async fn pre_start(
        &self,
        _: ActorRef<SupervisorMsg>,
        args: ConnsSupArgs,
    ) -> Result<State, ActorProcessingErr> {
        Ok(State {
            name: args.name,
            conns: args.conns,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::WhichChildren(reply) => {
                let _ = reply.send(state.conns.which_children());
            }
            SupervisorMsg::CountChildren(reply) => {
                let n = state.conns.running();
                let _ = reply.send(ChildCounts {
                    specs: 1,
                    active: n,
                    supervisors: 0,
                    workers: n,
                });
            }
            SupervisorMsg::Describe(reply) => {
                let _ = reply.send(state.describe());
            }
            SupervisorMsg::StartChild(_, reply) => {
                let _ = reply.send(unsupported());
            }
            SupervisorMsg::TerminateChild(_, reply) | SupervisorMsg::DeleteChild(_, reply) => {
                let _ = reply.send(unsupported());
            }
            SupervisorMsg::RestartChild(_, reply) => {
                let _ = reply.send(unsupported());
            }
            SupervisorMsg::GetChildSpec(_, reply) => {
                let _ = reply.send(unsupported());
            }
            SupervisorMsg::TryAgain(..) => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<SupervisorMsg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        // The listener, stopped first, has given them the drain timeout.
        state.conns.close_and_wait(ABORT_WAIT).await;
        tracing::debug!(supervisor = %state.name, "supervisor stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_registry_starts_nothing_and_aborts_what_runs() {
        let conns = Conns::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        conns
            .start(async move {
                let _tx = tx;
                std::future::pending::<()>().await;
            })
            .expect("open");
        assert_eq!(conns.running(), 1);
        conns.close_and_wait(Duration::from_secs(5)).await;
        assert_eq!(conns.running(), 0);
        // The task was dropped: its sender with it.
        assert!(rx.await.is_err());
        assert!(conns.start(async {}).is_err());
    }

    #[tokio::test]
    async fn a_connection_that_ends_leaves_the_registry() {
        let conns = Conns::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        conns
            .start(async move {
                let _ = rx.await;
            })
            .expect("open");
        assert_eq!(conns.which_children().len(), 1);
        let _ = tx.send(());
        for _ in 0..200 {
            if conns.running() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(conns.running(), 0);
    }
}
