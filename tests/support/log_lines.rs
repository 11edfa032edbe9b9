//! The log lines of the whole test process, recorded for the test to look
//! for (`message` and every field, as `key=value`); printed too when
//! `CORRAL_TEST_LOG` is set.

use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}");
        let v = v.trim_matches('"');
        self.0.push_str(&format!(" {}={v}", field.name()));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        if std::env::var_os("CORRAL_TEST_LOG").is_some() {
            eprintln!("{}{}", event.metadata().level(), line.0);
        }
        if let Ok(mut v) = self.0.lock() {
            v.push(line.0);
        }
    }
}

static LINES: OnceLock<Recorder> = OnceLock::new();

/// Starts recording (once per process; later calls do nothing).
pub(crate) fn record() {
    LINES.get_or_init(|| {
        let rec = Recorder::default();
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(rec.clone()),
        );
        rec
    });
}

/// Whether a line recorded so far has every one of `parts` (such as
/// `"message=cluster member joined"`, `"member=n1"`).
pub(crate) fn logged(parts: &[&str]) -> bool {
    let Some(rec) = LINES.get() else {
        return false;
    };
    let lines = rec.0.lock().map(|v| v.clone()).unwrap_or_default();
    lines
        .iter()
        .any(|l| parts.iter().all(|p| l.contains(&format!(" {p}"))))
}
