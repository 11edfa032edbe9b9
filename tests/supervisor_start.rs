//! Starting supervisors and children, ported from OTP's supervisor_SUITE.

mod support {
    pub(crate) mod cell_of;
    pub(crate) mod child_spec;
    pub(crate) mod children;
    pub(crate) mod cmd_crash;
    pub(crate) mod events;
    pub(crate) mod layout;
    pub(crate) mod quiet;
    pub(crate) mod stopped;
    pub(crate) mod switch;
    pub(crate) mod take;
}

use corral::supervisor::{
    AutoShutdown, ChildKind, ChildSpec, ChildState, Restart, Shutdown, Strategy, Supervisor,
    SupervisorError, SupervisorFlags, SupervisorSpec,
};
use std::time::Duration;
use support::cell_of::cell_of;
use support::child_spec::{child, child_with};
use support::children::{send, StartMode, Switch};
use support::cmd_crash::crash;
use support::events::{probe, started, Ev};
use support::layout::layout;
use support::stopped::stopped;

/// A child whose start returns ignore is kept with no process (unless it is
/// temporary, then it is forgotten); restart_child on it ignores again.
#[tokio::test]
async fn sup_start_ignore_child() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(SupervisorSpec::new("sup_start_ignore_child"))
        .await
        .unwrap();
    let ignore = Switch::default();
    ignore.set(StartMode::Ignore);
    let r = sup
        .start_child(child_with("ignored", &p, ignore.clone(), Duration::ZERO))
        .await
        .unwrap();
    assert!(r.is_none());
    let r = sup.start_child(child("runs", &p)).await.unwrap();
    assert!(r.is_some());
    ev.expect(started("runs")).await;
    assert_eq!(layout(&sup).await, vec!["ignored:undefined", "runs"]);
    let counts = sup.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active, counts.workers), (2, 1, 2));
    assert!(sup.restart_child("ignored").await.unwrap().is_none());
    // A temporary child that is ignored is not kept.
    let r = sup
        .start_child(child_with("temp", &p, ignore, Duration::ZERO).restart(Restart::Temporary))
        .await
        .unwrap();
    assert!(r.is_none());
    assert_eq!(layout(&sup).await, vec!["ignored:undefined", "runs"]);
    sup.stop().await;
}

/// start_child of a child whose start fails returns the error and keeps no spec.
#[tokio::test]
async fn sup_start_child_returns_error() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(SupervisorSpec::new("sup_start_child_returns_error"))
        .await
        .unwrap();
    let fail = Switch::default();
    fail.set(StartMode::Fail);
    let err = sup
        .start_child(child_with("bad", &p, fail, Duration::ZERO))
        .await
        .unwrap_err();
    ev.expect(Ev::StartFailed("bad".into())).await;
    match err {
        SupervisorError::StartFailed { id, source } => {
            assert_eq!(id, "bad");
            assert!(source.to_string().contains("refused to start"), "{source}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(layout(&sup).await.is_empty());
    sup.stop().await;
}

/// If a child fails to start while the supervisor starts, the children
/// already started are stopped (in reverse order) and the start fails with
/// that child's id and error.
#[tokio::test]
async fn sup_start_fail_stops_started_children() {
    let (p, mut ev) = probe();
    let fail = Switch::default();
    fail.set(StartMode::Fail);
    let err = Supervisor::start(
        SupervisorSpec::new("sup_start_fail")
            .child(child("a", &p))
            .child(child("b", &p))
            .child(child_with("c", &p, fail, Duration::ZERO))
            .child(child("d", &p)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, SupervisorError::StartFailed { id, .. } if id == "c"),
        "{err:?}"
    );
    assert_eq!(
        ev.take(5).await,
        vec![
            started("a"),
            started("b"),
            Ev::StartFailed("c".into()),
            stopped("b"),
            stopped("a")
        ]
    );
    assert!(ev.quiet().await, "d never started");
}

/// Children start in list order and stop in reverse order; a child added
/// with start_child goes at the end.
#[tokio::test]
async fn order_of_children() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("order_of_children")
            .flags(
                SupervisorFlags::new(Strategy::RestForOne).intensity(10, Duration::from_secs(60)),
            )
            .child(child("a", &p))
            .child(child("b", &p))
            .child(child("c", &p)),
    )
    .await
    .unwrap();
    assert_eq!(
        ev.take(3).await,
        vec![started("a"), started("b"), started("c")]
    );
    sup.start_child(child("d", &p)).await.unwrap();
    ev.expect(started("d")).await;
    assert_eq!(layout(&sup).await, vec!["a", "b", "c", "d"]);
    // A restart keeps the order.
    send(&cell_of(&sup, "c").await, crash);
    assert_eq!(
        ev.take(3).await,
        vec![stopped("d"), started("c"), started("d")]
    );
    assert_eq!(layout(&sup).await, vec!["a", "b", "c", "d"]);
    // terminate + restart of a middle child keeps its place.
    sup.terminate_child("b").await.unwrap();
    ev.expect(stopped("b")).await;
    sup.restart_child("b").await.unwrap();
    ev.expect(started("b")).await;
    assert_eq!(layout(&sup).await, vec!["a", "b", "c", "d"]);
    sup.stop().await;
    assert_eq!(
        ev.take(4).await,
        vec![stopped("d"), stopped("c"), stopped("b"), stopped("a")]
    );
}

