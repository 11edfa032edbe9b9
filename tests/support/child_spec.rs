//! Worker specs for test children under a static supervisor.

use std::time::Duration;

use corral::supervisor::ChildSpec;

use super::children::{start_test_child, Switch};
use super::events::Probe;

/// A worker spec for a test child named `name` (its id too).
pub(crate) fn child(name: &str, probe: &Probe) -> ChildSpec {
    child_with(name, probe, Switch::default(), Duration::ZERO)
}

/// The same, with a start switch and a stop delay.
pub(crate) fn child_with(
    name: &str,
    probe: &Probe,
    switch: Switch,
    stop_delay: Duration,
) -> ChildSpec {
    let name = name.to_string();
    let probe = probe.clone();
    ChildSpec::new(name.clone(), move |sup| {
        start_test_child(sup, name.clone(), probe.clone(), switch.clone(), stop_delay)
    })
}
