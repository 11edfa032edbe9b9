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
///
/// Given its connection's [`Activity`] ([`HeadTimer::noting`]), it notes
/// there the deadline of the head hyper waits for, and gives the first head
/// of a fresh hyper connection the deadline carried over from the one
/// before (a hibernation ends a hyper connection, not the wait for a head).
#[derive(Clone, Debug, Default)]
pub(crate) struct HeadTimer {
    activity: Option<Arc<Activity>>,
}

impl HeadTimer {
    /// A timer that notes its heads' deadlines in `activity`.
    pub(crate) fn noting(activity: Arc<Activity>) -> Self {
        HeadTimer {
            activity: Some(activity),
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let deadline = match &self.activity {
            Some(activity) => activity.head_started(deadline),
            None => deadline,
        };
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
/// response written, or given up); and, with a [`HeadTimer::noting`] it,
/// the deadline of the head hyper waits for.
#[derive(Debug)]
pub(crate) struct Activity {
    requests: AtomicU64,
    finished: AtomicU64,
    /// What the head deadlines below count from.
    epoch: Instant,
    /// The deadline of the head being waited for, in ns after `epoch`,
    /// plus 1; 0: none (a request started since).
    head: AtomicU64,
    /// A deadline for the next head's timer, carried over a hibernation
    /// (same encoding).
    carried: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            requests: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            epoch: Instant::now(),
            head: AtomicU64::new(0),
            carried: AtomicU64::new(0),
        }
    }
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

    fn encode(&self, at: Instant) -> u64 {
        let ns = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(ns).unwrap_or(u64::MAX - 1) + 1
    }

    fn decode(&self, v: u64) -> Option<Instant> {
        (v != 0).then(|| self.epoch + Duration::from_nanos(v - 1))
    }

    /// hyper starts waiting for a head until `deadline`: the deadline it
    /// gets (the carried one, if earlier), noted.
    fn head_started(&self, deadline: Instant) -> Instant {
        let deadline = match self.decode(self.carried.swap(0, Ordering::Relaxed)) {
            Some(carried) => carried.min(deadline),
            None => deadline,
        };
        self.head.store(self.encode(deadline), Ordering::Relaxed);
        deadline
    }

    /// The deadline of the head hyper waits for, if it waits for one.
    pub(crate) fn head_deadline(&self) -> Option<Instant> {
        self.decode(self.head.load(Ordering::Relaxed))
    }

    /// Gives the next head's timer `deadline` (if earlier than its own).
    pub(crate) fn carry_head(&self, deadline: Option<Instant>) {
        let v = deadline.map_or(0, |d| self.encode(d));
        self.carried.store(v, Ordering::Relaxed);
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
        // Its head has arrived: no head is waited for until hyper says so.
        activity.head.store(0, Ordering::Relaxed);
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
    Watch::new(tick, first, idle, None, activity).next().await;
}

/// What a [`Watch`] says a connection should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Close: idle for the idle timeout, no request within the first
    /// deadline, or (hibernated) its head's deadline has passed.
    Close,
    /// Hibernate: hyper has served no request for `hibernate_after`.
    Hibernate,
}

/// The state of [`watch`], kept across its calls to [`Watch::next`], for
/// a connection that hibernates: the idle clock runs on through
/// hibernations.
pub(crate) struct Watch<'a> {
    activity: &'a Activity,
    tick: Duration,
    /// The tick while hyper serves HTTP/1 and the connection may hibernate.
    awake_tick: Duration,
    first: Duration,
    idle: Option<Duration>,
    hibernate: Option<Duration>,
    seen: u64,
    since: tokio::time::Instant,
    opened: tokio::time::Instant,
    /// Since when hyper serves HTTP/1 (may hibernate); `None`: not now.
    awake: Option<tokio::time::Instant>,
    /// While hibernated: the deadline of the head the connection waits for.
    head_deadline: Option<tokio::time::Instant>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<'a> Watch<'a> {
    /// Watches `activity` every `tick` (see [`watch`]); with `hibernate`,
    /// says when the connection, while [`Watch::awake`], should hibernate.
    /// The tick is then at most a quarter of `hibernate`.
    pub(crate) fn new(
        tick: Duration,
        first: Duration,
        idle: Option<Duration>,
        hibernate: Option<Duration>,
        activity: &'a Activity,
    ) -> Self {
        let now = tokio::time::Instant::now();
        let awake_tick =
            hibernate.map_or(tick, |h| tick.min((h / 4).max(Duration::from_millis(1))));
        Watch {
            activity,
            tick,
            awake_tick,
            first,
            idle,
            hibernate,
            seen: activity.count(),
            since: now,
            opened: now,
            awake: None,
            head_deadline: None,
            sleep: Box::pin(tokio::time::sleep(tick)),
        }
    }

    /// hyper (HTTP/1) serves the connection from now on: it may hibernate
    /// once no request has started (and none is in progress) for
    /// `hibernate` since the later of now and the last request.
    pub(crate) fn awake(&mut self) {
        let now = tokio::time::Instant::now();
        self.awake = Some(now);
        self.head_deadline = None;
        if self.sleep.deadline() > now + self.awake_tick {
            self.sleep.as_mut().reset(now + self.awake_tick);
        }
    }

    /// The connection hibernates, waiting for a head until `head_deadline`
    /// (if any): [`Watch::next`] closes it then, or when idle.
    pub(crate) fn asleep(&mut self, head_deadline: Option<Instant>) {
        self.awake = None;
        self.head_deadline = head_deadline.map(tokio::time::Instant::from_std);
    }

    /// Resolves with what the connection should do next (see [`Event`]).
    pub(crate) async fn next(&mut self) -> Event {
        use tokio::time::Instant;
        loop {
            self.sleep.as_mut().await;
            let now = Instant::now();
            let count = self.activity.count();
            let busy = self.activity.busy();
            if count != self.seen || busy {
                (self.seen, self.since) = (count, now);
            } else if self
                .idle
                .is_some_and(|idle| now.duration_since(self.since) >= idle)
                || (count == 0 && now.duration_since(self.opened) >= self.first)
                || self.head_deadline.is_some_and(|d| now >= d)
            {
                return Event::Close;
            }
            let tick = if self.awake.is_some() {
                self.awake_tick
            } else {
                self.tick
            };
            self.sleep.as_mut().reset(now + tick);
            if let (Some(after), Some(woke)) = (self.hibernate, self.awake) {
                if !busy && now.duration_since(self.since.max(woke)) >= after {
                    return Event::Hibernate;
                }
            }
        }
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
        let mut later = HeadTimer::default().sleep(Duration::from_secs(3600));
        assert!(later.as_mut().poll(&mut cx).is_pending());
        assert!(later.as_mut().poll(&mut cx).is_pending());
        let mut past = HeadTimer::default().sleep_until(Instant::now());
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
