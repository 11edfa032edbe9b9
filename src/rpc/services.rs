//! Built-in services: `ping`, `echo`, `compute`, `stats`, `services`.
//!
//! Native shape (`data` in, `data` out):
//! * `ping`: `{}` → `{"pong": true}`;
//! * `echo`: returns `data` as is;
//! * `compute`: `{"n": N}` → `{"result": R}`, R = (Σ i*i mod 1_000_000_007
//!   for i in 0..N, reduced at each step), on the blocking pool with at most
//!   `compute_workers` running at once; a request dropped before it is done
//!   (its connection is gone) never starts, or stops within
//!   [`CHECK_EVERY`] steps;
//! * `stats`: `{"requests", "connections", "uptime_seconds", "compute_workers",
//!   "compute_busy"}`;
//! * `services`: `{"services": [names…]}`.
//!
//! ThreadCenter shape (as the `rpc-tokio` peer): `echo` needs a string
//! `payload` and answers it as `result`; `compute` answers the bare number;
//! `ping` answers `"pong"`; `services` the bare list; `stats` the object.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

use super::registry::{CallContext, Registry, Request, Service, ServiceError};
use super::stats::RpcStats;

const MOD: u64 = 1_000_000_007;

/// Steps of `compute` between two looks at whether its request is still
/// wanted.
pub(crate) const CHECK_EVERY: u64 = 1 << 20;

/// Σ i*i mod 1_000_000_007 for i in 0..n, reduced at each step (the peer's
/// arithmetic). `n` must be at most 2^32 so that `i * i` fits.
#[cfg(test)]
pub(crate) fn compute(n: u64) -> u64 {
    compute_unless(n, &AtomicBool::new(false)).unwrap_or_default()
}

/// `compute(n)`, or `None` as soon as `stop` is seen set (looked at every
/// [`CHECK_EVERY`] steps).
fn compute_unless(n: u64, stop: &AtomicBool) -> Option<u64> {
    let mut acc: u64 = 0;
    let mut i = 0;
    while i < n {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let end = n.min(i.saturating_add(CHECK_EVERY));
        for k in i..end {
            acc = (acc + (k * k) % MOD) % MOD;
        }
        i = end;
    }
    Some(acc)
}

/// Sets its flag when dropped: the request it belongs to is gone (or done).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

struct Ping;

#[async_trait]
impl Service for Ping {
    async fn call(&self, req: Request, _: &CallContext) -> Result<Value, ServiceError> {
        Ok(if req.is_thread_center() {
            Value::from("pong")
        } else {
            json!({"pong": true})
        })
    }
}

struct Echo;

#[async_trait]
impl Service for Echo {
    async fn call(&self, req: Request, _: &CallContext) -> Result<Value, ServiceError> {
        if !req.is_thread_center() {
            return Ok(req.data);
        }
        match req.data {
            Value::Object(mut args) => match args.remove("payload") {
                Some(p @ Value::String(_)) => Ok(p),
                _ => Err(ServiceError::bad_request("echo needs a string payload")),
            },
            _ => Err(ServiceError::bad_request("echo needs a string payload")),
        }
    }
}

struct Compute {
    workers: Arc<Semaphore>,
    max_n: u64,
}

impl Compute {
    fn n(&self, data: &Value) -> Result<u64, ServiceError> {
        let n = data
            .get("n")
            .ok_or_else(|| ServiceError::bad_request("compute needs an integer n"))?;
        let n = n
            .as_u64()
            .ok_or_else(|| ServiceError::bad_request("n must be a non-negative integer"))?;
        if n > self.max_n {
            return Err(ServiceError::bad_request(format!(
                "n must be at most {}",
                self.max_n
            )));
        }
        Ok(n)
    }
}

#[async_trait]
impl Service for Compute {
    async fn call(&self, req: Request, _: &CallContext) -> Result<Value, ServiceError> {
        let n = self.n(&req.data)?;
        let permit = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ServiceError::internal("compute pool closed"))?;
        // The permit lives as long as the computation, even if the caller
        // goes away: the bound holds for the blocking pool itself. A caller
        // that goes away stops the computation at its next check.
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_when_dropped = StopOnDrop(stop.clone());
        let sum = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            compute_unless(n, &stop)
        })
        .await
        .map_err(|e| ServiceError::internal(format!("compute failed: {e}")))?
        .ok_or_else(|| ServiceError::internal("compute cancelled"))?;
        Ok(if req.is_thread_center() {
            Value::from(sum)
        } else {
            json!({"result": sum})
        })
    }
}

struct Stats {
    stats: Arc<RpcStats>,
    workers: Arc<Semaphore>,
    total_workers: usize,
}

#[async_trait]
impl Service for Stats {
    async fn call(&self, _: Request, _: &CallContext) -> Result<Value, ServiceError> {
        let busy = self
            .total_workers
            .saturating_sub(self.workers.available_permits());
        Ok(json!({
            "requests": self.stats.requests(),
            "connections": self.stats.connections(),
            "uptime_seconds": self.stats.uptime().as_secs_f64(),
            "compute_workers": self.total_workers,
            "compute_busy": busy,
        }))
    }
}

