//! The `cache_sup` subtree.

use super::actor::FileCacheActor;
use super::FileCache;
use crate::supervisor::{ChildSpec, Strategy, SupervisorFlags, SupervisorSpec};
use std::time::Duration;

impl FileCache {
    /// The `cache_sup` subtree: a one_for_one supervisor of the `file_cache`
    /// actor that owns this cache's life cycle.
    pub fn supervisor_spec(&self) -> ChildSpec {
        ChildSpec::supervisor(
            "cache_sup",
            SupervisorSpec::new("cache_sup")
                .flags(
                    SupervisorFlags::new(Strategy::OneForOne).intensity(5, Duration::from_secs(10)),
                )
                .child(ChildSpec::worker(
                    "file_cache",
                    FileCacheActor,
                    self.clone(),
                )),
        )
    }
}
