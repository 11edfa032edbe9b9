//! [`ClusterLog`]: the chat's writes through the JetStream stream.
//!
//! A write is published on the log's subject with `Nats-Msg-Id` set to its
//! idempotency key: `c.<sender>.<client id in hex>` when the client gave an
//! id (a retry, on any node, is the same message: JetStream drops it
//! within its duplicate window, the store at apply time after it), else
//! `n.<node>.<boot>.<n>`, a key this node makes and never reuses. After
//! JetStream's acknowledgement (a quorum has it; an attempt unanswered for
//! a second, as while the stream elects a new leader, is sent again with
//! the same key), the write waits until
//! this node's `log_consumer` applied it, and is answered with what
//! applying it decided (an acknowledged duplicate: from the state, once
//! applied). Not acknowledged or not applied within `publish_timeout_ms`:
//! UNAVAILABLE. Nothing is half-applied: a write is applied whole from the
//! log or not at all; one acknowledged late is still applied everywhere,
//! and a retry with the same client id finds it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::Semaphore;
use tokio::time::{timeout_at, Instant};

use super::connection::Link;
use super::status::Status;
use super::waiters::{Applied, Own, Waiters};
use super::ClusterSettings;
use crate::async_trait;
use crate::chat::{Appended, Chat, StoreError, Write, WriteError, WriteLog, Written};

/// Writes published and not yet acknowledged, at most: beyond, a write
/// waits for room (within its timeout).
pub(crate) const MAX_IN_FLIGHT: usize = 1024;

/// How long one publish attempt waits for its acknowledgement before the
/// entry is sent again (same `Nats-Msg-Id`), within the publish timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// The pause after a refused attempt (no stream leader yet, no responders).
const RESEND_PAUSE: Duration = Duration::from_millis(100);

/// The log the chat writes through in cluster mode.
pub(crate) struct ClusterLog {
    settings: ClusterSettings,
    chat: Chat,
    link: Arc<Link>,
    status: Arc<Status>,
    waiters: Arc<Waiters>,
    in_flight: Semaphore,
    /// `<node>.<boot>`: the start of this node's own keys.
    key_prefix: String,
    next_key: AtomicU64,
}

impl std::fmt::Debug for ClusterLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLog").finish_non_exhaustive()
    }
}

/// `s` in lowercase hex: any client id becomes a valid header token.
fn hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The idempotency key of a write given by a client with an id.
pub(crate) fn client_key(user: &str, client_id: &str) -> String {
    format!("c.{user}.{}", hex(client_id))
}

impl ClusterLog {
    pub(crate) fn new(
        settings: ClusterSettings,
        node: &str,
        chat: Chat,
        link: Arc<Link>,
        status: Arc<Status>,
        waiters: Arc<Waiters>,
    ) -> ClusterLog {
        // The boot: this start's time in µs and the process id, so that
        // a restarted node never makes a key it made before.
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        ClusterLog {
            settings,
            chat,
            link,
            status,
            waiters,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            key_prefix: format!("n.{node}.{boot:x}{:x}", std::process::id()),
            next_key: AtomicU64::new(0),
        }
    }

