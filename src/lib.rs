//! corral: Erlang/OTP-style supervision trees on ractor and tokio, and a
//! server built on them.
#![deny(missing_docs)]

pub mod metrics;
pub mod rpc;
pub mod supervisor;