/// Flags and child specs are validated as OTP validates them; defaults are OTP's.
#[tokio::test]
async fn sup_flags() {
    let d = SupervisorFlags::default();
    assert_eq!(d.strategy, Strategy::OneForOne);
    assert_eq!(d.max_restarts, 1);
    assert_eq!(d.period, Duration::from_secs(5));
    assert_eq!(d.auto_shutdown, AutoShutdown::Never);
    let (p, _ev) = probe();
    let spec = child("w", &p);
    assert_eq!(spec.restart_type(), Restart::Permanent);
    assert_eq!(
        spec.shutdown_type(),
        Shutdown::Timeout(Duration::from_secs(5))
    );
    assert_eq!(spec.child_kind(), ChildKind::Worker);
    let sup_spec = ChildSpec::supervisor("s", SupervisorSpec::new("s"));
    assert_eq!(sup_spec.shutdown_type(), Shutdown::Infinity);
    assert_eq!(sup_spec.child_kind(), ChildKind::Supervisor);

    let zero_period = SupervisorFlags::default().intensity(1, Duration::ZERO);
    let err = Supervisor::start(SupervisorSpec::new("bad").flags(zero_period))
        .await
        .unwrap_err();
    assert!(matches!(err, SupervisorError::BadFlags(_)), "{err:?}");

    let dup = SupervisorSpec::new("dup")
        .child(child("x", &p))
        .child(child("x", &p));
    assert!(matches!(
        Supervisor::start(dup).await,
        Err(SupervisorError::BadChildSpec { .. })
    ));

    let empty = SupervisorSpec::new("empty").child(child("", &p));
    assert!(matches!(
        Supervisor::start(empty).await,
        Err(SupervisorError::BadChildSpec { .. })
    ));

    // significant needs auto_shutdown, and a non-permanent child.
    let never = SupervisorSpec::new("never")
        .child(child("x", &p).restart(Restart::Transient).significant(true));
    assert!(matches!(
        Supervisor::start(never).await,
        Err(SupervisorError::BadChildSpec { .. })
    ));
    let perm = SupervisorSpec::new("perm")
        .flags(SupervisorFlags::default().auto_shutdown(AutoShutdown::AnySignificant))
        .child(child("x", &p).significant(true));
    assert!(matches!(
        Supervisor::start(perm).await,
        Err(SupervisorError::BadChildSpec { .. })
    ));

    // The same checks apply to start_child.
    let sup = Supervisor::start(SupervisorSpec::new("sup_flags"))
        .await
        .unwrap();
    let err = sup
        .start_child(child("x", &p).restart(Restart::Temporary).significant(true))
        .await
        .unwrap_err();
    assert!(matches!(err, SupervisorError::BadChildSpec { .. }));
    assert!(sup.which_children().await.unwrap().is_empty());
    sup.stop().await;
}

/// A supervisor child shows up as a supervisor in which_children and counts.
#[tokio::test]
async fn supervisor_children_are_counted_as_supervisors() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(SupervisorSpec::new("kinds").child(child("w", &p)).child(
        ChildSpec::supervisor("s", SupervisorSpec::new("s").child(child("x", &p))),
    ))
    .await
    .unwrap();
    ev.take(2).await;
    let counts = sup.count_children().await.unwrap();
    assert_eq!(
        (
            counts.specs,
            counts.active,
            counts.supervisors,
            counts.workers
        ),
        (2, 2, 1, 1)
    );
    let kids = sup.which_children().await.unwrap();
    assert_eq!(kids[1].kind, ChildKind::Supervisor);
    let ChildState::Running(cell) = &kids[1].state else {
        panic!("running")
    };
    let inner = Supervisor::from_cell(cell.clone()).expect("a supervisor");
    assert_eq!(layout(&inner).await, vec!["x"]);
    assert!(Supervisor::from_cell(cell_of(&sup, "w").await).is_none());
    sup.stop().await;
}
