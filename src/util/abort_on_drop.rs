//! A task owned by a value: dropping the value aborts the task.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::task::JoinHandle;

/// Owns a spawned task and aborts it when dropped, however its owner ended
/// (an actor that is killed runs no `post_stop`, but its state is dropped).
/// Awaiting it waits for the task to end.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(JoinHandle<()>);

impl AbortOnDrop {
    /// Takes ownership of `task`.
    pub(crate) fn new(task: JoinHandle<()>) -> Self {
        AbortOnDrop(task)
    }

    /// Aborts the task and waits until it is gone, so that what it owned
    /// (a listening socket, say) is closed when this returns; an abort alone
    /// drops the task later.
    pub(crate) async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Future for AbortOnDrop {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
