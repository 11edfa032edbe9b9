//! The `file_cache` actor under `cache_sup`.

use super::FileCache;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::time::Duration;

/// How often the `file_cache` actor runs the cache's pending maintenance.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) enum FileCacheMsg {
    /// Run the cache's pending maintenance (sent by the actor's own timer).
    Maintain,
}

/// The `file_cache` actor: owns the [`FileCache`]'s life cycle (see the
/// module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileCacheActor;

/// The `file_cache` actor's state.
#[derive(Debug)]
pub(crate) struct FileCacheState {
    cache: FileCache,
    timer: tokio::task::JoinHandle<()>,
}

impl Actor for FileCacheActor {
    type Msg = FileCacheMsg;
    type State = FileCacheState;
    type Arguments = FileCache;

    async fn pre_start(
        &self,
        myself: ActorRef<FileCacheMsg>,
        cache: FileCache,
    ) -> Result<FileCacheState, ActorProcessingErr> {
        // A (re)started owner starts from an empty cache, as an OTP worker
        // starts from its initial state.
        cache.clear();
        let timer = myself.send_interval(MAINTENANCE_INTERVAL, || FileCacheMsg::Maintain);
        Ok(FileCacheState { cache, timer })
    }

    async fn handle(
        &self,
        _: ActorRef<FileCacheMsg>,
        msg: FileCacheMsg,
        state: &mut FileCacheState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FileCacheMsg::Maintain => state.cache.run_maintenance(),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<FileCacheMsg>,
        state: &mut FileCacheState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        Ok(())
    }
}
