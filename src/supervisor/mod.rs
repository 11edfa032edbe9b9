//! The OTP supervisor on ractor.
mod stats;
pub use stats::{restart_counts, RestartCollector};
