//! [`ChatError`].

use super::StoreError;

/// Why the chat could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}
