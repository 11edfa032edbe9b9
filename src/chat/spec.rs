//! The chat's subtree, `chat_sup`.

use std::time::Duration;

use super::actor::{ChatHubActor, ChatStoreActor};
use super::Chat;
use crate::supervisor::{ChildSpec, Strategy, SupervisorFlags, SupervisorSpec};

impl Chat {
    /// `chat_sup` (rest_for_one): `chat_store`, then `chat_hub`.
    pub fn supervisor_spec(&self) -> ChildSpec {
        ChildSpec::supervisor(
            "chat_sup",
            SupervisorSpec::new("chat_sup")
                .flags(
                    SupervisorFlags::new(Strategy::RestForOne)
                        .intensity(5, Duration::from_secs(10)),
                )
                .child(ChildSpec::worker(
                    "chat_store",
                    ChatStoreActor,
                    self.store().clone(),
                ))
                .child(ChildSpec::worker(
                    "chat_hub",
                    ChatHubActor,
                    self.hub().clone(),
                )),
        )
    }
}