    fn key(&self, write: &Write) -> String {
        match write.client_key() {
            Some((user, id)) => client_key(user, id),
            None => format!(
                "{}.{}",
                self.key_prefix,
                self.next_key.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// Publishes an entry and waits for JetStream's acknowledgement until
    /// `deadline`. An attempt unanswered within [`ATTEMPT_TIMEOUT`] (its
    /// server died, the stream's leader is being elected) or refused by
    /// an unreachable stream is sent again with the same `Nats-Msg-Id`, so
    /// that a write waits the election out rather than the whole publish
    /// timeout; JetStream's duplicate window makes a resent entry one
    /// entry. Returns the acknowledgement and the attempts it took; `Err`
    /// says why nothing was acknowledged.
    async fn publish(
        &self,
        payload: bytes::Bytes,
        key: &str,
        deadline: Instant,
    ) -> Result<(jetstream::publish::PublishAck, u32), String> {
        let timeout = Duration::from_millis(self.settings.publish_timeout_ms);
        let mut last = None;
        let mut attempts = 0;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let Some(client) = self.link.client() else {
                last = Some("NATS is unreachable".to_owned());
                tokio::time::sleep_until((now + RESEND_PAUSE).min(deadline)).await;
                continue;
            };
            attempts += 1;
            let js = jetstream::new(client);
            let publish = jetstream::context::Publish::build()
                .payload(payload.clone())
                .message_id(key);
            let attempt = timeout_at((now + ATTEMPT_TIMEOUT).min(deadline), async {
                js.send_publish(self.settings.subject.clone(), publish)
                    .await
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            match attempt {
                Ok(Ok(ack)) => return Ok((ack, attempts)),
                Ok(Err(e)) => {
                    last = Some(e);
                    tokio::time::sleep_until((Instant::now() + RESEND_PAUSE).min(deadline)).await;
                }
                Err(_) => {}
            }
        }
        Err(match last {
            Some(e) => format!(
                "the log did not take the write within {timeout:?}: {e} \
                 (retry with the same client id)"
            ),
            None => format!(
                "the log did not acknowledge the write within {timeout:?} \
                 (retry with the same client id)"
            ),
        })
    }

    fn unavailable(&self, kind: &str, why: String) -> WriteError {
        self.status
            .metrics()
            .cluster_replication_errors
            .with_label_values(&[kind])
            .inc();
        WriteError::Unavailable(why)
    }

    /// The answer to a write JetStream acknowledged as a duplicate of the
    /// entry at `seq`, which this node has applied: the original, from the
    /// state.
    async fn answer_from_state(&self, write: &Write, seq: u64) -> Result<Written, WriteError> {
        if let Some((user, id)) = write.client_key() {
            if let Some(event) = self.chat.store().by_client_id(user, id).await? {
                return Ok(Written::Appended(Appended {
                    event,
                    duplicate: true,
                }));
            }
            return Err(WriteError::Store(StoreError::NotFound(format!(
                "the first write with client id {id:?} (log entry {seq}) was refused; \
                 send it again with another client id"
            ))));
        }
        // Only client ids repeat a key; a node's own keys never do.
        Err(WriteError::Unavailable(format!(
            "log entry {seq} repeats a key this node made; its result is unknown"
        )))
    }
}

/// A waiter's answer as the chat takes it; `duplicate` when JetStream said
/// the write repeated an earlier one.
fn answer(applied: Applied, duplicate: bool) -> Result<Written, WriteError> {
    match applied {
        Applied::Done(Written::Appended(mut a)) => {
            a.duplicate |= duplicate;
            Ok(Written::Appended(a))
        }
        Applied::Done(w) => Ok(w),
        Applied::Conflict(m) => Err(WriteError::Store(StoreError::Conflict(m))),
        Applied::NotFound(m) => Err(WriteError::Store(StoreError::NotFound(m))),
        Applied::Failed(m) => Err(WriteError::Unavailable(format!(
            "this node failed to apply the write: {m}"
        ))),
    }
}

#[async_trait]
impl WriteLog for ClusterLog {
    async fn submit(&self, write: Write) -> Result<Written, WriteError> {
        let timeout = Duration::from_millis(self.settings.publish_timeout_ms);
        let start = Instant::now();
        let deadline = start + timeout;
        if let Some(gap) = self.status.gap() {
            return Err(WriteError::Unavailable(gap));
        }
        if self.link.client().is_none() || !self.status.connected() {
            return Err(self.unavailable(
                "publish",
                "NATS is unreachable; the write was not made (retry later)".into(),
            ));
        }
        let payload = serde_json::to_vec(&write)
            .map_err(|e| WriteError::Store(StoreError::Record(Box::new(e))))?;
        let key = self.key(&write);
        let Ok(_permit) = timeout_at(deadline, self.in_flight.acquire()).await else {
            return Err(self.unavailable(
                "publish",
                format!("too many writes in flight for {timeout:?}; the write was not made"),
            ));
        };
        let payload = bytes::Bytes::from(payload);
        let (ticket, mut applied) = self.waiters.register(&key);
        let (ack, attempts) = match self.publish(payload.clone(), &key, deadline).await {
            Ok(acked) => acked,
            Err(e) => {
                self.waiters.cancel(&ticket);
                return Err(self.unavailable("publish", e));
            }
        };
        // JetStream calls an entry a duplicate when its key was stored
        // before: a client's retry (duplicate to the client too), or one of
        // this write's own resends (not one to the client).
        let duplicate = ack.duplicate && attempts == 1;
        // Only a client's key can be stored before this write was
        // registered; an entry with it applied before is answered from
        // the state (its waiter never fires).
        let from_state = |applied_seq: u64| {
            ack.duplicate && write.client_key().is_some() && applied_seq >= ack.sequence
        };
        if !ack.duplicate {
            // The entry at ack.sequence is this one: the consumer may apply
            // it without waiting for the stream to hand it back. Decoded
            // from the bytes published, as the stream's copy would be.
            if let Ok(w) = serde_json::from_slice::<Write>(&payload) {
                if w.validate().is_ok() {
                    self.waiters.acked(
                        ack.sequence,
                        Own {
                            key: key.clone(),
                            write: w,
                        },
                    );
                }
            }
        }
        if ack.duplicate {
            if let Ok((_, a)) = applied.try_recv() {
                return answer(a, duplicate);
            }
            if from_state(self.chat.store().applied_seq()) {
                self.waiters.cancel(&ticket);
                return self.answer_from_state(&write, ack.sequence).await;
            }
        }
        let r = match timeout_at(deadline, applied).await {
            Ok(Ok((_, a))) => answer(a, duplicate),
            _ => {
                self.waiters.cancel(&ticket);
                if from_state(self.chat.store().applied_seq()) {
                    return self.answer_from_state(&write, ack.sequence).await;
                }
                return Err(self.unavailable(
                    "apply",
                    format!(
                        "the write is in the log (entry {}) but this node did not apply it \
                         within {timeout:?}",
                        ack.sequence
                    ),
                ));
            }
        };
        self.status
            .metrics()
            .cluster_publish_latency
            .observe(start.elapsed().as_secs_f64());
        r
    }

    fn readable(&self) -> Result<(), String> {
        match self.status.gap() {
            Some(g) => Err(g),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_are_header_safe_whatever_the_id() {
        assert_eq!(client_key("ann", "m1"), "c.ann.6d31");
        let k = client_key("ann", "a b\r\n\u{0}é:*>");
        assert!(
            k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'),
            "{k}"
        );
        assert_ne!(client_key("ann", "x"), client_key("bob", "x"));
    }
}
