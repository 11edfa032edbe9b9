//! Restart types and strategies, ported from OTP's supervisor_SUITE.

mod support {
    pub(crate) mod cell_of;
    pub(crate) mod child_spec;
    pub(crate) mod children;
    pub(crate) mod cmd_crash;
    pub(crate) mod cmd_kill;
    pub(crate) mod cmd_normal;
    pub(crate) mod cmd_shutdown;
    pub(crate) mod events;
    pub(crate) mod gone;
    pub(crate) mod layout;
    pub(crate) mod quiet;
    pub(crate) mod stopped;
    pub(crate) mod switch;
    pub(crate) mod take;
}

use corral::supervisor::{
    ChildSpec, Restart, RestartHook, Strategy, Supervisor, SupervisorFlags, SupervisorSpec,
};
use ractor::ActorCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::cell_of::cell_of;
use support::child_spec::{child, child_with};
use support::children::{send, StartMode, Switch};
use support::cmd_crash::crash;
use support::cmd_kill::kill;
use support::cmd_normal::normal;
use support::cmd_shutdown::shutdown;
use support::events::{probe, started, Ev, Probe};
use support::gone::gone;
use support::layout::layout;
use support::stopped::stopped;

fn flags(strategy: Strategy, max: u32) -> SupervisorFlags {
    SupervisorFlags::new(strategy).intensity(max, Duration::from_secs(3600))
}

async fn one(restart: Restart, ev: &Probe, name: &str) -> Supervisor {
    Supervisor::start(
        SupervisorSpec::new(name)
            .flags(flags(Strategy::OneForOne, 10))
            .child(child("c", ev).restart(restart)),
    )
    .await
    .expect("supervisor starts")
}

/// How a child is told to exit.
enum Exit {
    /// stop(None).
    Normal,
    /// stop(Some("shutdown")).
    Shutdown,
    /// stop(Some("shutdown: why")).
    ShutdownWith(String),
    /// A handler error.
    Crash,
    /// A panic in the handler.
    Panic,
    /// It kills itself.
    Kill,
}

impl Exit {
    fn send(self, cell: &ActorCell) {
        match self {
            Exit::Normal => send(cell, normal),
            Exit::Shutdown => send(cell, shutdown),
            Exit::ShutdownWith(why) => send(cell, move |myself| {
                myself.stop(Some(format!("shutdown: {why}")));
                Ok(())
            }),
            Exit::Crash => send(cell, crash),
            Exit::Panic => send(cell, |_| panic!("panic on command")),
            Exit::Kill => send(cell, kill),
        }
    }
}

/// Makes the child exit by `exit` and checks whether it came back.
async fn exit_and_check(restart: Restart, exit: Exit, restarted: bool, name: &str) {
    let (p, mut ev) = probe();
    let sup = one(restart, &p, name).await;
    ev.expect(started("c")).await;
    let before = cell_of(&sup, "c").await;
    let runs_post_stop = matches!(exit, Exit::Normal | Exit::Shutdown | Exit::ShutdownWith(_));
    exit.send(&before);
    gone(&before).await;
    if runs_post_stop {
        ev.expect(stopped("c")).await;
    }
    if restarted {
        ev.expect(started("c")).await;
        let after = cell_of(&sup, "c").await;
        assert_ne!(before.get_id(), after.get_id());
    } else {
        // The exit has been handled once the supervisor answers a call after it.
        let layout = layout(&sup).await;
        match restart {
            Restart::Temporary => assert!(layout.is_empty(), "temporary spec dropped: {layout:?}"),
            _ => assert_eq!(layout, vec!["c:undefined"]),
        }
        assert!(ev.quiet().await, "no restart");
    }
    sup.stop().await;
}

#[tokio::test]
async fn permanent_normal() {
    exit_and_check(Restart::Permanent, Exit::Normal, true, "permanent_normal").await;
}

#[tokio::test]
async fn permanent_shutdown() {
    exit_and_check(
        Restart::Permanent,
        Exit::Shutdown,
        true,
        "permanent_shutdown",
    )
    .await;
    exit_and_check(
        Restart::Permanent,
        Exit::ShutdownWith("bye".into()),
        true,
        "permanent_shutdown2",
    )
    .await;
}

#[tokio::test]
async fn permanent_abnormal() {
    exit_and_check(Restart::Permanent, Exit::Crash, true, "permanent_abnormal").await;
    exit_and_check(Restart::Permanent, Exit::Panic, true, "permanent_abnormal2").await;
    exit_and_check(Restart::Permanent, Exit::Kill, true, "permanent_abnormal3").await;
}

