//! The chat log's JetStream stream: created when missing.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::ClusterSettings;

/// How long JetStream remembers a `Nats-Msg-Id` to drop a repeat (its
/// default). A retry later than this, with a client id, is still stored
/// once: the store dedupes client ids at apply time.
pub(crate) const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The stream's configuration: file storage, `replicas` copies, the log's
/// subject, the duplicate window; no limits (the log is kept whole).
pub(crate) fn config(s: &ClusterSettings) -> stream::Config {
    stream::Config {
        name: s.stream.clone(),
        subjects: vec![s.subject.clone()],
        storage: stream::StorageType::File,
        num_replicas: s.replicas,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// The stream, created when missing. An existing stream is used as it is
/// (its settings are JetStream's to keep); a difference in copies is
/// logged.
pub(crate) async fn ensure(
    js: &jetstream::Context,
    s: &ClusterSettings,
) -> Result<stream::Stream, String> {
    let mut st = js
        .get_or_create_stream(config(s))
        .await
        .map_err(|e| e.to_string())?;
    let info = st.info().await.map_err(|e| e.to_string())?;
    if info.config.num_replicas != s.replicas {
        tracing::warn!(
            stream = %s.stream,
            replicas = info.config.num_replicas,
            configured = s.replicas,
            "cluster: the stream exists with another number of copies; it is used as it is"
        );
    }
    Ok(st)
}
