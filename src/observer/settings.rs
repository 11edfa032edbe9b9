//! The observer's settings (the `[observer]` section).

use serde::{Deserialize, Serialize, Serializer};
use std::time::Duration;

/// `[observer]`: the live view of the node at `/observer/` on every HTTP
/// listener, its JSON API, and its actions.
///
/// ```
/// use corral::observer::ObserverSettings;
/// let s = ObserverSettings::default();
/// assert!(s.enabled && !s.admin && s.trust_loopback);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObserverSettings {
    /// Serve `/observer/` and `/observer/api/*` (read-only unless `admin`).
    /// Default true.
    pub enabled: bool,
    /// Allow the actions (terminate, restart or kill a child; suspend or
    /// resume a listener). Even then each action needs `token` or, with
    /// `trust_loopback`, a loopback client; any other gets 403. Default
    /// false.
    pub admin: bool,
    /// The admin token, sent as `Authorization: Bearer <token>`; compared in
    /// constant time. At least 16 characters, printable ASCII without
    /// spaces; empty = no token (loopback only). Default empty. Better set
    /// from the environment (`CORRAL__OBSERVER__TOKEN`) than in a file.
    /// Shown as `"***"` (`corral check-config --print`).
    #[serde(serialize_with = "redacted")]
    pub token: String,
    /// Let a client on a loopback address act without the token (its
    /// `Host` must be a loopback address or `localhost`, so that a web page
    /// elsewhere cannot reach it through DNS rebinding). Turn it off behind
    /// a reverse proxy on the same host: every client looks local there.
    /// Default true.
    pub trust_loopback: bool,
    /// How often a watched page gets fresh figures, in ms (100 to 60000).
    /// Nothing is sampled while no page or stream is open. Default 1000.
    pub sample_interval_ms: u64,
    /// Samples kept for the charts (1 to 3600): with the default interval,
    /// the last five minutes that were watched. Default 300.
    pub history_samples: usize,
    /// Most live streams (`/observer/api/events`) open at once; more get
    /// 503. Default 64.
    pub max_watchers: usize,
}

impl Default for ObserverSettings {
    fn default() -> Self {
        ObserverSettings {
            enabled: true,
            admin: false,
            token: String::new(),
            trust_loopback: true,
            sample_interval_ms: 1000,
            history_samples: 300,
            max_watchers: 64,
        }
    }
}

/// Serializes a secret as `"***"` (empty when unset).
fn redacted<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if v.is_empty() { "" } else { "***" })
}

/// Shortest admin token accepted.
const MIN_TOKEN: usize = 16;

impl ObserverSettings {
    /// Checks the values that types alone cannot; on failure, the key and
    /// what is wrong with it.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if !(100..=60_000).contains(&self.sample_interval_ms) {
            return bad("sample_interval_ms", "must be between 100 and 60000");
        }
        if !(1..=3600).contains(&self.history_samples) {
            return bad("history_samples", "must be between 1 and 3600");
        }
        if self.max_watchers == 0 {
            return bad("max_watchers", "must be at least 1");
        }
        if !self.token.is_empty() {
            if self.token.len() < MIN_TOKEN {
                return bad(
                    "token",
                    "must be at least 16 characters (or empty: no token)",
                );
            }
            if !self.token.bytes().all(|b| b.is_ascii_graphic()) {
                return bad(
                    "token",
                    "must be printable ASCII without spaces (it travels in a header)",
                );
            }
        }
        if self.admin && self.token.is_empty() && !self.trust_loopback {
            return bad(
                "admin",
                "no one could act: set observer.token, or observer.trust_loopback = true",
            );
        }
        Ok(())
    }

    /// The sampling interval.
    pub fn sample_interval(&self) -> Duration {
        Duration::from_millis(self.sample_interval_ms.clamp(100, 60_000))
    }
}
