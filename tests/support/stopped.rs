//! The event of a test child whose post_stop ran.

use super::events::Ev;

pub(crate) fn stopped(name: &str) -> Ev {
    Ev::Stopped(name.to_string())
}
