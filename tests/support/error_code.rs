//! The error code of an RPC call expected to fail.

use corral::client::ClientError;
use serde_json::Value;

/// The error code of a call expected to fail.
pub(crate) fn code(r: Result<Value, ClientError>) -> String {
    match r {
        Err(ClientError::Rpc { code, .. }) => code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}
