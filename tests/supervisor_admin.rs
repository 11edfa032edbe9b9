//! Administration calls with OTP's errors, ported from OTP's supervisor_SUITE.

mod support {
    pub(crate) mod cell_of;
    pub(crate) mod child_spec;
    pub(crate) mod children;
    pub(crate) mod cmd_normal;
    pub(crate) mod events;
    pub(crate) mod gone;
    pub(crate) mod layout;
    pub(crate) mod stopped;
    pub(crate) mod take;
    pub(crate) mod template;
}

use corral::supervisor::{
    ChildState, DynamicSpec, DynamicSupervisor, Restart, Supervisor, SupervisorError as E,
    SupervisorSpec,
};
use support::cell_of::cell_of;
use support::child_spec::child;
use support::children::send;
use support::cmd_normal::normal;
use support::events::{probe, started};
use support::gone::gone;
use support::layout::layout;
use support::stopped::stopped;
use support::template::template;

/// which_children, start_child, terminate_child, restart_child,
/// delete_child and get_childspec on a static supervisor.
#[tokio::test]
async fn child_adm() {
    let (p, mut ev) = probe();
    let sup = Supervisor::start(SupervisorSpec::new("child_adm").child(child("c1", &p)))
        .await
        .unwrap();
    ev.expect(started("c1")).await;
    let c1 = cell_of(&sup, "c1").await;

    // start_child of an id that exists.
    match sup.start_child(child("c1", &p)).await {
        Err(E::AlreadyStarted { id, child }) => {
            assert_eq!(id, "c1");
            assert_eq!(child.get_id(), c1.get_id());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(sup.restart_child("c1").await, Err(E::Running(_))));
    assert!(matches!(sup.delete_child("c1").await, Err(E::Running(_))));
    assert!(matches!(
        sup.terminate_child("nope").await,
        Err(E::NotFound(_))
    ));
    assert!(matches!(
        sup.restart_child("nope").await,
        Err(E::NotFound(_))
    ));
    assert!(matches!(
        sup.delete_child("nope").await,
        Err(E::NotFound(_))
    ));
    assert!(matches!(
        sup.get_childspec("nope").await,
        Err(E::NotFound(_))
    ));
    assert_eq!(sup.get_childspec("c1").await.unwrap().id(), "c1");

    // terminate_child keeps the spec, and is idempotent.
    sup.terminate_child("c1").await.unwrap();
    ev.expect(stopped("c1")).await;
    gone(&c1).await;
    sup.terminate_child("c1").await.unwrap();
    assert_eq!(layout(&sup).await, vec!["c1:undefined"]);
    assert!(matches!(
        sup.start_child(child("c1", &p)).await,
        Err(E::AlreadyPresent(_))
    ));

    // restart_child brings it back.
    let again = sup.restart_child("c1").await.unwrap().unwrap();
    ev.expect(started("c1")).await;
    assert_ne!(again.get_id(), c1.get_id());

    // delete_child of a stopped child forgets it.
    sup.terminate_child("c1").await.unwrap();
    ev.expect(stopped("c1")).await;
    sup.delete_child("c1").await.unwrap();
    assert!(layout(&sup).await.is_empty());
    assert!(matches!(sup.delete_child("c1").await, Err(E::NotFound(_))));

    // A temporary child's spec is dropped by terminate_child.
    sup.start_child(child("t", &p).restart(Restart::Temporary))
        .await
        .unwrap();
    ev.expect(started("t")).await;
    sup.terminate_child("t").await.unwrap();
    ev.expect(stopped("t")).await;
    assert!(matches!(sup.restart_child("t").await, Err(E::NotFound(_))));
    assert!(layout(&sup).await.is_empty());

    // A transient child that exited normally keeps its spec and can be restarted.
    let tr = sup
        .start_child(child("tr", &p).restart(Restart::Transient))
        .await
        .unwrap()
        .unwrap();
    ev.expect(started("tr")).await;
    send(&tr, normal);
    ev.expect(stopped("tr")).await;
    gone(&tr).await;
    assert_eq!(layout(&sup).await, vec!["tr:undefined"]);
    sup.restart_child("tr").await.unwrap();
    ev.expect(started("tr")).await;
    sup.stop().await;
    ev.expect(stopped("tr")).await;

    // Calls to a supervisor that is gone say so.
    assert!(matches!(sup.which_children().await, Err(E::NoProc)));
    assert!(matches!(sup.terminate_child("tr").await, Err(E::NoProc)));
}

/// The same calls on a dynamic supervisor: children are addressed by actor;
/// restart_child and delete_child are not supported.
#[tokio::test]
async fn child_adm_simple() {
    let (p, mut ev) = probe();
    let sup = DynamicSupervisor::start(DynamicSpec::new("child_adm_simple", template(&p)))
        .await
        .unwrap();
    let a = sup.start_child("a".to_string()).await.unwrap().unwrap();
    let b = sup.start_child("b".to_string()).await.unwrap().unwrap();
    ev.take(2).await;
    let kids = sup.which_children().await.unwrap();
    assert_eq!(kids.len(), 2);
    assert!(kids
        .iter()
        .all(|k| k.id.is_none() && matches!(k.state, ChildState::Running(_))));
    assert_eq!(sup.get_childspec(&a).await.unwrap().id(), "worker");
    sup.terminate_child(&a).await.unwrap();
    ev.expect(stopped("a")).await;
    assert!(matches!(sup.terminate_child(&a).await, Err(E::NotFound(_))));
    let counts = sup.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active, counts.workers), (1, 1, 1));
    sup.stop().await;
    ev.expect(stopped("b")).await;
    gone(&b).await;
}

/// count_children on static and dynamic supervisors, as OTP counts.
#[tokio::test]
async fn count_children() {
    let (p, mut ev) = probe();
    let sup = DynamicSupervisor::start(DynamicSpec::new(
        "count_children",
        template(&p).restart(Restart::Temporary),
    ))
    .await
    .unwrap();
    let mut cells = Vec::new();
    for i in 0..1000 {
        cells.push(sup.start_child(format!("w{i}")).await.unwrap().unwrap());
    }
    ev.take(1000).await;
    let c = sup.count_children().await.unwrap();
    assert_eq!(
        (c.specs, c.active, c.supervisors, c.workers),
        (1, 1000, 0, 1000)
    );
    for cell in &cells {
        sup.terminate_child(cell).await.unwrap();
    }
    let c = sup.count_children().await.unwrap();
    assert_eq!((c.specs, c.active, c.supervisors, c.workers), (1, 0, 0, 0));
    sup.stop().await;

    let st = Supervisor::start(
        SupervisorSpec::new("count_static")
            .child(child("a", &p))
            .child(child("b", &p)),
    )
    .await
    .unwrap();
    st.terminate_child("b").await.unwrap();
    let c = st.count_children().await.unwrap();
    assert_eq!((c.specs, c.active, c.supervisors, c.workers), (2, 1, 0, 2));
    st.stop().await;
}