struct Services {
    names: Vec<Value>,
}

#[async_trait]
impl Service for Services {
    async fn call(&self, req: Request, _: &CallContext) -> Result<Value, ServiceError> {
        let list = Value::Array(self.names.clone());
        Ok(if req.is_thread_center() {
            list
        } else {
            let mut m = Map::new();
            m.insert("services".to_owned(), list);
            Value::Object(m)
        })
    }
}

/// The built-ins, overridden by `user`'s services of the same name, plus
/// `services` listing them all (unless `user` has one).
pub(crate) fn with_builtins(
    user: &Registry,
    stats: Arc<RpcStats>,
    workers: Arc<Semaphore>,
    total_workers: usize,
    compute_max_n: u64,
) -> Registry {
    let mut r = Registry::new()
        .with("ping", Arc::new(Ping))
        .with("echo", Arc::new(Echo))
        .with(
            "compute",
            Arc::new(Compute {
                workers: workers.clone(),
                max_n: compute_max_n,
            }),
        )
        .with(
            "stats",
            Arc::new(Stats {
                stats,
                workers,
                total_workers,
            }),
        );
    for (name, svc) in user.iter() {
        r.register(name, svc.clone());
    }
    if r.get("services").is_none() {
        let mut names: Vec<&str> = r.names().collect();
        names.push("services");
        names.sort_unstable();
        let names = names.into_iter().map(Value::from).collect();
        r.register("services", Arc::new(Services { names }));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::envelope::Shape;

    fn reg(max_n: u64) -> Registry {
        with_builtins(
            &Registry::new(),
            Arc::new(RpcStats::new()),
            Arc::new(Semaphore::new(1)),
            1,
            max_n,
        )
    }

    async fn call(
        r: &Registry,
        svc: &str,
        shape: Shape,
        data: Value,
    ) -> Result<Value, ServiceError> {
        let (tx, _rx) = crate::rpc::push::channel(1);
        let cx = CallContext::new(0, None, tx);
        match r.get(svc) {
            Some(s) => s.call(Request::new(svc, data).with_shape(shape), &cx).await,
            None => Err(ServiceError::not_found(svc)),
        }
    }

    #[test]
    fn compute_matches_reference() {
        assert_eq!(compute(0), 0);
        assert_eq!(compute(1), 0);
        assert_eq!(compute(4), 1 + 4 + 9);
        let mut acc: u128 = 0;
        for i in 0..100_000u128 {
            acc = (acc + i * i) % MOD as u128;
        }
        assert_eq!(compute(100_000) as u128, acc);
        // Across a check.
        let n = CHECK_EVERY + 3;
        let mut acc: u128 = 0;
        for i in 0..n as u128 {
            acc = (acc + i * i % MOD as u128) % MOD as u128;
        }
        assert_eq!(compute(n) as u128, acc);
    }

    #[test]
    fn compute_stops_when_told() {
        let stop = AtomicBool::new(true);
        assert_eq!(compute_unless(10 * CHECK_EVERY, &stop), None);
        assert_eq!(compute_unless(0, &stop), Some(0));
    }

    #[tokio::test]
    async fn builtins_in_both_shapes() {
        let r = reg(1000);
        let n = Shape::Native;
        let tc = Shape::ThreadCenter;
        assert_eq!(
            call(&r, "ping", n, json!({})).await,
            Ok(json!({"pong": true}))
        );
        assert_eq!(call(&r, "ping", tc, json!({})).await, Ok(json!("pong")));
        assert_eq!(
            call(&r, "echo", n, json!({"a": [1]})).await,
            Ok(json!({"a": [1]}))
        );
        assert_eq!(
            call(&r, "echo", tc, json!({"payload": "x"})).await,
            Ok(json!("x"))
        );
        assert_eq!(
            call(&r, "echo", tc, json!({"payload": 1}))
                .await
                .map_err(|e| e.code),
            Err(crate::rpc::ErrorCode::BadRequest)
        );
        assert_eq!(
            call(&r, "compute", n, json!({"n": 4})).await,
            Ok(json!({"result": 14}))
        );
        assert_eq!(
            call(&r, "compute", tc, json!({"n": 4})).await,
            Ok(json!(14))
        );
        for bad in [
            json!({}),
            json!({"n": -1}),
            json!({"n": 1.5}),
            json!({"n": "3"}),
            json!({"n": 1001}),
        ] {
            assert_eq!(
                call(&r, "compute", n, bad.clone())
                    .await
                    .map_err(|e| e.code),
                Err(crate::rpc::ErrorCode::BadRequest),
                "{bad}"
            );
        }
        assert_eq!(
            call(&r, "services", n, json!({})).await,
            Ok(json!({"services": ["compute", "echo", "ping", "services", "stats"]}))
        );
        let stats = call(&r, "stats", n, json!({})).await.unwrap_or_default();
        assert!(stats.get("uptime_seconds").is_some());
        assert_eq!(stats.get("compute_workers"), Some(&json!(1)));
    }
}
