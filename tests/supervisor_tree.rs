//! Nested supervisors, escalation and auto_shutdown, ported from OTP's
//! supervisor_SUITE.

mod support {
    pub(crate) mod cell_of;
    pub(crate) mod child_spec;
    pub(crate) mod children;
    pub(crate) mod cmd_crash;
    pub(crate) mod cmd_normal;
    pub(crate) mod cmd_shutdown;
    pub(crate) mod events;
    pub(crate) mod layout;
    pub(crate) mod stopped;
    pub(crate) mod take;
    pub(crate) mod template;
}

use corral::supervisor::{
    AutoShutdown, ChildSpec, ChildState, DynamicSpec, DynamicSupervisor, Restart, Strategy,
    Supervisor, SupervisorFlags, SupervisorSpec, TreeKind,
};
use std::time::Duration;
use support::cell_of::cell_of;
use support::child_spec::child;
use support::children::send;
use support::cmd_crash::crash;
use support::cmd_normal::normal;
use support::cmd_shutdown::shutdown;
use support::events::{probe, started};
use support::layout::layout;
use support::stopped::stopped;
use support::template::template;

/// A tree: root -> (sup1 -> w1, w2), (sup2 -> w3). A worker crash is handled
/// by its own supervisor; a supervisor crash restarts its whole subtree;
/// stopping the root stops everything in reverse order.
#[tokio::test]
async fn tree() {
    let (p, mut ev) = probe();
    let sup1 = SupervisorSpec::new("sup1")
        .flags(SupervisorFlags::new(Strategy::OneForAll).intensity(5, Duration::from_secs(60)))
        .child(child("w1", &p))
        .child(child("w2", &p));
    let sup2 = SupervisorSpec::new("sup2").child(child("w3", &p));
    let root = Supervisor::start(
        SupervisorSpec::new("tree_root")
            .flags(SupervisorFlags::new(Strategy::OneForOne).intensity(5, Duration::from_secs(60)))
            .child(ChildSpec::supervisor("sup1", sup1))
            .child(ChildSpec::supervisor("sup2", sup2)),
    )
    .await
    .unwrap();
    assert_eq!(
        ev.take(3).await,
        vec![started("w1"), started("w2"), started("w3")]
    );
    let s1 = Supervisor::from_cell(cell_of(&root, "sup1").await).unwrap();
    let s2_cell = cell_of(&root, "sup2").await;

    // A worker crash stays inside sup1 (one_for_all there).
    send(&cell_of(&s1, "w1").await, crash);
    assert_eq!(
        ev.take(3).await,
        vec![stopped("w2"), started("w1"), started("w2")]
    );
    assert_eq!(cell_of(&root, "sup1").await.get_id(), s1.cell().get_id());

    // Killing sup1 makes root restart it with fresh children; sup2 is untouched.
    s1.cell().kill();
    assert_eq!(ev.take(2).await, vec![started("w1"), started("w2")]);
    assert_ne!(cell_of(&root, "sup1").await.get_id(), s1.cell().get_id());
    assert_eq!(cell_of(&root, "sup2").await.get_id(), s2_cell.get_id());

    root.stop().await;
    assert_eq!(
        ev.take(3).await,
        vec![stopped("w3"), stopped("w2"), stopped("w1")]
    );
}

/// A supervisor that reaches its intensity stops its children and exits
/// abnormally, so its parent restarts it (escalation); the parent gives up
/// in turn if that repeats beyond its own intensity.
#[tokio::test]
async fn one_for_one_escalation() {
    let (p, mut ev) = probe();
    let inner = SupervisorSpec::new("esc_inner")
        .flags(SupervisorFlags::new(Strategy::OneForOne).intensity(0, Duration::from_secs(60)))
        .child(child("a", &p))
        .child(child("b", &p));
    let root = Supervisor::start(
        SupervisorSpec::new("esc_root")
            .flags(SupervisorFlags::new(Strategy::OneForOne).intensity(1, Duration::from_secs(60)))
            // Transient: restarted only because the inner supervisor exits abnormally.
            .child(ChildSpec::supervisor("inner", inner).restart(Restart::Transient))
            .child(child("bystander", &p)),
    )
    .await
    .unwrap();
    ev.take(3).await;
    let inner1 = Supervisor::from_cell(cell_of(&root, "inner").await).unwrap();
    send(&cell_of(&inner1, "a").await, crash);
    // inner gives up at once (intensity 0): stops b, exits; root restarts it.
    assert_eq!(
        ev.take(3).await,
        vec![stopped("b"), started("a"), started("b")]
    );
    let inner2 = Supervisor::from_cell(cell_of(&root, "inner").await).unwrap();
    assert_ne!(inner1.cell().get_id(), inner2.cell().get_id());
    // Again: now the root is past its own intensity and gives up too.
    send(&cell_of(&inner2, "a").await, crash);
    ev.expect(stopped("b")).await;
    ev.expect(stopped("bystander")).await;
    root.wait().await;
}