#[tokio::test]
async fn transient_normal() {
    exit_and_check(Restart::Transient, Exit::Normal, false, "transient_normal").await;
}

#[tokio::test]
async fn transient_shutdown() {
    exit_and_check(
        Restart::Transient,
        Exit::Shutdown,
        false,
        "transient_shutdown",
    )
    .await;
    exit_and_check(
        Restart::Transient,
        Exit::ShutdownWith("bye".into()),
        false,
        "transient_shutdown2",
    )
    .await;
}

#[tokio::test]
async fn transient_abnormal() {
    exit_and_check(Restart::Transient, Exit::Crash, true, "transient_abnormal").await;
    exit_and_check(Restart::Transient, Exit::Panic, true, "transient_abnormal2").await;
    // A kill is abnormal: a killed transient child is restarted.
    exit_and_check(Restart::Transient, Exit::Kill, true, "transient_abnormal3").await;
}

#[tokio::test]
async fn temporary_normal() {
    exit_and_check(Restart::Temporary, Exit::Normal, false, "temporary_normal").await;
}

#[tokio::test]
async fn temporary_shutdown() {
    exit_and_check(
        Restart::Temporary,
        Exit::Shutdown,
        false,
        "temporary_shutdown",
    )
    .await;
}

#[tokio::test]
async fn temporary_abnormal() {
    exit_and_check(Restart::Temporary, Exit::Crash, false, "temporary_abnormal").await;
    exit_and_check(Restart::Temporary, Exit::Kill, false, "temporary_abnormal2").await;
}

/// A temporary child stopped by a one_for_all group restart is not brought back.
#[tokio::test]
async fn temporary_bystander() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("temporary_bystander")
            .flags(flags(Strategy::OneForAll, 10))
            .child(child("perm", &p))
            .child(child("temp", &p).restart(Restart::Temporary)),
    )
    .await
    .unwrap();
    assert_eq!(ev.take(2).await, vec![started("perm"), started("temp")]);
    send(&cell_of(&sup, "perm").await, crash);
    // The bystander is stopped (post_stop runs), the permanent one comes back alone.
    ev.expect(stopped("temp")).await;
    ev.expect(started("perm")).await;
    assert_eq!(layout(&sup).await, vec!["perm"]);
    assert!(ev.quiet().await);
    sup.stop().await;
}

/// Restarts within the intensity are all made; one more and the
/// supervisor gives up.
#[tokio::test]
async fn multiple_restarts() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("multiple_restarts")
            .flags(flags(Strategy::OneForOne, 3))
            .child(child("c", &p)),
    )
    .await
    .unwrap();
    ev.expect(started("c")).await;
    for _ in 0..3 {
        send(&cell_of(&sup, "c").await, crash);
        ev.expect(started("c")).await;
    }
    send(&cell_of(&sup, "c").await, crash);
    sup.wait().await;
    assert!(ev.quiet().await);
}

/// A failed restart attempt counts toward the intensity: with 3 allowed, a
/// child that cannot start again is tried 3 times, then the supervisor gives up.
#[tokio::test]
async fn failed_restart_attempts_count() {
    let (p, mut ev) = probe();
    let switch = Switch::default();
    let sup = Supervisor::start(
        SupervisorSpec::new("failed_restart_attempts_count")
            .flags(flags(Strategy::OneForOne, 3))
            .child(child_with("c", &p, switch.clone(), Duration::ZERO)),
    )
    .await
    .unwrap();
    ev.expect(started("c")).await;
    switch.set(StartMode::Fail);
    send(&cell_of(&sup, "c").await, crash);
    for _ in 0..3 {
        ev.expect(Ev::StartFailed("c".into())).await;
    }
    sup.wait().await;
    assert!(ev.quiet().await, "no fourth attempt");
}

/// one_for_one: only the failed child restarts; past the intensity the
/// supervisor stops its children and exits.
#[tokio::test]
async fn one_for_one() {
    let (p, mut ev) = probe();
    let (hook, restarts) = recording_hook();
    let sup = Supervisor::start(
        SupervisorSpec::new("one_for_one")
            .on_restart(hook)
            .flags(flags(Strategy::OneForOne, 2))
            .child(child("a", &p))
            .child(child("b", &p)),
    )
    .await
    .unwrap();
    ev.take(2).await;
    let b = cell_of(&sup, "b").await;
    send(&cell_of(&sup, "a").await, crash);
    ev.expect(started("a")).await;
    assert_eq!(cell_of(&sup, "b").await.get_id(), b.get_id(), "b untouched");
    send(&cell_of(&sup, "a").await, crash);
    ev.expect(started("a")).await;
    // The third restart within the period is one too many.
    send(&cell_of(&sup, "a").await, crash);
    ev.expect(stopped("b")).await;
    sup.wait().await;
    assert!(ev.quiet().await);
    assert_eq!(
        *restarts.lock().unwrap(),
        vec![("one_for_one".to_string(), "a".to_string()); 2],
        "the hook saw each restart"
    );
}

