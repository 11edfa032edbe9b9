//! [`Registration`]: a node's entry in the members bucket (JSON), and the
//! checks a value must pass to be taken for one.

use serde::{Deserialize, Serialize};

use super::NodeFacts;

/// Largest value taken for a registration; anything longer is garbage.
const MAX_REGISTRATION_BYTES: usize = 4096;

/// One node's registration, the value under its name in the members
/// bucket, renewed at every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Registration {
    /// The node's name (the entry's key).
    pub(crate) name: String,
    /// Its rank: the order of its registration (1 first).
    pub(crate) rank: u64,
    /// Its RPC address, if any.
    pub(crate) rpc: Option<String>,
    /// Its HTTP address, if any.
    pub(crate) http: Option<String>,
    /// When it started, in ms since the Unix epoch.
    pub(crate) started_ms: u64,
    /// Its wall clock at this heartbeat, in ms since the Unix epoch.
    pub(crate) heartbeat_ms: u64,
    /// The correction clock synchronisation applies to its wall clock, ms.
    pub(crate) offset_ms: i64,
    /// The process that wrote it (see [`NodeFacts::instance`]).
    pub(crate) instance: String,
}

impl Registration {
    /// A registration of `facts` at `rank`.
    pub(crate) fn new(facts: &NodeFacts, rank: u64, heartbeat_ms: u64, offset_ms: i64) -> Self {
        Registration {
            name: facts.name.clone(),
            rank,
            rpc: facts.rpc.clone(),
            http: facts.http.clone(),
            started_ms: facts.started_ms,
            heartbeat_ms,
            offset_ms,
            instance: facts.instance.clone(),
        }
    }

    /// The JSON value stored in the bucket.
    pub(crate) fn to_bytes(&self) -> bytes::Bytes {
        // A struct of strings and integers always serializes.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads the value stored under `key`; what is wrong with it when it is
    /// not a registration of the node called `key`.
    pub(crate) fn parse(key: &str, value: &[u8]) -> Result<Self, String> {
        if value.len() > MAX_REGISTRATION_BYTES {
            return Err(format!(
                "{} bytes, more than a registration's {MAX_REGISTRATION_BYTES}",
                value.len()
            ));
        }
        let reg: Registration =
            serde_json::from_slice(value).map_err(|e| format!("not a registration: {e}"))?;
        if reg.name != key {
            return Err(format!(
                "registration of {:?} under the key {key:?}",
                reg.name
            ));
        }
        if reg.rank == 0 {
            return Err("rank 0 (ranks start at 1)".into());
        }
        if reg.instance.is_empty() {
            return Err("no instance".into());
        }
        Ok(reg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let facts = NodeFacts::new("n1").rpc("127.0.0.1:1").http("127.0.0.1:2");
        let reg = Registration::new(&facts, 3, 1000, -5);
        assert_eq!(Registration::parse("n1", &reg.to_bytes()), Ok(reg.clone()));
        assert!(Registration::parse("n2", &reg.to_bytes())
            .unwrap_err()
            .contains("under the key"));
        for bad in [
            &b"garbage"[..],
            b"{}",
            b"[1,2]",
            br#"{"name":"n1","rank":0,"rpc":null,"http":null,"started_ms":1,"heartbeat_ms":1,"offset_ms":0,"instance":"i"}"#,
            br#"{"name":"n1","rank":-1,"rpc":null,"http":null,"started_ms":1,"heartbeat_ms":1,"offset_ms":0,"instance":"i"}"#,
        ] {
            assert!(Registration::parse("n1", bad).is_err(), "{bad:?}");
        }
        assert!(Registration::parse("n1", &vec![b' '; 5000]).is_err());
    }
}
