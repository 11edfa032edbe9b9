//! A small supervision tree: a root supervisor with a worker and a dynamic
//! supervisor of sessions. A worker crash is healed by a restart; the tree is
//! stopped in reverse start order.
//!
//! Run with `cargo run --example supervision_tree`.

use corral::supervisor::{
    ChildSpec, ChildState, ChildTemplate, DynamicSpec, DynamicSupervisor, Restart, RestartHook,
    Strategy, Supervisor, SupervisorFlags, SupervisorSpec,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A worker that counts, and crashes when asked to.
#[derive(Clone)]
struct Counter;

enum CounterMsg {
    Add(u64),
    Crash,
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<CounterMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        println!("counter: started");
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<CounterMsg>,
        msg: CounterMsg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Add(k) => *n += k,
            CounterMsg::Crash => return Err(format!("crashed at {n}").into()),
        }
        Ok(())
    }
}

/// A session: one per user, started at run time.
#[derive(Clone)]
struct Session;

impl Actor for Session {
    type Msg = ();
    type State = String;
    type Arguments = String;

    async fn pre_start(&self, _: ActorRef<()>, user: String) -> Result<String, ActorProcessingErr> {
        println!("session {user}: started");
        Ok(user)
    }

    async fn post_stop(
        &self,
        _: ActorRef<()>,
        user: &mut String,
    ) -> Result<(), ActorProcessingErr> {
        println!("session {user}: stopped");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions = ChildTemplate::worker("session", Session).restart(Restart::Temporary);
    let restarts = Arc::new(AtomicU64::new(0));
    let counted = restarts.clone();
    let root = Supervisor::start(
        SupervisorSpec::new("root")
            // Told of every restart in the tree (the node counts them in
            // Prometheus this way).
            .on_restart(RestartHook::new(move |e| {
                counted.fetch_add(1, Ordering::Relaxed);
                println!("{} restarts {}", e.supervisor, e.child);
            }))
            .flags(SupervisorFlags::new(Strategy::OneForOne).intensity(3, Duration::from_secs(5)))
            .child(ChildSpec::worker("counter", Counter, ()))
            .child(ChildSpec::dynamic_supervisor(
                "sessions",
                DynamicSpec::new("sessions", sessions.clone()).max_children(100),
            )),
    )
    .await?;

    // Find the dynamic supervisor among the root's children and add sessions.
    let children = root.which_children().await?;
    let ChildState::Running(cell) = &children[1].state else {
        return Err("sessions supervisor not running".into());
    };
    let sessions =
        DynamicSupervisor::from_cell(cell.clone(), sessions).ok_or("not a supervisor")?;
    for user in ["ada", "grace"] {
        sessions.start_child(user.to_string()).await?;
    }

    // Crash the counter: the root restarts it.
    let ChildState::Running(counter) = &children[0].state else {
        return Err("counter not running".into());
    };
    let counter: ActorRef<CounterMsg> = counter.clone().into();
    counter.cast(CounterMsg::Add(41))?;
    counter.cast(CounterMsg::Crash)?;
    counter
        .get_cell()
        .wait(Some(Duration::from_secs(5)))
        .await?;
    // The restart is done once the root answers the next call.
    let counts = root.count_children().await?;
    println!(
        "root: {} children, {} running, restarts so far: {}",
        counts.specs,
        counts.active,
        restarts.load(Ordering::Relaxed)
    );

    // Stop everything: sessions first (reverse order), then the counter.
    root.stop().await;
    println!("root: stopped");
    Ok(())
}
