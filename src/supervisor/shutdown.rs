//! Stopping a child as its [`Shutdown`] says: kill, stop-then-kill after a
//! timeout, or stop and wait.

use super::exit::SHUTDOWN;
use super::spec::Shutdown;
use futures::future::join_all;
use ractor::{ActorCell, ActorStatus};

/// Stops one child and waits until it has ended.
pub(crate) async fn shutdown_child(child: &ActorCell, how: Shutdown) {
    match how {
        Shutdown::BrutalKill => {
            child.kill();
            let _ = child.wait(None).await;
        }
        Shutdown::Timeout(limit) => {
            child.stop(Some(SHUTDOWN.to_string()));
            if child.wait(Some(limit)).await.is_err() {
                child.kill();
                let _ = child.wait(None).await;
            }
        }
        Shutdown::Infinity => {
            child.stop(Some(SHUTDOWN.to_string()));
            let _ = child.wait(None).await;
        }
    }
}

/// Stops many children at once (a dynamic supervisor's children), all with
/// the same shutdown, and waits until all have ended. With a timeout, one
/// timer covers them all: the children still alive when it fires are killed.
///
/// The children are unlinked from `sup` first: the supervisor is stopping and
/// will not handle their exits, so they need not queue one event each.
pub(crate) async fn shutdown_concurrently(
    sup: &ActorCell,
    children: Vec<ActorCell>,
    how: Shutdown,
) {
    for c in &children {
        c.unlink(sup.clone());
    }
    match how {
        Shutdown::BrutalKill => {
            for c in &children {
                c.kill();
            }
        }
        Shutdown::Timeout(_) | Shutdown::Infinity => {
            // Unlinked, nobody reads the reason: spare an allocation each.
            for c in &children {
                c.stop(None);
            }
        }
    }
    let all = join_all(children.iter().map(|c| c.wait(None)));
    match how {
        Shutdown::Timeout(limit) => {
            if tokio::time::timeout(limit, all).await.is_err() {
                for c in &children {
                    if c.get_status() != ActorStatus::Stopped {
                        c.kill();
                    }
                }
                join_all(children.iter().map(|c| c.wait(None))).await;
            }
        }
        _ => {
            all.await;
        }
    }
}
