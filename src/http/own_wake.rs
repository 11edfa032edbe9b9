//! A future polled only when it has woken its task itself.
//!
//! A connection's task races the connection against side futures (the
//! drain signal, the [`watch`](super::deadline::watch)er). `select!` polls
//! every branch each time the task wakes, and the task wakes for every
//! request, so each side future's poll (a mutex for a cancellation token,
//! a waker registration for a sleep) is paid per request, though they
//! resolve once in a connection's life. Wrapped in [`OnOwnWake`], a side
//! future is polled at first and then only after it has woken the task:
//! the other polls cost a flag load and a waker comparison.

use futures::task::{waker_ref, ArcWake};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// `F`, polled only after it has woken its task (see the module docs).
pub(crate) struct OnOwnWake<F> {
    fut: F,
    flag: Arc<Flag>,
    /// The task waker last given to `flag`.
    task: Option<Waker>,
}

struct Flag {
    /// Set by the inner future's waker; the inner future is polled only
    /// when it is set.
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl ArcWake for Flag {
    fn wake_by_ref(flag: &Arc<Self>) {
        flag.woken.store(true, Ordering::Release);
        if let Some(task) = &*flag.task.lock().unwrap_or_else(|e| e.into_inner()) {
            task.wake_by_ref();
        }
    }
}

impl<F: Future + Unpin> OnOwnWake<F> {
    pub(crate) fn new(fut: F) -> Self {
        OnOwnWake {
            fut,
            flag: Arc::new(Flag {
                woken: AtomicBool::new(true),
                task: Mutex::new(None),
            }),
            task: None,
        }
    }
}

impl<F: Future + Unpin> Future for OnOwnWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if !this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            *this.flag.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            this.task = Some(cx.waker().clone());
        }
        // Cleared before the poll: a wake during it is seen next time.
        if !this.flag.woken.load(Ordering::Acquire)
            || !this.flag.woken.swap(false, Ordering::AcqRel)
        {
            return Poll::Pending;
        }
        let waker = waker_ref(&this.flag);
        Pin::new(&mut this.fut).poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts its polls; ready once `open` is set, waking its task then.
    struct Gate {
        polls: Arc<AtomicUsize>,
        open: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if self.open.load(Ordering::Relaxed) {
                return Poll::Ready(());
            }
            *self.waker.lock().expect("not poisoned") = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn polled_at_first_and_after_its_own_wake_only() {
        let polls = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicBool::new(false));
        let inner_waker = Arc::new(Mutex::new(None::<Waker>));
        let mut fut = OnOwnWake::new(Gate {
            polls: polls.clone(),
            open: open.clone(),
            waker: inner_waker.clone(),
        });
        let woken = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl ArcWake for Count {
            fn wake_by_ref(c: &Arc<Self>) {
                c.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let task = futures::task::waker(Arc::new(Count(woken.clone())));
        let mut cx = Context::from_waker(&task);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        // The task wakes for other reasons: the inner future is not polled.
        for _ in 0..10 {
            assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        // It wakes the task itself: the task is woken, and it is polled.
        open.store(true, Ordering::Relaxed);
        let inner = inner_waker
            .lock()
            .expect("not poisoned")
            .take()
            .expect("registered");
        inner.wake();
        assert_eq!(woken.load(Ordering::Relaxed), 1);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_sleep_inside_resolves_in_a_select() {
        let sleep = OnOwnWake::new(Box::pin(tokio::time::sleep(Duration::from_millis(20))));
        let never = std::future::pending::<()>();
        tokio::select! {
            () = sleep => {}
            () = never => unreachable!(),
        }
    }
}
