//! Supervision benchmarks, the same three things measured for Erlang/OTP by
//! `benches/otp/supervision.escript`:
//!
//! - `restart_one_for_one`: a permanent child crashes and its one_for_one
//!   supervisor restarts it; time from the crash request to the new child
//!   running its start (fresh supervisor every 10 restarts, as the OTP anchor);
//! - `dynamic_temporary_start_exit`: a temporary child of a dynamic supervisor
//!   is started and exits by itself; time per start + exit, one after another;
//! - `stop_10000_children`: time to stop a dynamic supervisor with 10,000 children.
//!
//! Run with `cargo bench --bench supervision`.

use corral::supervisor::{
    ChildSpec, ChildTemplate, DynamicSpec, DynamicSupervisor, Restart, Strategy, Supervisor,
    SupervisorFlags, SupervisorSpec,
};
use criterion::{criterion_group, criterion_main, Criterion};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use std::time::{Duration, Instant};

/// The allocator the `corral` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// A worker that reports its start and crashes on request.
#[derive(Clone)]
struct Crasher;

impl Actor for Crasher {
    type Msg = ();
    type State = ();
    type Arguments = mpsc::UnboundedSender<ActorCell>;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        tx: Self::Arguments,
    ) -> Result<(), ActorProcessingErr> {
        let _ = tx.send(myself.get_cell());
        Ok(())
    }

    async fn handle(&self, _: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("crashed".into())
    }
}

/// A worker that stops as soon as it has started.
#[derive(Clone)]
struct Brief;

impl Actor for Brief {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn post_start(&self, myself: ActorRef<()>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        myself.stop(None);
        Ok(())
    }
}

/// An idle worker.
#[derive(Clone)]
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn restart_cycles(n: u64) -> Duration {
    const PER_SUPERVISOR: u64 = 10;
    let mut total = Duration::ZERO;
    let mut left = n;
    while left > 0 {
        let k = left.min(PER_SUPERVISOR);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sup = Supervisor::start(
            SupervisorSpec::new("bench")
                .flags(
                    SupervisorFlags::new(Strategy::OneForOne)
                        .intensity(k as u32 + 10, Duration::from_secs(1)),
                )
                .child(ChildSpec::worker("worker", Crasher, tx)),
        )
        .await
        .expect("supervisor starts");
        let mut child = rx.recv().await.expect("child started");
        let t0 = Instant::now();
        for _ in 0..k {
            ActorRef::<()>::from(child.clone())
                .cast(())
                .expect("child alive");
            child = rx.recv().await.expect("child restarted");
        }
        total += t0.elapsed();
        sup.stop().await;
        left -= k;
    }
    total
}

async fn start_exit_cycles(sup: &DynamicSupervisor<()>, n: u64) -> Duration {
    let t0 = Instant::now();
    for _ in 0..n {
        let child = sup
            .start_child(())
            .await
            .expect("start_child")
            .expect("started");
        let _ = child.wait(None).await;
    }
    t0.elapsed()
}

async fn stop_with_children(n: usize) -> Duration {
    let sup = DynamicSupervisor::start(DynamicSpec::new(
        "bench_stop",
        ChildTemplate::worker("idle", Idle),
    ))
    .await
    .expect("supervisor starts");
    for _ in 0..n {
        sup.start_child(()).await.expect("start_child");
    }
    let t0 = Instant::now();
    sup.stop().await;
    t0.elapsed()
}

/// Runs `f` as a task on the runtime's workers, as the OTP figures run in a
/// process on its schedulers (driving it from `block_on` would add a
/// cross-thread wake-up to every step).
fn on_worker<F>(rt: &Runtime, f: F) -> Duration
where
    F: std::future::Future<Output = Duration> + Send + 'static,
{
    rt.block_on(async { tokio::spawn(f).await.expect("benchmark task") })
}

fn supervision(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("supervision");
    g.bench_function("restart_one_for_one", |b| {
        b.iter_custom(|iters| on_worker(&rt, restart_cycles(iters)))
    });
    let sup = rt.block_on(async {
        DynamicSupervisor::start(DynamicSpec::new(
            "bench_dyn",
            ChildTemplate::worker("brief", Brief).restart(Restart::Temporary),
        ))
        .await
        .expect("supervisor starts")
    });
    g.bench_function("dynamic_temporary_start_exit", |b| {
        b.iter_custom(|iters| {
            let sup = sup.clone();
            on_worker(&rt, async move { start_exit_cycles(&sup, iters).await })
        })
    });
    rt.block_on(sup.stop());
    g.sample_size(10);
    g.bench_function("stop_10000_children", |b| {
        b.iter_custom(|iters| {
            on_worker(&rt, async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += stop_with_children(10_000).await;
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, supervision);
criterion_main!(benches);
