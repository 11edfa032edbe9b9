//! What a supervisor keeps of its children's lives for the observer:
//! restarts, the last reason (the exit's, a sibling's under rest_for_one,
//! `restart_child`), uptime; its own restarts in the tree; the reason given
//! to the restart hook.
//!
//! Tests synchronise on events; no assertion is about time.

mod support {
    pub(crate) mod cell_of;
    pub(crate) mod child_spec;
    pub(crate) mod children;
    pub(crate) mod cmd_crash;
    pub(crate) mod events;
}

use corral::supervisor::{
    ChildInfo, RestartHook, Strategy, Supervisor, SupervisorFlags, SupervisorSpec,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::cell_of::cell_of;
use support::child_spec::child;
use support::children::send;
use support::cmd_crash::crash;
use support::events::{probe, started, Ev, Events};

/// Reads events until `name` has started (stops come first on a restart).
async fn until_started(ev: &mut Events, name: &str) {
    while ev.next().await != Ev::Started(name.to_string()) {}
}

fn row<'a>(rows: &'a [ChildInfo], id: &str) -> &'a ChildInfo {
    rows.iter()
        .find(|c| c.id.as_deref() == Some(id))
        .expect("child")
}

#[tokio::test]
async fn restarts_and_reasons_are_kept_per_child() {
    let (p, mut ev) = probe();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let told = reasons.clone();
    let hook = RestartHook::new(move |e| {
        told.lock()
            .unwrap()
            .push(format!("{} {} {}", e.supervisor, e.child, e.reason))
    })
    .then(RestartHook::new(|_| {}));
    let sup = Supervisor::start(
        SupervisorSpec::new("hist")
            .flags(
                SupervisorFlags::new(Strategy::RestForOne).intensity(10, Duration::from_secs(60)),
            )
            .on_restart(hook)
            .child(child("a", &p))
            .child(child("b", &p))
            .child(child("c", &p)),
    )
    .await
    .unwrap();
    for n in ["a", "b", "c"] {
        ev.expect(started(n)).await;
    }
    let rows = sup.which_children().await.unwrap();
    for n in ["a", "b", "c"] {
        let h = &row(&rows, n).history;
        assert_eq!((h.restarts, h.last_restart_reason.as_deref()), (0, None));
        assert!(h.uptime.is_some() && h.since_last_restart.is_none());
        assert_eq!(
            row(&rows, n).restart,
            corral::supervisor::Restart::Permanent
        );
    }

    // b crashes: b and c (after it) restart; a does not.
    send(&cell_of(&sup, "b").await, crash);
    until_started(&mut ev, "b").await;
    until_started(&mut ev, "c").await;
    let rows = sup.which_children().await.unwrap();
    assert_eq!(row(&rows, "a").history.restarts, 0);
    let b = &row(&rows, "b").history;
    assert_eq!(b.restarts, 1);
    assert_eq!(b.last_restart_reason.as_deref(), Some("crash on command"));
    assert!(b.since_last_restart.is_some());
    let c = &row(&rows, "c").history;
    assert_eq!(c.restarts, 1);
    assert_eq!(
        c.last_restart_reason.as_deref(),
        Some("rest_for_one: b exited")
    );
    assert_eq!(*reasons.lock().unwrap(), ["hist b crash on command"]);
    let tree = sup.tree().await.unwrap();
    let stats = tree.supervisor.expect("a supervisor's figures");
    assert_eq!((stats.restarts, stats.max_restarts), (1, 10));
    assert_eq!(tree.find("c").unwrap().history.restarts, 1);

    // Terminated: no uptime; restarted by hand: counted, with its reason.
    sup.terminate_child("a").await.unwrap();
    let rows = sup.which_children().await.unwrap();
    assert!(row(&rows, "a").history.uptime.is_none());
    sup.restart_child("a").await.unwrap();
    until_started(&mut ev, "a").await;
    let rows = sup.which_children().await.unwrap();
    let a = &row(&rows, "a").history;
    assert_eq!(a.restarts, 1);
    assert_eq!(a.last_restart_reason.as_deref(), Some("restart_child"));
    assert!(a.uptime.is_some());
    // restart_child is no restart of the supervisor's (no intensity, no hook).
    assert_eq!(reasons.lock().unwrap().len(), 1);
    sup.stop().await;
}
