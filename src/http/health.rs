//! [`HealthCheck`]: a part of the node that reports into `/health`.

use serde_json::Value;

/// What one part of the node says about itself in `/health`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// `Some(why)` when the part works only in part (the node is then
    /// `"degraded"`); `None` when it is healthy.
    pub degraded: Option<String>,
    /// Its details, shown under its name.
    pub details: Value,
}

/// A part of the node that reports into `/health` under `name`: the
/// cluster adds one, and a library user may add their own
/// ([`HttpProtocolBuilder::health_check`](super::HttpProtocolBuilder::health_check)).
/// Called on every `/health` request: it must be quick and must not block.
pub trait HealthCheck: Send + Sync + 'static {
    /// The key of its details in `/health`.
    fn name(&self) -> &str;
    /// Its state now.
    fn report(&self) -> HealthReport;
}
