//! Small helpers of no domain: per-thread sharding, task ownership, and
//! framed reads that hold no buffer while idle.

pub(crate) mod abort_on_drop;
#[cfg(feature = "rpc")]
pub(crate) mod lean_read;
#[cfg(feature = "rpc")]
pub(crate) mod shard;

pub(crate) use abort_on_drop::AbortOnDrop;
#[cfg(feature = "rpc")]
pub(crate) use lean_read::LeanFramedRead;
