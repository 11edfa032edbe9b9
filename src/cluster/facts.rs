//! [`NodeFacts`]: what a node says about itself in its registration.

use std::time::{SystemTime, UNIX_EPOCH};

/// What this node tells the cluster about itself: its name (its key in the
/// members bucket and its clock subject), where its RPC and HTTP services
/// listen, and when it started. `instance` tells this process from an
/// earlier (or a mistaken second) one of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// The node's name (`[node] name`): letters, digits, `-`, `_` and `=`.
    pub name: String,
    /// Where the node's RPC service listens (`host:port`), if it has one.
    pub rpc: Option<String>,
    /// Where the node's HTTP service listens (`host:port`), if it has one.
    pub http: Option<String>,
    /// When the node started, in ms since the Unix epoch.
    pub started_ms: u64,
    /// This incarnation of the node: unique per process start (process id
    /// and start time in ns). A restart under the node's own supervisor keeps
    /// it (and the node its rank); a new process gets a new one.
    pub instance: String,
}

impl NodeFacts {
    /// Facts for a node called `name` starting now, with no addresses yet.
    pub fn new(name: impl Into<String>) -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        NodeFacts {
            name: name.into(),
            rpc: None,
            http: None,
            started_ms: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            instance: format!("{}-{}", std::process::id(), since.as_nanos()),
        }
    }

    /// The same facts with the RPC address.
    pub fn rpc(mut self, addr: impl Into<String>) -> Self {
        self.rpc = Some(addr.into());
        self
    }

    /// The same facts with the HTTP address.
    pub fn http(mut self, addr: impl Into<String>) -> Self {
        self.http = Some(addr.into());
        self
    }

    /// Whether `name` can be a node's name in a cluster: 1 to 64 letters,
    /// digits, `-`, `_` or `=` (a key of the members bucket and one token of
    /// a subject).
    pub(crate) fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
    }
}

#[cfg(test)]
mod tests {
    use super::NodeFacts;

    #[test]
    fn instances_differ_and_names_are_checked() {
        let a = NodeFacts::new("n1").rpc("127.0.0.1:7070");
        let b = NodeFacts::new("n1");
        assert_ne!(a.instance, b.instance);
        assert_eq!(a.rpc.as_deref(), Some("127.0.0.1:7070"));
        assert!(NodeFacts::valid_name("node-1_a=b"));
        for bad in ["", "a.b", "a b", "*", ">", &"x".repeat(65)] {
            assert!(!NodeFacts::valid_name(bad), "{bad:?}");
        }
    }
}
