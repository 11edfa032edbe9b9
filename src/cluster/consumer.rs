//! The `log_consumer` actor: reads the chat log in order and applies it.
//!
//! It reads the stream from this node's applied sequence + 1 with an
//! ephemeral pull consumer (no acks: the applied sequence, in the store,
//! is the position), applies what arrives in batches through the store's
//! group commit (each entry at its stream sequence, the applied sequence
//! recorded in the same transaction), answers the writes this node
//! published ([`Waiters`]), and lets the store's commit hook push to this
//! node's subscribers. Lamport: each entry's clock advances the node's
//! clock (the receive rule). This node's own writes, once JetStream
//! acknowledged them at a sequence, are applied as soon as everything
//! before them is, without waiting for the stream to hand them back (NATS
//! may place the consumer on a server that follows the stream, which sees
//! an entry only after the leader acknowledged it).
//!
//! A lost connection, a consumer that stops answering or a server that
//! dies: the consumer is made again from the applied sequence, after a
//! short pause. An entry that is no chat write is skipped (logged,
//! counted, recorded as applied). When the stream no longer holds entries
//! this node needs (its first sequence is beyond the applied one + 1, or
//! it ends before it), the node says so (log, `/health`, UNAVAILABLE on
//! chat writes and reads) and applies nothing until that changes.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::connection::Link;
use super::status::Status;
use super::waiters::{Applied, Waiters};
use super::{stream, ClusterSettings};
use crate::chat::{Chat, StoreError, Write};

/// Entries applied per batch at most (one commit).
const BATCH: usize = 512;

/// The consumer's heartbeat: a consumer silent for two of these is made
/// again (its server died with it: the writes of this node wait for it).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Pause before trying again after an error.
const RETRY: Duration = Duration::from_millis(250);
/// The bound on one JetStream API request of the consumer (stream info,
/// consumer create). async-nats' default is 5 s: after the stream's leader
/// is lost, a request made before the new leader is elected waits that
/// long, twice (stream, then consumer), while this node applies nothing
/// and its writes wait (scripts/bench-cluster.sh saw a 12 s gap). With a
/// short bound the consumer asks again every RETRY + this until the new
/// leader answers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between checks while the log is gapped.
const GAP_RECHECK: Duration = Duration::from_secs(2);
/// How long the server keeps an ephemeral consumer nobody reads.
const INACTIVE: Duration = Duration::from_secs(30);

/// What the `log_consumer` actor needs, cloned at each (re)start.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerArgs {
    pub(crate) settings: ClusterSettings,
    pub(crate) chat: Chat,
    pub(crate) link: Arc<Link>,
    pub(crate) status: Arc<Status>,
    pub(crate) waiters: Arc<Waiters>,
}

/// The `log_consumer` actor: runs the consuming task while it lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsumerActor;

/// A message from the consuming task: it ended with this error.
#[derive(Debug)]
pub(crate) struct Failed(String);

impl Actor for ConsumerActor {
    type Msg = Failed;
    type State = crate::util::AbortOnDrop;
    type Arguments = ConsumerArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Failed>,
        args: ConsumerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let task = tokio::spawn(async move {
            let e = run(&args).await;
            tracing::error!(error = %e, "cluster: the log consumer failed");
            let _ = me.cast(Failed(e));
        });
        Ok(crate::util::AbortOnDrop::new(task))
    }

    async fn handle(
        &self,
        _: ActorRef<Failed>,
        Failed(e): Failed,
        _: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        Err(format!("the log consumer failed: {e}").into())
    }
}

/// Why the stream cannot give this node what it needs, if it cannot.
fn gap(applied: u64, state: &jetstream::stream::State, stream: &str) -> Option<String> {
    let first = state.first_sequence;
    let last = state.last_sequence;
    if applied > last {
        return Some(format!(
            "this node applied the chat log up to {applied} but stream {stream} ends at {last} \
             (was it deleted and made again?); its local state is not the log's: \
             move its data_dir aside to rebuild it from the stream"
        ));
    }
    if last > applied && first > applied + 1 {
        return Some(format!(
            "stream {stream} no longer holds entries {}..{} this node needs (it begins at \
             {first}); the node's chat state is incomplete: restore its data_dir from a \
             backup or another node, or raise the stream's retention",
            applied + 1,
            first - 1
        ));
    }
    None
}