/// auto_shutdown with a significant temporary child.
#[tokio::test]
async fn significant_temporary() {
    // any_significant: the significant child exits normally -> supervisor shuts down.
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("sig_temp_any")
            .flags(SupervisorFlags::default().auto_shutdown(AutoShutdown::AnySignificant))
            .child(child("other", &p))
            .child(
                child("sig", &p)
                    .restart(Restart::Temporary)
                    .significant(true),
            ),
    )
    .await
    .unwrap();
    ev.take(2).await;
    send(&cell_of(&sup, "sig").await, crash);
    ev.expect(stopped("other")).await;
    sup.wait().await;

    // all_significant: only when the last significant child is gone.
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("sig_temp_all")
            .flags(SupervisorFlags::default().auto_shutdown(AutoShutdown::AllSignificant))
            .child(child("other", &p))
            .child(
                child("s1", &p)
                    .restart(Restart::Temporary)
                    .significant(true),
            )
            .child(
                child("s2", &p)
                    .restart(Restart::Temporary)
                    .significant(true),
            ),
    )
    .await
    .unwrap();
    ev.take(3).await;
    send(&cell_of(&sup, "s1").await, normal);
    ev.expect(stopped("s1")).await;
    assert_eq!(layout(&sup).await, vec!["other", "s2"]);
    send(&cell_of(&sup, "s2").await, normal);
    ev.expect(stopped("s2")).await;
    ev.expect(stopped("other")).await;
    sup.wait().await;

    // terminate_child of a significant child does not trigger auto_shutdown.
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("sig_temp_terminate")
            .flags(SupervisorFlags::default().auto_shutdown(AutoShutdown::AnySignificant))
            .child(
                child("sig", &p)
                    .restart(Restart::Temporary)
                    .significant(true),
            ),
    )
    .await
    .unwrap();
    ev.take(1).await;
    sup.terminate_child("sig").await.unwrap();
    ev.expect(stopped("sig")).await;
    assert!(layout(&sup).await.is_empty(), "still running, spec dropped");
    sup.stop().await;
}

/// auto_shutdown with a significant transient child: an abnormal exit is
/// restarted (no shutdown), a normal one shuts the supervisor down.
#[tokio::test]
async fn significant_transient() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("sig_transient")
            .flags(
                SupervisorFlags::default()
                    .intensity(5, Duration::from_secs(60))
                    .auto_shutdown(AutoShutdown::AnySignificant),
            )
            .child(child("other", &p))
            .child(
                child("sig", &p)
                    .restart(Restart::Transient)
                    .significant(true),
            ),
    )
    .await
    .unwrap();
    ev.take(2).await;
    send(&cell_of(&sup, "sig").await, crash);
    ev.expect(started("sig")).await;
    assert_eq!(layout(&sup).await, vec!["other", "sig"]);
    send(&cell_of(&sup, "sig").await, shutdown);
    ev.expect(stopped("sig")).await;
    ev.expect(stopped("other")).await;
    sup.wait().await;
}

/// `Supervisor::tree` walks the running tree: static supervisors with their
/// strategy and children in start order, a dynamic supervisor's children
/// counted (not listed), children not running marked as such; its
/// `Display` draws it line by line.
#[tokio::test]
async fn tree_snapshot_and_drawing() {
    let (p, mut ev) = probe();
    let inner = SupervisorSpec::new("inner")
        .flags(SupervisorFlags::new(Strategy::RestForOne).intensity(5, Duration::from_secs(60)))
        .child(child("store", &p))
        .child(child("hub", &p));
    let conns = DynamicSpec::new("conns", template(&p).restart(Restart::Temporary));
    let root = Supervisor::start(
        SupervisorSpec::new("app")
            .flags(SupervisorFlags::new(Strategy::OneForOne).intensity(5, Duration::from_secs(60)))
            .child(ChildSpec::supervisor("inner_sup", inner))
            .child(ChildSpec::dynamic_supervisor("conns", conns))
            .child(child("idle", &p).restart(Restart::Transient))
            .child(child("last", &p)),
    )
    .await
    .unwrap();
    ev.take(4).await;
    let conns = DynamicSupervisor::from_cell(cell_of(&root, "conns").await, template(&p))
        .expect("a dynamic supervisor");
    for name in ["c1", "c2", "c3"] {
        conns.start_child(name.to_string()).await.unwrap();
    }
    ev.take(3).await;
    // A transient child that exits normally stays down.
    send(&cell_of(&root, "idle").await, normal);
    ev.expect(stopped("idle")).await;

    let tree = root.tree().await.unwrap();
    assert_eq!(tree.id, "app");
    assert!(matches!(tree.state, ChildState::Running(_)));
    assert_eq!(tree.child_ids(), ["inner_sup", "conns", "idle", "last"]);
    assert!(matches!(
        tree.find("inner_sup").unwrap().kind,
        TreeKind::Supervisor {
            strategy: Strategy::RestForOne,
            ..
        }
    ));
    assert_eq!(
        tree.find("inner_sup").unwrap().child_ids(),
        ["store", "hub"]
    );
    match &tree.find("conns").unwrap().kind {
        TreeKind::Dynamic {
            template,
            running,
            total,
            ..
        } => assert_eq!((template.as_str(), *running, *total), ("worker", 3, 3)),
        other => panic!("conns is {other:?}"),
    }
    assert!(matches!(
        tree.find("idle").unwrap().state,
        ChildState::Undefined
    ));
    assert_eq!(
        tree.to_string(),
        "\
app (one_for_one)
├── inner_sup (rest_for_one)
│   ├── store
│   └── hub
├── conns (simple_one_for_one)
│   └── worker × 3
├── idle [not running]
└── last
"
    );
    // A dynamic supervisor draws itself as the root of its own tree.
    assert_eq!(
        conns.tree().await.unwrap().to_string(),
        "conns (simple_one_for_one)\n└── worker × 3\n"
    );
    root.stop().await;
    assert!(
        root.tree().await.is_err(),
        "a stopped supervisor has no tree"
    );
}
