//! The time limits of one HTTP connection, kept by one watcher per
//! connection instead of a timer per request.
//!
//! hyper arms its header read timeout for every head it reads: a boxed
//! tokio sleep, registered in the runtime's timer wheel while the
//! connection waits for the next request and removed when the head
//! arrives. On a busy keep-alive connection that is most of what a timer
//! wheel does, once per request. Here the HTTP/1 connection gets
//! [`HeadTimer`] instead, whose sleeps only compare a deadline with the
//! clock when hyper polls them. What guarantees that hyper polls them in
//! time is the connection's [`watch`]: it wakes the connection's task every
//! [`tick`], and hyper, woken while it waits for a head, polls that head's
//! sleep. A head that has not arrived by its deadline is cut off at most a
//! tick later (a tick is a quarter of the shortest limit).
//!
//! The same watcher closes a keep-alive connection on which no request has
//! started for the idle timeout, and a connection on which no request at all
//! has started within the header read timeout (a client that connects and
//! sends nothing, or only an HTTP/2 preface, whatever the idle timeout).

use super::{Body, BoxError};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// hyper's timer for the HTTP/1 header read timeout, for connections that
/// are [`watch`]ed: its sleeps register nothing, they compare their
/// deadline with the clock each time they are polled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadTimer;

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep {
            deadline,
            polled: false,
        })
    }
}

/// Ready once its deadline has passed, when polled; it never wakes its
/// task itself (see the module docs).
struct HeadSleep {
    deadline: Instant,
    /// hyper polls a head's sleep first as soon as it waits for the head,
    /// long before the deadline; that poll reads no clock. (Were it late,
    /// the next tick would find the deadline passed.)
    polled: bool,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if !std::mem::replace(&mut self.polled, true) {
            return Poll::Pending;
        }
        if Instant::now() >= self.deadline {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl hyper::rt::Sleep for HeadSleep {}

/// How many requests a connection has started, and finished (their
/// response written, or given up).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    requests: AtomicU64,
    finished: AtomicU64,
}

impl Activity {
    /// Counts a request; returns its number on the connection (from 1).
    pub(crate) fn touch(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// True while a request is in progress (its response not yet written).
    fn busy(&self) -> bool {
        self.finished.load(Ordering::Relaxed) != self.count()
    }
}

/// A request in progress on a connection: counted finished when dropped
/// (with its response's body, once hyper has written it or given up).
#[derive(Debug)]
pub(crate) struct InProgress(Arc<Activity>);

impl InProgress {
    /// Counts a request of `activity` started; returns it and its number
    /// on the connection (from 1).
    pub(crate) fn start(activity: &Arc<Activity>) -> (Self, u64) {
        let nth = activity.touch();
        (InProgress(activity.clone()), nth)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request [`InProgress`] until it is
/// dropped.
pub(crate) struct TrackedBody {
    body: Body,
    _request: InProgress,
}

impl TrackedBody {
    pub(crate) fn new(body: Body, request: InProgress) -> Self {
        TrackedBody {
            body,
            _request: request,
        }
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// How often [`watch`] wakes its connection: a quarter of the shortest of
/// the header read timeout and the idle timeout, and at least a
/// millisecond.
pub(crate) fn tick(header_read: Duration, idle: Option<Duration>) -> Duration {
    let shortest = idle.map_or(header_read, |idle| idle.min(header_read));
    (shortest / 4).max(Duration::from_millis(1))
}

/// Wakes its task every `tick` (so that hyper polls its [`HeadTimer`]
/// sleeps), and resolves once no request has started for `idle` (never if
/// `None`), or when none has started at all within `first`. A connection
/// with a request in progress (its response not fully written) is not
/// idle.
pub(crate) async fn watch(
    tick: Duration,
    first: Duration,
    idle: Option<Duration>,
    activity: &Activity,
) {
    use tokio::time::Instant;
    let mut seen = activity.count();
    let mut since = Instant::now();
    let opened = since;
    let sleep = tokio::time::sleep(tick);
    tokio::pin!(sleep);
    loop {
        sleep.as_mut().await;
        let now = Instant::now();
        let count = activity.count();
        if count != seen || activity.busy() {
            (seen, since) = (count, now);
        } else if idle.is_some_and(|idle| now.duration_since(since) >= idle)
            || (count == 0 && now.duration_since(opened) >= first)
        {
            return;
        }
        sleep.as_mut().reset(now + tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    #[test]
    fn ticks_are_a_quarter_of_the_shortest_limit() {
        let s = Duration::from_secs;
        assert_eq!(tick(s(10), None), Duration::from_millis(2_500));
        assert_eq!(tick(s(10), Some(s(60))), Duration::from_millis(2_500));
        assert_eq!(tick(s(10), Some(s(2))), Duration::from_millis(500));
        assert_eq!(
            tick(Duration::from_millis(2), None),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn a_head_sleep_is_ready_only_after_its_deadline() {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut later = HeadTimer.sleep(Duration::from_secs(3600));
        assert!(later.as_mut().poll(&mut cx).is_pending());
        assert!(later.as_mut().poll(&mut cx).is_pending());
        let mut past = HeadTimer.sleep_until(Instant::now());
        // The first poll reads no clock.
        assert!(past.as_mut().poll(&mut cx).is_pending());
        assert!(past.as_mut().poll(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn watch_resolves_after_idle_and_not_while_requests_start() {
        let activity = Arc::new(Activity::default());
        let idle = Duration::from_millis(400);
        let tick = tick(Duration::from_millis(200), Some(idle));
        let watcher = watch(tick, Duration::from_secs(3600), Some(idle), &activity);
        tokio::pin!(watcher);
        // A request every 250 ms keeps it open (each gap is under 400 ms).
        for _ in 0..4 {
            tokio::select! {
                () = watcher.as_mut() => panic!("closed while requests started"),
                () = tokio::time::sleep(Duration::from_millis(250)) => {
                    drop(InProgress::start(&activity));
                }
            };
        }
        let quiet = Instant::now();
        tokio::time::timeout(Duration::from_secs(60), watcher)
            .await
            .expect("an idle connection was kept");
        // Never before the idle timeout (how late is the tick's business).
        assert!(quiet.elapsed() >= idle, "{:?}", quiet.elapsed());
    }

    #[tokio::test]
    async fn watch_waits_for_a_request_in_progress() {
        let activity = Arc::new(Activity::default());
        let idle = Duration::from_millis(100);
        let (request, _) = InProgress::start(&activity);
        let watcher = watch(tick(idle, Some(idle)), idle, Some(idle), &activity);
        tokio::pin!(watcher);
        // Ten idle timeouts with the response still being written: kept.
        tokio::select! {
            () = watcher.as_mut() => panic!("closed with a request in progress"),
            () = tokio::time::sleep(idle * 10) => {}
        }
        drop(request);
        tokio::time::timeout(Duration::from_secs(60), watcher)
            .await
            .expect("kept after its request finished");
    }

    #[tokio::test]
    async fn watch_resolves_when_no_request_ever_starts() {
        let activity = Activity::default();
        let first = Duration::from_millis(100);
        // No idle timeout: only the first request's deadline ends it.
        tokio::time::timeout(
            Duration::from_secs(30),
            watch(tick(first, None), first, None, &activity),
        )
        .await
        .expect("a connection without any request was kept");
    }
}