/// The (supervisor, child) of each restart a hook was told of.
type Restarts = Arc<Mutex<Vec<(String, String)>>>;

/// A hook that records each restart it is told of.
fn recording_hook() -> (RestartHook, Restarts) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let hook = RestartHook::new(move |e| {
        log.lock()
            .unwrap()
            .push((e.supervisor.to_string(), e.child.to_string()));
    });
    (hook, seen)
}

/// A supervisor started below one with a restart hook inherits it: one hook
/// on the root sees restarts anywhere in the tree.
#[tokio::test]
async fn restart_hook_is_inherited() {
    let (p, mut ev) = probe();
    let (hook, restarts) = recording_hook();
    let root = Supervisor::start(
        SupervisorSpec::new("hooked_root")
            .on_restart(hook)
            .flags(flags(Strategy::OneForOne, 10))
            .child(ChildSpec::supervisor(
                "inner",
                SupervisorSpec::new("inner")
                    .flags(flags(Strategy::OneForOne, 10))
                    .child(child("leaf", &p)),
            )),
    )
    .await
    .unwrap();
    ev.expect(started("leaf")).await;
    let inner = cell_of(&root, "inner").await;
    let inner = Supervisor::from_cell(inner).expect("a supervisor");
    send(&cell_of(&inner, "leaf").await, crash);
    ev.expect(started("leaf")).await;
    assert_eq!(
        *restarts.lock().unwrap(),
        vec![("inner".to_string(), "leaf".to_string())]
    );
    root.stop().await;
}

/// one_for_all: all children are stopped in reverse order and restarted in order.
#[tokio::test]
async fn one_for_all() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("one_for_all")
            .flags(flags(Strategy::OneForAll, 10))
            .child(child("a", &p))
            .child(child("b", &p))
            .child(child("c", &p)),
    )
    .await
    .unwrap();
    ev.take(3).await;
    send(&cell_of(&sup, "b").await, crash);
    assert_eq!(
        ev.take(5).await,
        vec![
            stopped("c"),
            stopped("a"),
            started("a"),
            started("b"),
            started("c")
        ]
    );
    sup.stop().await;
}

/// rest_for_one: the failed child and those after it restart; those before are untouched.
#[tokio::test]
async fn rest_for_one() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("rest_for_one")
            .flags(flags(Strategy::RestForOne, 10))
            .child(child("a", &p))
            .child(child("b", &p))
            .child(child("c", &p))
            .child(child("d", &p)),
    )
    .await
    .unwrap();
    ev.take(4).await;
    let a = cell_of(&sup, "a").await;
    send(&cell_of(&sup, "b").await, crash);
    assert_eq!(
        ev.take(5).await,
        vec![
            stopped("d"),
            stopped("c"),
            started("b"),
            started("c"),
            started("d")
        ]
    );
    assert_eq!(cell_of(&sup, "a").await.get_id(), a.get_id());
    sup.stop().await;
}

/// one_for_all: another child fails to start during the group restart; the
/// supervisor keeps trying, showing it as restarting, until it starts.
#[tokio::test]
async fn one_for_all_other_child_fails_restart() {
    let (p, mut ev) = probe();
    let switch = Switch::default();
    let sup = Supervisor::start(
        SupervisorSpec::new("one_for_all_other_child_fails_restart")
            .flags(flags(Strategy::OneForAll, 1000))
            .child(child("a", &p))
            .child(child_with("b", &p, switch.clone(), Duration::ZERO)),
    )
    .await
    .unwrap();
    ev.take(2).await;
    switch.set(StartMode::Fail);
    send(&cell_of(&sup, "a").await, crash);
    assert_eq!(
        ev.take(3).await,
        vec![stopped("b"), started("a"), Ev::StartFailed("b".into())]
    );
    // Each retry stops "a" and starts both again.
    assert_eq!(
        ev.take(3).await,
        vec![stopped("a"), started("a"), Ev::StartFailed("b".into())]
    );
    let l = layout(&sup).await;
    assert!(
        l == vec!["a", "b:restarting"]
            || l == vec!["a:undefined", "b:undefined"]
            || l == vec!["a:undefined", "b:restarting"],
        "{l:?}"
    );
    switch.set(StartMode::Ok);
    loop {
        if ev.next().await == started("b") {
            break;
        }
    }
    assert_eq!(layout(&sup).await, vec!["a", "b"]);
    sup.stop().await;
}

