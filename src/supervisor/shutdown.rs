//! Stopping a child as its [`Shutdown`] says: kill, stop-then-kill after a
//! timeout, or stop and wait.

use super::exit::SHUTDOWN;
use super::spec::Shutdown;
use futures::future::join_all;
use ractor::ActorCell;

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
/// the same shutdown, and waits until all have ended.
pub(crate) async fn shutdown_concurrently(children: Vec<ActorCell>, how: Shutdown) {
    match how {
        Shutdown::BrutalKill => {
            for c in &children {
                c.kill();
            }
        }
        Shutdown::Timeout(_) | Shutdown::Infinity => {
            for c in &children {
                c.stop(Some(SHUTDOWN.to_string()));
            }
        }
    }
    let limit = match how {
        Shutdown::Timeout(limit) => Some(limit),
        _ => None,
    };
    let waited = join_all(children.iter().map(|c| c.wait(limit))).await;
    let late: Vec<&ActorCell> = children
        .iter()
        .zip(waited)
        .filter(|(_, w)| w.is_err())
        .map(|(c, _)| c)
        .collect();
    for c in &late {
        c.kill();
    }
    join_all(late.iter().map(|c| c.wait(None))).await;
}
