//! Small helpers of no domain: per-thread sharding and task ownership.

pub(crate) mod abort_on_drop;
#[cfg(feature = "rpc")]
pub(crate) mod shard;

pub(crate) use abort_on_drop::AbortOnDrop;
