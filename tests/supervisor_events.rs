//! Every start, exit, restart and give-up of a supervisor is a tracing event.

mod support {
    pub(crate) mod cell_of;
    pub(crate) mod child_spec;
    pub(crate) mod children;
    pub(crate) mod cmd_crash;
    pub(crate) mod events;
}

use corral::supervisor::{Strategy, Supervisor, SupervisorFlags, SupervisorSpec};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::cell_of::cell_of;
use support::child_spec::child;
use support::children::send;
use support::cmd_crash::crash;
use support::events::{probe, started};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Debug, Clone, Default)]
struct Seen {
    message: String,
    supervisor: String,
    child: String,
}

impl Visit for Seen {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}").trim_matches('"').to_string();
        match field.name() {
            "message" => self.message = v,
            "supervisor" => self.supervisor = v,
            "child" => self.child = v,
            _ => {}
        }
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut seen = Seen::default();
        event.record(&mut seen);
        if seen.supervisor == "events" {
            self.0.lock().unwrap().push(seen);
        }
    }
}

impl Recorder {
    fn messages(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|s| format!("{} {}", s.message, s.child))
            .collect()
    }
}

// A current-thread runtime: every actor runs on this thread, under the
// subscriber set for it.
#[tokio::test]
async fn start_exit_restart_and_give_up_are_traced() {
    let rec = Recorder::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(rec.clone()));
    let (p, mut ev) = probe();
    let sup = Supervisor::start(
        SupervisorSpec::new("events")
            .flags(
                SupervisorFlags::new(Strategy::OneForOne).intensity(1, Duration::from_secs(3600)),
            )
            .child(child("w", &p)),
    )
    .await
    .unwrap();
    ev.expect(started("w")).await;
    send(&cell_of(&sup, "w").await, crash);
    ev.expect(started("w")).await;
    send(&cell_of(&sup, "w").await, crash);
    sup.wait().await;
    assert_eq!(
        rec.messages(),
        vec![
            "child started w",
            "supervisor started ",
            "child terminated w",
            "restarting child w",
            "child started w",
            "child terminated w",
            "reached max restart intensity, shutting down w",
        ]
    );
}
