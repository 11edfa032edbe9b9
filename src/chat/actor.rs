//! The actors of `chat_sup`: each owns a handle on what its name says, so
//! the store's writer thread and the hub live as long as the subtree.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{Hub, Store};

/// The `chat_store` actor: owns a handle on the store (its writer thread
/// runs while any handle lives).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChatStoreActor;

impl Actor for ChatStoreActor {
    type Msg = ();
    type State = Store;
    type Arguments = Store;

    async fn pre_start(&self, _: ActorRef<()>, store: Store) -> Result<Store, ActorProcessingErr> {
        Ok(store)
    }
}

/// The `chat_hub` actor: owns a handle on the hub.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChatHubActor;

impl Actor for ChatHubActor {
    type Msg = ();
    type State = Hub;
    type Arguments = Hub;

    async fn pre_start(&self, _: ActorRef<()>, hub: Hub) -> Result<Hub, ActorProcessingErr> {
        Ok(hub)
    }
}
