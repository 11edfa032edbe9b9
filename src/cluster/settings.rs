//! The cluster's settings: the `[cluster]` section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

/// `[cluster]`: the chat replicated across nodes on NATS JetStream
/// (`cluster_sup`). Off by default: a node alone keeps its chat in its
/// embedded store and needs no NATS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Run `cluster_sup` and replicate every chat write through the
    /// JetStream stream. Requires `[chat] enabled`. Default false.
    pub enabled: bool,
    /// NATS server URLs (`nats://host:port`, or `tls://host:port`); the
    /// client connects to one and learns the others. Default
    /// `["nats://127.0.0.1:4222"]`.
    pub servers: Vec<String>,
    /// NATS user name (with `password`). Default: none.
    pub user: Option<String>,
    /// NATS password (with `user`; shown as `"***"`). Default: none.
    #[serde(serialize_with = "redacted")]
    pub password: Option<String>,
    /// NATS token, instead of user and password (shown as `"***"`).
    /// Default: none.
    #[serde(serialize_with = "redacted")]
    pub token: Option<String>,
    /// PEM file of the CA that signed the NATS servers' certificates: the
    /// connection then requires TLS. Default: none.
    pub tls_ca: Option<PathBuf>,
    /// The JetStream stream that holds the chat log. Default `CORRAL_CHAT`.
    pub stream: String,
    /// The subject the chat log is published on (the stream's only
    /// subject). Default `corral.chat.log`.
    pub subject: String,
    /// The JetStream KV bucket of the nodes' registrations and heartbeats.
    /// Default `corral_members`.
    pub members_bucket: String,
    /// Copies JetStream keeps of the stream and the bucket (1 to 5; at most
    /// the number of NATS servers). Default 3.
    pub replicas: usize,
    /// How often a node renews its registration, in ms. Default 2000.
    pub heartbeat_interval_ms: u64,
    /// Missed heartbeats after which a node's registration expires (it is
    /// then no longer a member, and no longer primary). At least 2.
    /// Default 5: with the interval, a 10 s expiry, above a JetStream
    /// leader election (about 4 s here), so a NATS failover never expires
    /// the members.
    pub heartbeat_misses: u32,
    /// How long a chat write waits for JetStream's acknowledgement (a
    /// quorum of the stream's copies has it) and for its own application,
    /// in ms, before it is answered UNAVAILABLE. Default 5000.
    pub publish_timeout_ms: u64,
    /// How long the node waits for a connection to NATS, in ms, each try.
    /// Default 5000.
    pub connect_timeout_ms: u64,
    /// How often the primary runs a round of Berkeley clock
    /// synchronisation, in ms. Default 5000.
    pub clock_sync_interval_ms: u64,
    /// For tests: milliseconds added to this node's wall clock before it is
    /// used for anything (a node started with a skewed clock). Default 0.
    pub clock_skew_ms: i64,
}

/// Serializes a secret as `"***"` (or nothing when unset).
fn redacted<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("***"),
        None => s.serialize_none(),
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            enabled: false,
            servers: vec!["nats://127.0.0.1:4222".into()],
            user: None,
            password: None,
            token: None,
            tls_ca: None,
            stream: "CORRAL_CHAT".into(),
            subject: "corral.chat.log".into(),
            members_bucket: "corral_members".into(),
            replicas: 3,
            heartbeat_interval_ms: 2000,
            heartbeat_misses: 5,
            publish_timeout_ms: 5000,
            connect_timeout_ms: 5000,
            clock_sync_interval_ms: 5000,
            clock_skew_ms: 0,
        }
    }
}

/// A JetStream stream or bucket name: letters, digits, `-` and `_`.
fn valid_js_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A subject to publish on: dot-separated tokens of printable ASCII, no
/// wildcards.
fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|t| {
            !t.is_empty()
                && t != "*"
                && t != ">"
                && t.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
        })
}

/// A NATS server URL this client can dial.
fn valid_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("nats://")
        .or_else(|| s.strip_prefix("tls://"))
        .unwrap_or(s);
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    match host_port.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => !host_port.is_empty() && !host_port.contains('/'),
    }
}

impl ClusterSettings {
    /// How long a registration lives without a heartbeat.
    pub fn member_ttl_ms(&self) -> u64 {
        self.heartbeat_interval_ms
            .saturating_mul(u64::from(self.heartbeat_misses))
    }

