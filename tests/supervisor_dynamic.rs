//! The dynamic supervisor (simple_one_for_one), ported from OTP's
//! supervisor_SUITE, plus max_children.

mod support {
    pub(crate) mod children;
    pub(crate) mod cmd_crash;
    pub(crate) mod cmd_normal;
    pub(crate) mod events;
    pub(crate) mod gone;
    pub(crate) mod quiet;
    pub(crate) mod stopped;
    pub(crate) mod take;
    pub(crate) mod template;
}

use corral::supervisor::{
    DynamicSpec, DynamicSupervisor, Restart, Shutdown, Strategy, SupervisorError, SupervisorFlags,
};
use std::time::Duration;
use support::children::{send, ChildArgs, TestChild};
use support::cmd_crash::crash;
use support::cmd_normal::normal;
use support::events::{probe, started, Ev};
use support::gone::gone;
use support::stopped::stopped;
use support::template::template;

/// Many temporary children started, exiting by themselves and terminated.
#[tokio::test]
async fn simple_one_for_one_scale_many_temporary_children() {
    let (p, mut ev) = probe();
    let sup = DynamicSupervisor::start(DynamicSpec::new(
        "scale",
        template(&p)
            .restart(Restart::Temporary)
            .shutdown(Shutdown::BrutalKill),
    ))
    .await
    .unwrap();
    let mut cells = Vec::new();
    for i in 0..10_000 {
        cells.push(sup.start_child(format!("{i}")).await.unwrap().unwrap());
    }
    assert_eq!(sup.count_children().await.unwrap().active, 10_000);
    // Half exit by themselves, half are terminated.
    for (i, c) in cells.iter().enumerate() {
        if i % 2 == 0 {
            send(c, normal);
        }
    }
    for (i, c) in cells.iter().enumerate() {
        if i % 2 == 1 {
            sup.terminate_child(c).await.unwrap();
        } else {
            gone(c).await;
        }
    }
    // Every exit has been handled once count_children says so.
    let mut active = usize::MAX;
    while active != 0 {
        active = sup.count_children().await.unwrap().active;
        tokio::task::yield_now().await;
    }
    assert!(sup.which_children().await.unwrap().is_empty());
    drop(ev.take(10_000 + 5_000).await);
    sup.stop().await;
}

/// A dynamic supervisor with max_children refuses one more child with an
/// error, keeps running, and accepts again once a child is gone.
#[tokio::test]
async fn max_children_refuses_without_crashing() {
    let (p, mut ev) = probe();
    let sup = DynamicSupervisor::start(
        DynamicSpec::new("max_children", template(&p).restart(Restart::Temporary)).max_children(3),
    )
    .await
    .unwrap();
    let mut cells = Vec::new();
    for i in 0..3 {
        cells.push(sup.start_child(format!("{i}")).await.unwrap().unwrap());
    }
    for _ in 0..100 {
        assert!(matches!(
            sup.start_child("x".into()).await,
            Err(SupervisorError::MaxChildren(3))
        ));
    }
    ev.take(3).await;
    send(&cells[0], normal);
    ev.expect(stopped("0")).await;
    gone(&cells[0]).await;
    // Once the exit is handled there is room again.
    let again = loop {
        match sup.start_child("again".into()).await {
            Ok(c) => break c,
            Err(SupervisorError::MaxChildren(_)) => tokio::task::yield_now().await,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(again.is_some());
    ev.expect(started("again")).await;
    sup.stop().await;
}

/// Permanent and transient dynamic children are restarted alone, with the
/// arguments they were started with.
#[tokio::test]
async fn dynamic_children_restart_with_their_arguments() {
    let (p, mut ev) = probe();
    let sup = DynamicSupervisor::start(
        DynamicSpec::new("dyn_restart", template(&p).restart(Restart::Transient)).flags(
            SupervisorFlags::new(Strategy::OneForOne).intensity(10, Duration::from_secs(60)),
        ),
    )
    .await
    .unwrap();
    let a = sup.start_child("a".into()).await.unwrap().unwrap();
    let b = sup.start_child("b".into()).await.unwrap().unwrap();
    ev.take(2).await;
    send(&a, crash);
    ev.expect(started("a")).await;
    send(&b, normal);
    ev.expect(stopped("b")).await;
    gone(&b).await;
    assert!(ev.quiet().await, "b exited normally: not restarted");
    let c = sup.count_children().await.unwrap();
    assert_eq!(c.active, 1);
    sup.stop().await;
    ev.expect(stopped("a")).await;
}

/// Dynamic children are stopped concurrently: 100 children each taking
/// 200 ms to stop are all stopped with the supervisor, none killed.
#[tokio::test]
async fn dynamic_children_stop_concurrently() {
    let (p, mut ev) = probe();
    let slow = {
        let p = p.clone();
        corral::supervisor::ChildTemplate::new("slow", move |sup, name: String| {
            let p = p.clone();
            async move {
                let args = ChildArgs {
                    name,
                    probe: p,
                    stop_delay: Duration::from_millis(200),
                };
                let (r, _) = ractor::Actor::spawn_linked(None, TestChild, args, sup).await?;
                Ok(corral::supervisor::Started::Child(r.get_cell()))
            }
        })
        .shutdown(Shutdown::Timeout(Duration::from_secs(10)))
    };
    let sup = DynamicSupervisor::start(DynamicSpec::new("concurrent", slow))
        .await
        .unwrap();
    for i in 0..100 {
        sup.start_child(format!("{i}")).await.unwrap();
    }
    ev.take(100).await;
    sup.stop().await;
    let stops = ev.take(100).await;
    assert!(stops.iter().all(|e| matches!(e, Ev::Stopped(_))));
}
