//! A stand-in for the chat services, for the tests of their clients (the
//! terminal client, the bots, the web page) on the wire contract: in memory,
//! with pushes through the connection's push sender and a Lamport clock in
//! every reply. Not the real services (src/chat/): no validation to speak of.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use corral::node::NodeBuilder;
use corral::rpc::{async_trait, CallContext, Push, PushSender, Request, Service, ServiceError};
use serde_json::{json, Value};

/// The services the stand-in answers.
pub const SERVICES: &[&str] = &[
    "login",
    "logout",
    "users",
    "channels",
    "channel",
    "subscribe",
    "unsubscribe",
    "publish",
    "message",
    "history",
];

/// Registers the stand-in's services on `builder`.
pub fn register(mut builder: NodeBuilder, chat: &Arc<FakeChat>) -> NodeBuilder {
    for s in SERVICES {
        builder = builder.service(s, Arc::new(Svc(chat.clone())));
    }
    builder
}

/// A stand-in for the chat services: in memory, one process.
#[derive(Default)]
pub struct FakeChat {
    pub clock: AtomicU64,
    pub channels: Mutex<BTreeSet<String>>,
    pub users: Mutex<BTreeSet<String>>,
    pub subs: Mutex<HashMap<String, Vec<PushSender>>>,
    pub published: AtomicU64,
    pub max_client_clock: AtomicU64,
}

pub struct Svc(pub Arc<FakeChat>);

fn field<'a>(data: &'a Value, name: &str) -> Result<&'a str, ServiceError> {
    data.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ServiceError::bad_request(format!("missing {name}")))
}

#[async_trait]
impl Service for Svc {
    async fn call(&self, req: Request, ctx: &CallContext) -> Result<Value, ServiceError> {
        let chat = &self.0;
        let received = req
            .data
            .get("clock")
            .and_then(Value::as_u64)
            .ok_or_else(|| ServiceError::bad_request("missing clock"))?;
        chat.max_client_clock.fetch_max(received, Ordering::SeqCst);
        let clock = chat
            .clock
            .fetch_max(received, Ordering::SeqCst)
            .max(received)
            + 1;
        chat.clock.store(clock, Ordering::SeqCst);
        let mut reply = match &*req.service {
            "login" => {
                let user = field(&req.data, "user")?.to_string();
                chat.users.lock().expect("lock").insert(user.clone());
                chat.subs
                    .lock()
                    .expect("lock")
                    .entry(user.clone())
                    .or_default()
                    .push(ctx.pushes().clone());
                json!({ "user": user })
            }
            "users" => {
                json!({ "users": chat.users.lock().expect("lock").iter().collect::<Vec<_>>() })
            }
            "channels" => {
                json!({ "channels": chat.channels.lock().expect("lock").iter().collect::<Vec<_>>() })
            }
            "channel" => {
                let c = field(&req.data, "channel")?.to_string();
                if !chat.channels.lock().expect("lock").insert(c.clone()) {
                    return Err(ServiceError::conflict(format!("channel {c} exists")));
                }
                json!({ "channel": c })
            }
            "subscribe" => {
                let t = field(&req.data, "topic")?.to_string();
                chat.subs
                    .lock()
                    .expect("lock")
                    .entry(t.clone())
                    .or_default()
                    .push(ctx.pushes().clone());
                json!({ "topic": t })
            }
            "publish" | "message" => {
                let (topic, data) = if &*req.service == "publish" {
                    let c = field(&req.data, "channel")?;
                    if !chat.channels.lock().expect("lock").contains(c) {
                        return Err(ServiceError::not_found(format!("no channel {c}")));
                    }
                    let d = json!({"user": field(&req.data, "user")?, "channel": c,
                        "message": field(&req.data, "message")?, "clock": clock, "timestamp": 1});
                    (c.to_string(), d)
                } else {
                    let dst = field(&req.data, "dst")?;
                    let d = json!({"src": field(&req.data, "src")?, "dst": dst,
                        "message": field(&req.data, "message")?, "clock": clock, "timestamp": 1});
                    (dst.to_string(), d)
                };
                let seq = chat.published.fetch_add(1, Ordering::SeqCst) + 1;
                let subs = chat.subs.lock().expect("lock").get(&topic).cloned();
                for s in subs.unwrap_or_default() {
                    let mut d = data.clone();
                    d["seq"] = json!(seq);
                    let _ = s.try_send(Push::new(topic.clone(), d));
                }
                json!({ "seq": seq })
            }
            "history" => json!({ "events": [] }),
            "logout" | "unsubscribe" => json!({}),
            other => return Err(ServiceError::bad_request(format!("fake has no {other}"))),
        };
        reply["clock"] = json!(clock);
        reply["timestamp"] = json!(1);
        Ok(reply)
    }
}
