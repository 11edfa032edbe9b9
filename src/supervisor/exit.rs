//! How an actor's end maps onto OTP's exit reasons, in one place.
//!
//! ractor reports a child's end as a supervision event. corral reads it so:
//!
//! | how the actor ended                                   | [`ExitReason`]        |
//! |-------------------------------------------------------|-----------------------|
//! | `stop(None)`, `stop(Some("normal"))`, drained         | `Normal`              |
//! | `stop(Some("shutdown"))`                              | `Shutdown(None)`      |
//! | `stop(Some("shutdown: <why>"))`                       | `Shutdown(Some(why))` |
//! | `stop(Some(other))`                                   | `Abnormal(other)`     |
//! | a handler returned `Err` or panicked                  | `Abnormal(error)`     |
//! | `kill()` (also a brutal-kill shutdown)                | `Abnormal("killed")`  |
//!
//! As in OTP, only `Abnormal` makes a transient child restart, and a kill is
//! abnormal.

use ractor::SupervisionEvent;
use std::fmt;

/// Why a child ended, in OTP's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// A normal exit (`normal`).
    Normal,
    /// A shutdown, with an optional reason (`shutdown` / `{shutdown, Term}`).
    Shutdown(Option<String>),
    /// Anything else: a failure, a panic, an unknown stop reason, or a kill.
    Abnormal(String),
}

/// The stop reason a supervisor gives a child it shuts down.
pub const SHUTDOWN: &str = "shutdown";

/// The reason ractor reports for a killed actor.
pub const KILLED: &str = "killed";

impl ExitReason {
    /// Reads the reason an actor was stopped with.
    pub fn from_stop_reason(reason: Option<&str>) -> Self {
        match reason {
            None | Some("normal") | Some("Drained") => ExitReason::Normal,
            Some(SHUTDOWN) => ExitReason::Shutdown(None),
            Some(r) => match r.strip_prefix("shutdown:") {
                Some(why) => ExitReason::Shutdown(Some(why.trim().to_string())),
                None => ExitReason::Abnormal(r.to_string()),
            },
        }
    }

    /// Reads a supervision event; `None` for events that are not exits.
    pub fn from_event(event: &SupervisionEvent) -> Option<Self> {
        match event {
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                Some(Self::from_stop_reason(reason.as_deref()))
            }
            SupervisionEvent::ActorFailed(_, err) => Some(ExitReason::Abnormal(err.to_string())),
            _ => None,
        }
    }

    /// True for anything but `Normal` and `Shutdown`.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, ExitReason::Abnormal(_))
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown(None) => f.write_str("shutdown"),
            ExitReason::Shutdown(Some(why)) => write!(f, "shutdown: {why}"),
            ExitReason::Abnormal(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_as_documented() {
        assert_eq!(ExitReason::from_stop_reason(None), ExitReason::Normal);
        assert_eq!(
            ExitReason::from_stop_reason(Some("normal")),
            ExitReason::Normal
        );
        assert_eq!(
            ExitReason::from_stop_reason(Some("shutdown")),
            ExitReason::Shutdown(None)
        );
        assert_eq!(
            ExitReason::from_stop_reason(Some("shutdown: drained")),
            ExitReason::Shutdown(Some("drained".into()))
        );
        assert!(ExitReason::from_stop_reason(Some("killed")).is_abnormal());
        assert!(ExitReason::from_stop_reason(Some("oops")).is_abnormal());
        assert!(!ExitReason::from_stop_reason(Some("shutdown")).is_abnormal());
    }
}
