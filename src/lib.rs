//! corral: Erlang/OTP-style supervision trees on ractor and tokio, and a
//! server built on them.
#![deny(missing_docs)]

pub mod client;
pub mod config;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod node;
pub mod rpc;
pub mod supervisor;
