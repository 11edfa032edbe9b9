//! Stopping children: brutal kill, timeout, infinity, and races, ported
//! from OTP's supervisor_SUITE.

mod support {
    pub(crate) mod cell_of;
    pub(crate) mod child_spec;
    pub(crate) mod children;
    pub(crate) mod cmd_crash;
    pub(crate) mod cmd_kill;
    pub(crate) mod cmd_normal;
    pub(crate) mod events;
    pub(crate) mod gone;
    pub(crate) mod quiet;
    pub(crate) mod stopped;
    pub(crate) mod take;
}

use corral::supervisor::{Restart, Shutdown, Supervisor, SupervisorSpec};
use std::time::Duration;
use support::cell_of::cell_of;
use support::child_spec::{child, child_with};
use support::children::{send, Switch};
use support::cmd_crash::crash;
use support::cmd_kill::kill;
use support::cmd_normal::normal;
use support::events::{probe, started};
use support::gone::gone;
use support::stopped::stopped;

/// A child too slow to stop within its shutdown timeout is killed.
#[tokio::test]
async fn sup_stop_timeout() {
    let (p, mut ev) = probe();
    let slow = child_with("slow", &p, Switch::default(), Duration::from_secs(3600))
        .shutdown(Shutdown::Timeout(Duration::from_millis(50)));
    let quick = child_with("quick", &p, Switch::default(), Duration::from_millis(1))
        .shutdown(Shutdown::Timeout(Duration::from_secs(10)));
    let sup = Supervisor::start(
        SupervisorSpec::new("sup_stop_timeout")
            .child(slow)
            .child(quick),
    )
    .await
    .unwrap();
    ev.take(2).await;
    let slow_cell = cell_of(&sup, "slow").await;
    sup.stop().await;
    // quick stops in time; slow is killed before its post_stop finishes.
    ev.expect(stopped("quick")).await;
    gone(&slow_cell).await;
    assert!(ev.quiet().await, "slow never finished post_stop");
}

/// brutal_kill kills at once: no post_stop.
#[tokio::test]
async fn sup_stop_brutal_kill() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("sup_stop_brutal_kill")
            .child(child("a", &p).shutdown(Shutdown::BrutalKill))
            .child(child("b", &p)),
    )
    .await
    .unwrap();
    ev.take(2).await;
    let a = cell_of(&sup, "a").await;
    sup.stop().await;
    ev.expect(stopped("b")).await;
    gone(&a).await;
    assert!(ev.quiet().await);
}

/// infinity waits for the child however long it takes.
#[tokio::test]
async fn sup_stop_infinity() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("sup_stop_infinity").child(
            child_with("a", &p, Switch::default(), Duration::from_millis(200))
                .shutdown(Shutdown::Infinity),
        ),
    )
    .await
    .unwrap();
    ev.expect(started("a")).await;
    sup.stop().await;
    // stop() returned after the child's post_stop completed.
    assert!(!ev.quiet().await);
    ev.expect(stopped("a")).await;
}

/// Children that exit by themselves while the supervisor is stopping them
/// (or right before) do not upset it.
#[tokio::test]
async fn sup_stop_race() {
    for round in 0..50 {
        let (p, mut ev) = probe();
        let sup = Supervisor::start(
            SupervisorSpec::new("sup_stop_race")
                .child(child("a", &p))
                .child(child("b", &p).restart(Restart::Transient))
                .child(child("c", &p).shutdown(Shutdown::BrutalKill)),
        )
        .await
        .unwrap();
        ev.take(3).await;
        let (a, b, c) = (
            cell_of(&sup, "a").await,
            cell_of(&sup, "b").await,
            cell_of(&sup, "c").await,
        );
        match round % 3 {
            0 => send(&a, crash),
            1 => send(&b, normal),
            _ => send(&c, kill),
        }
        sup.stop().await;
        gone(&a).await;
        gone(&b).await;
        gone(&c).await;
        // A racing restart may have started a fresh "a"; it must be gone too.
        assert!(sup.which_children().await.is_err(), "supervisor gone");
    }
}

/// terminate_child racing with the child's own exit.
#[tokio::test]
async fn terminate_child_race() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(SupervisorSpec::new("terminate_child_race"))
        .await
        .unwrap();
    for _ in 0..50 {
        let spec = child("c", &p).restart(Restart::Transient);
        let c = sup.start_child(spec).await.unwrap().unwrap();
        ev.expect(started("c")).await;
        send(&c, normal);
        sup.terminate_child("c").await.unwrap();
        gone(&c).await;
        sup.delete_child("c").await.unwrap();
        while !ev.quiet().await {
            ev.next().await;
        }
    }
    sup.stop().await;
}
