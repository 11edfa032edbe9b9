//! A template of test children for a dynamic supervisor.

use std::time::Duration;

use corral::supervisor::ChildTemplate;

use super::children::{start_test_child, Switch};
use super::events::Probe;

/// A template for test children; each child's argument is its name.
pub(crate) fn template(probe: &Probe) -> ChildTemplate<String> {
    let probe = probe.clone();
    ChildTemplate::new("worker", move |sup, name: String| {
        start_test_child(sup, name, probe.clone(), Switch::default(), Duration::ZERO)
    })
}