/// Consumes until a failure that needs a restart (the store failed).
async fn run(args: &ConsumerArgs) -> String {
    loop {
        let client = args.link.wait_client().await;
        args.status.connected();
        let mut js = jetstream::new(client);
        js.set_timeout(REQUEST_TIMEOUT);
        match consume(args, &js).await {
            Ok(()) => {}
            Err(Fatal(e)) => return e,
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// A failure the consumer does not retry by itself.
struct Fatal(String);

/// One consumer's life: checks the stream, reads from the applied sequence
/// + 1 and applies until an error; `Ok` to start again.
async fn consume(args: &ConsumerArgs, js: &jetstream::Context) -> Result<(), Fatal> {
    let s = &args.settings;
    let store = args.chat.store();
    let note = |kind: &str, e: String| {
        args.status
            .metrics()
            .cluster_replication_errors
            .with_label_values(&[kind])
            .inc();
        args.status.set_consumer_error(Some(e));
    };
    let mut st = match stream::ensure(js, s).await {
        Ok(st) => st,
        Err(e) => {
            tracing::warn!(error = %e, stream = %s.stream, "cluster: the log's stream is not available yet");
            note("consumer", format!("stream {}: {e}", s.stream));
            return Ok(());
        }
    };
    let state = match st.info().await {
        Ok(info) => info.state,
        Err(e) => {
            note("consumer", e.to_string());
            return Ok(());
        }
    };
    let mut applied = store.applied_seq();
    let last_event = store
        .last_seq()
        .await
        .map_err(|e| Fatal(format!("reading the store: {e}")))?;
    let foreign = (last_event > applied).then(|| {
        format!(
            "this node's store holds events up to seq {last_event} that are not from the chat              log (applied up to {applied}: did it run single-node?); applying the log over              them would mix two histories: move its data_dir aside to rebuild it from the stream"
        )
    });
    if let Some(why) = foreign.or_else(|| gap(applied, &state, &s.stream)) {
        if args.status.gap().is_none() {
            tracing::error!(
                applied,
                first = state.first_sequence,
                last = state.last_sequence,
                "cluster: {why}"
            );
            args.status
                .metrics()
                .cluster_replication_errors
                .with_label_values(&["gap"])
                .inc();
        }
        args.status.set_gap(Some(why));
        tokio::time::sleep(GAP_RECHECK).await;
        return Ok(());
    }
    if args.status.gap().is_some() {
        tracing::info!("cluster: the chat log holds what this node needs again");
        args.status.set_gap(None);
    }
    args.status.set_progress(applied, Some(state.last_sequence));
    args.status.set_catching_up(state.last_sequence > applied);
    if state.last_sequence > applied {
        tracing::info!(
            applied,
            head = state.last_sequence,
            "cluster: catching up with the chat log"
        );
    }
    let config = consumer::pull::Config {
        deliver_policy: if applied == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: applied + 1,
            }
        },
        ack_policy: consumer::AckPolicy::None,
        filter_subject: s.subject.clone(),
        inactive_threshold: INACTIVE,
        memory_storage: true,
        ..Default::default()
    };
    let c = match st.create_consumer(config).await {
        Ok(c) => c,
        Err(e) => {
            note("consumer", format!("cannot read stream {}: {e}", s.stream));
            return Ok(());
        }
    };
    let messages = match c
        .stream()
        .max_messages_per_batch(BATCH)
        .heartbeat(HEARTBEAT)
        .expires(HEARTBEAT * 5)
        .messages()
        .await
    {
        Ok(m) => m,
        Err(e) => {
            note("consumer", format!("cannot read stream {}: {e}", s.stream));
            return Ok(());
        }
    };
    args.status.set_consumer_error(None);
    let mut chunks = messages.ready_chunks(BATCH);
    loop {
        // What the stream delivered, or a wake-up for this node's own
        // acknowledged entries (applied below when they come next).
        let chunk = tokio::select! {
            chunk = chunks.next() => match chunk {
                Some(chunk) => chunk,
                None => break,
            },
            () = args.waiters.own_added() => Vec::new(),
        };
        let mut queued = Vec::with_capacity(chunk.len());
        let mut failed = None;
        let mut head = None;
        for m in chunk {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            };
            let (seq, pending) = match m.info() {
                Ok(i) => (i.stream_sequence, i.pending),
                Err(e) => {
                    failed = Some(format!("a message without its position: {e}"));
                    break;
                }
            };
            if seq <= applied {
                continue;
            }
            if seq != applied + 1 {
                // Entries went missing between two reads (retention):
                // check the stream again.
                failed = Some(format!("expected log entry {}, got {seq}", applied + 1));
                break;
            }
            applied = seq;
            head = Some(seq + pending);
            let decoded = serde_json::from_slice::<Write>(&m.payload)
                .map_err(|e| e.to_string())
                .and_then(|w| w.validate().map(|()| w));
            let write = match decoded {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(
                        seq,
                        error = %e,
                        bytes = m.payload.len(),
                        "cluster: log entry is not a chat write; skipped"
                    );
                    args.status
                        .metrics()
                        .cluster_replication_errors
                        .with_label_values(&["decode"])
                        .inc();
                    None
                }
            };
            let key = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned());
            let clock = write.as_ref().and_then(Write::clock);
            queued.push((seq, key, clock, store.apply_replicated(seq, write)));
        }
        // This node's own entries that JetStream acknowledged right after
        // what is applied: the stream would hand over the same bytes
        // later, behind the follower this consumer may be on.
        if failed.is_none() {
            while let Some((seq, own)) = args.waiters.next_own(applied) {
                applied = seq;
                let clock = own.write.clock();
                queued.push((
                    seq,
                    Some(own.key),
                    clock,
                    store.apply_replicated(seq, Some(own.write)),
                ));
            }
        }
        for (seq, key, clock, rx) in queued {
            let result = rx.await.unwrap_or(Err(StoreError::Closed));
            if let Some(c) = clock {
                args.chat.clock().observe(c);
            }
            let applied_as = match result {
                Ok(w) => Applied::Done(w),
                Err(StoreError::Conflict(m)) => Applied::Conflict(m),
                Err(StoreError::NotFound(m)) => Applied::NotFound(m),
                Err(e) => {
                    let e = e.to_string();
                    args.status
                        .metrics()
                        .cluster_replication_errors
                        .with_label_values(&["store"])
                        .inc();
                    if let Some(k) = &key {
                        args.waiters.fire(k, seq, &Applied::Failed(e.clone()));
                    }
                    return Err(Fatal(format!("applying log entry {seq}: {e}")));
                }
            };
            if let Some(k) = &key {
                args.waiters.fire(k, seq, &applied_as);
            }
        }
        args.status.set_progress(store.applied_seq(), head);
        if let Some(e) = failed {
            tracing::warn!(error = %e, "cluster: reading the chat log failed; reading again");
            note("consumer", e);
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::gap;

    fn state(first: u64, last: u64) -> async_nats::jetstream::stream::State {
        async_nats::jetstream::stream::State {
            messages: if last >= first { last - first + 1 } else { 0 },
            bytes: 0,
            first_sequence: first,
            first_timestamp: time::OffsetDateTime::UNIX_EPOCH,
            last_sequence: last,
            last_timestamp: time::OffsetDateTime::UNIX_EPOCH,
            consumer_count: 0,
        }
    }

    #[test]
    fn gaps() {
        // A new, empty stream; a fresh node on a whole stream; a node
        // up to date or behind with what it needs still there.
        assert_eq!(gap(0, &state(0, 0), "S"), None);
        assert_eq!(gap(0, &state(1, 10), "S"), None);
        assert_eq!(gap(10, &state(1, 10), "S"), None);
        assert_eq!(gap(4, &state(5, 10), "S"), None);
        // Entries lost to retention, a purged stream, a stream made again.
        assert!(gap(3, &state(5, 10), "S").is_some());
        assert!(gap(0, &state(11, 10), "S").is_some());
        assert!(gap(12, &state(1, 10), "S").is_some());
    }
}
