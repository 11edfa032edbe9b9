//! `Gate`: an RPC service whose calls wait until the test lets them through.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use corral::async_trait;
use corral::rpc::{CallContext, Request, Service, ServiceError};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

/// A service whose calls wait until the test releases them; each answers
/// its request's `data`.
pub(crate) struct Gate {
    permits: Semaphore,
    entered: AtomicUsize,
    notify: Notify,
}

impl Gate {
    pub(crate) fn new() -> Arc<Gate> {
        Arc::new(Gate {
            permits: Semaphore::new(0),
            entered: AtomicUsize::new(0),
            notify: Notify::new(),
        })
    }

    /// Waits until `n` calls have entered the service.
    pub(crate) async fn wait_entered(&self, n: usize) {
        loop {
            let notified = self.notify.notified();
            if self.entered.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }

    /// Lets `n` waiting (or future) calls through.
    pub(crate) fn release(&self, n: usize) {
        self.permits.add_permits(n);
    }
}

#[async_trait]
impl Service for Gate {
    async fn call(&self, req: Request, _: &CallContext) -> Result<Value, ServiceError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
        if let Ok(p) = self.permits.acquire().await {
            p.forget();
        }
        Ok(req.data)
    }
}