/// rest_for_one: a later child fails to start during the restart of the tail.
#[tokio::test]
async fn rest_for_one_other_child_fails_restart() {
    let (p, mut ev) = probe();
    let switch = Switch::default();
    let sup = Supervisor::start(
        SupervisorSpec::new("rest_for_one_other_child_fails_restart")
            .flags(flags(Strategy::RestForOne, 1000))
            .child(child("a", &p))
            .child(child("b", &p))
            .child(child_with("c", &p, switch.clone(), Duration::ZERO)),
    )
    .await
    .unwrap();
    ev.take(3).await;
    let a = cell_of(&sup, "a").await;
    switch.set(StartMode::Fail);
    send(&cell_of(&sup, "b").await, crash);
    assert_eq!(
        ev.take(3).await,
        vec![stopped("c"), started("b"), Ev::StartFailed("c".into())]
    );
    // Retries restart from "c" only: "b" keeps running.
    ev.expect(Ev::StartFailed("c".into())).await;
    switch.set(StartMode::Ok);
    loop {
        match ev.next().await {
            Ev::StartFailed(_) => continue,
            e => {
                assert_eq!(e, started("c"));
                break;
            }
        }
    }
    assert_eq!(layout(&sup).await, vec!["a", "b", "c"]);
    assert_eq!(cell_of(&sup, "a").await.get_id(), a.get_id());
    sup.stop().await;
}

/// A supervisor in a restart loop (a child that keeps failing to start)
/// still answers calls, shows the child as restarting, lets it be
/// terminated, and can be shut down.
#[tokio::test]
async fn hanging_restart_loop() {
    let (p, mut ev) = probe();
    let switch = Switch::default();
    let sup = Supervisor::start(SupervisorSpec::new("hanging_restart_loop").flags(
        SupervisorFlags::new(Strategy::OneForOne).intensity(u32::MAX, Duration::from_secs(3600)),
    ))
    .await
    .unwrap();
    let spec = child_with("c", &p, switch.clone(), Duration::ZERO);
    let c = sup.start_child(spec.clone()).await.unwrap().unwrap();
    ev.expect(started("c")).await;
    switch.set(StartMode::Fail);
    send(&c, crash);
    ev.expect(Ev::StartFailed("c".into())).await;
    ev.expect(Ev::StartFailed("c".into())).await;
    use corral::supervisor::SupervisorError as E;
    assert!(matches!(
        sup.start_child(spec.clone()).await,
        Err(E::AlreadyPresent(_))
    ));
    assert!(matches!(
        sup.restart_child("c").await,
        Err(E::Restarting(_))
    ));
    assert!(matches!(sup.delete_child("c").await, Err(E::Restarting(_))));
    assert_eq!(layout(&sup).await, vec!["c:restarting"]);
    let counts = sup.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active), (1, 0));
    sup.terminate_child("c").await.unwrap();
    assert_eq!(layout(&sup).await, vec!["c:undefined"]);
    // The loop has stopped: at most one attempt was already under way.
    while !ev.quiet().await {
        assert_eq!(ev.next().await, Ev::StartFailed("c".into()));
    }
    switch.set(StartMode::Ok);
    let c2 = sup.restart_child("c").await.unwrap().unwrap();
    ev.expect(started("c")).await;
    switch.set(StartMode::Fail);
    send(&c2, crash);
    ev.expect(Ev::StartFailed("c".into())).await;
    // Shutting down in the middle of the loop does not hang.
    sup.stop().await;
}

/// A child spec that is itself a supervisor is restarted as a whole.
#[tokio::test]
async fn restart_of_nested_supervisor() {
    let (p, mut ev) = probe();
    let inner = SupervisorSpec::new("inner")
        .child(child("x", &p))
        .child(child("y", &p));
    let sup = Supervisor::start(
        SupervisorSpec::new("outer")
            .flags(flags(Strategy::OneForOne, 10))
            .child(ChildSpec::supervisor("inner", inner)),
    )
    .await
    .unwrap();
    ev.take(2).await;
    cell_of(&sup, "inner").await.kill();
    // Killed brutally: its children are killed with it (no post_stop), then it restarts.
    assert_eq!(ev.take(2).await, vec![started("x"), started("y")]);
    sup.stop().await;
    assert_eq!(ev.take(2).await, vec![stopped("y"), stopped("x")]);
}