    /// Checks the values that types alone cannot; on failure, the key
    /// (relative to the section) and what is wrong with it.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, message: impl Into<String>) -> Result<(), (String, String)> {
            Err((key.to_string(), message.into()))
        }
        if !self.enabled {
            return Ok(());
        }
        if self.servers.is_empty() {
            return bad("servers", "must name at least one NATS server URL");
        }
        if let Some(u) = self.servers.iter().find(|u| !valid_url(u)) {
            return bad(
                "servers",
                format!("{u:?} is not a NATS URL (nats://host:port or tls://host:port)"),
            );
        }
        match (&self.user, &self.password) {
            (Some(_), None) => return bad("password", "is required with cluster.user"),
            (None, Some(_)) => return bad("user", "is required with cluster.password"),
            (Some(u), Some(_)) if u.is_empty() => return bad("user", "must not be empty"),
            _ => {}
        }
        if self.token.is_some() && self.user.is_some() {
            return bad("token", "give a token or a user and password, not both");
        }
        if self.token.as_deref() == Some("") {
            return bad("token", "must not be empty");
        }
        if self
            .tls_ca
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return bad("tls_ca", "must not be empty (leave it out for no TLS)");
        }
        if !valid_js_name(&self.stream) {
            return bad(
                "stream",
                format!(
                    "{:?} is not a stream name (letters, digits, - and _)",
                    self.stream
                ),
            );
        }
        if !valid_subject(&self.subject) {
            return bad(
                "subject",
                format!(
                    "{:?} is not a subject (dot-separated tokens, no wildcards)",
                    self.subject
                ),
            );
        }
        if !valid_js_name(&self.members_bucket) {
            return bad(
                "members_bucket",
                format!(
                    "{:?} is not a bucket name (letters, digits, - and _)",
                    self.members_bucket
                ),
            );
        }
        if !(1..=5).contains(&self.replicas) {
            return bad("replicas", "must be between 1 and 5 (JetStream's limit)");
        }
        if self.heartbeat_interval_ms == 0 {
            return bad("heartbeat_interval_ms", "must be at least 1");
        }
        if self.heartbeat_misses < 2 {
            return bad("heartbeat_misses", "must be at least 2");
        }
        if self.publish_timeout_ms == 0 {
            return bad("publish_timeout_ms", "must be at least 1");
        }
        if self.connect_timeout_ms == 0 {
            return bad("connect_timeout_ms", "must be at least 1");
        }
        if self.clock_sync_interval_ms == 0 {
            return bad("clock_sync_interval_ms", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> ClusterSettings {
        ClusterSettings {
            enabled: true,
            ..ClusterSettings::default()
        }
    }

    #[test]
    fn defaults_pass_and_off_is_never_checked() {
        assert_eq!(on().check(), Ok(()));
        let off = ClusterSettings {
            replicas: 0,
            ..ClusterSettings::default()
        };
        assert_eq!(off.check(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |s: ClusterSettings| s.check().unwrap_err().0;
        assert_eq!(
            key(ClusterSettings {
                servers: vec![],
                ..on()
            }),
            "servers"
        );
        assert_eq!(
            key(ClusterSettings {
                servers: vec!["nats://h:0".into()],
                ..on()
            }),
            "servers"
        );
        assert_eq!(
            key(ClusterSettings {
                replicas: 6,
                ..on()
            }),
            "replicas"
        );
        assert_eq!(
            key(ClusterSettings {
                stream: "a.b".into(),
                ..on()
            }),
            "stream"
        );
        assert_eq!(
            key(ClusterSettings {
                subject: "a.>".into(),
                ..on()
            }),
            "subject"
        );
        assert_eq!(
            key(ClusterSettings {
                members_bucket: "a b".into(),
                ..on()
            }),
            "members_bucket"
        );
        assert_eq!(
            key(ClusterSettings {
                user: Some("u".into()),
                ..on()
            }),
            "password"
        );
        assert_eq!(
            key(ClusterSettings {
                user: Some("u".into()),
                password: Some("p".into()),
                token: Some("t".into()),
                ..on()
            }),
            "token"
        );
        assert_eq!(
            key(ClusterSettings {
                heartbeat_misses: 1,
                ..on()
            }),
            "heartbeat_misses"
        );
        assert_eq!(
            key(ClusterSettings {
                publish_timeout_ms: 0,
                ..on()
            }),
            "publish_timeout_ms"
        );
    }

    #[test]
    fn urls() {
        for u in [
            "nats://127.0.0.1:4222",
            "tls://n1.example:4443",
            "localhost:4222",
            "n1",
        ] {
            assert!(valid_url(u), "{u}");
        }
        for u in ["", "nats://", "nats://h:x", "nats://h:99999"] {
            assert!(!valid_url(u), "{u}");
        }
    }
}
