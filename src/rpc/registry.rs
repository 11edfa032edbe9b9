//! The plug-in point: [`Service`]s registered by name in a [`Registry`].
//!
//! A service receives a [`Request`] (id, service name, shape and `data`, a
//! JSON object) and the [`CallContext`] of the connection it came on (peer
//! address, a sender of [`Push`](super::Push)es to that connection), and returns the reply
//! `data` or a [`ServiceError`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::envelope::{ErrorCode, RequestId, Shape};
use super::push::PushSender;

/// An error a service answers with: a code and a message for humans.
///
/// A native-shape error reply carries `"error": {"code", "message"}` and,
/// beside it, the seeds' `"data": {"status": "erro", "description":
/// <message>}` plus the fields given with [`ServiceError::with_data`]
/// (the chat adds `timestamp` and `clock`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    /// The error code sent on the wire.
    pub code: ErrorCode,
    /// A message for humans.
    pub message: String,
    /// Extra fields of the error reply's `data`.
    data: Option<Box<Map<String, Value>>>,
}

impl ServiceError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The error with `fields` added to its reply's `data` (beside
    /// `status` and `description`, which these never replace; a field
    /// given twice keeps its last value).
    #[must_use]
    pub fn with_data(mut self, fields: Map<String, Value>) -> Self {
        match &mut self.data {
            Some(d) => d.extend(fields),
            None => self.data = Some(Box::new(fields)),
        }
        self
    }

    /// The extra fields of the error reply's `data`, if any were given.
    pub fn data(&self) -> Option<&Map<String, Value>> {
        self.data.as_deref()
    }

    /// A BAD_REQUEST error (missing or ill-typed field).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ServiceError::new(ErrorCode::BadRequest, message)
    }

    /// A NOT_FOUND error.
    pub fn not_found(message: impl Into<String>) -> Self {
        ServiceError::new(ErrorCode::NotFound, message)
    }

    /// A CONFLICT error.
    pub fn conflict(message: impl Into<String>) -> Self {
        ServiceError::new(ErrorCode::Conflict, message)
    }

    /// An OVERLOADED error.
    pub fn overloaded(message: impl Into<String>) -> Self {
        ServiceError::new(ErrorCode::Overloaded, message)
    }

    /// An INTERNAL error.
    pub fn internal(message: impl Into<String>) -> Self {
        ServiceError::new(ErrorCode::Internal, message)
    }

    /// An UNAVAILABLE error (a part the service needs is out of reach for
    /// now; nothing was done, retrying may succeed).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ServiceError::new(ErrorCode::Unavailable, message)
    }

    /// A FORBIDDEN error (the caller may not use the service).
    pub fn forbidden(message: impl Into<String>) -> Self {
        ServiceError::new(ErrorCode::Forbidden, message)
    }
}

/// One request, as a service sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Request {
    /// The request's id (null when it had none).
    pub id: RequestId,
    /// The service name it was addressed to.
    pub service: Arc<str>,
    /// The request's shape. For [`Shape::ThreadCenter`] the reply value is
    /// sent as `result` verbatim, so a service may answer such requests with
    /// a bare value (`echo` answers with the payload string).
    pub shape: Shape,
    /// The arguments: always a JSON object (`{}` when the request had none).
    /// For the ThreadCenter shape, the request's top-level fields but `id`
    /// and `cmd`.
    pub data: Value,
}

impl Request {
    /// A native-shape request with a null id (for tests and direct calls).
    pub fn new(service: impl Into<Arc<str>>, data: Value) -> Self {
        Request {
            id: RequestId::NULL,
            service: service.into(),
            shape: Shape::Native,
            data,
        }
    }

    /// The same request with another id.
    pub fn with_id(mut self, id: RequestId) -> Self {
        self.id = id;
        self
    }

    /// The same request with another shape.
    pub fn with_shape(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    /// Whether the request came in the ThreadCenter shape.
    pub fn is_thread_center(&self) -> bool {
        self.shape == Shape::ThreadCenter
    }
}

/// What a service knows about the connection a request came on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallContext {
    conn_id: u64,
    peer: Option<SocketAddr>,
    pushes: PushSender,
    sessionless: bool,
}

impl CallContext {
    /// A context for connection `conn_id` from `peer`, whose pushes go to
    /// `pushes`.
    pub fn new(conn_id: u64, peer: Option<SocketAddr>, pushes: PushSender) -> Self {
        CallContext {
            conn_id,
            peer,
            pushes,
            sessionless: false,
        }
    }

    /// A number unique to the connection within this process.
    pub fn conn_id(&self) -> u64 {
        self.conn_id
    }

    /// The peer's address, when the transport has one.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// A sender of pushes to this connection; keep a clone to publish to it
    /// later. Sends fail once the connection is gone.
    pub fn pushes(&self) -> &PushSender {
        &self.pushes
    }

    /// The same context, for a transport whose connections the application
    /// does not see (ZeroMQ: libzmq reconnects on its own, a broker carries
    /// many clients on one connection), so that a request's state must not
    /// hang on its connection: services take what a request names (the chat
    /// takes the sender a request names; see `crate::chat`).
    pub fn sessionless(mut self) -> Self {
        self.sessionless = true;
        self
    }

    /// Whether the connection is of such a transport (see
    /// [`CallContext::sessionless`]).
    pub fn is_sessionless(&self) -> bool {
        self.sessionless
    }
}

/// A named RPC service.
///
/// Long or CPU-bound work must not run on the caller's task: use
/// `spawn_blocking` (bounded, as `compute` does) or a task of its own. A
/// service that panics takes its connection down with it (only that one).
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// Handles one request; returns the reply `data` (any JSON value; native
    /// replies should be objects) or an error.
    async fn call(&self, req: Request, ctx: &CallContext) -> Result<Value, ServiceError>;
}

/// Services by name. Cheap to clone; a clone is a snapshot: services
/// registered afterwards in one copy are not seen by the others, so register
/// everything before handing the registry to [`RpcProtocol::new`].
///
/// [`RpcProtocol::new`]: super::RpcProtocol::new
#[derive(Clone, Default)]
pub struct Registry {
    services: Arc<BTreeMap<String, Arc<dyn Service>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `service` under `name`, returning the one it replaces.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        service: Arc<dyn Service>,
    ) -> Option<Arc<dyn Service>> {
        Arc::make_mut(&mut self.services).insert(name.into(), service)
    }

    /// Builder form of [`Registry::register`].
    pub fn with(mut self, name: impl Into<String>, service: Arc<dyn Service>) -> Self {
        self.register(name, service);
        self
    }

    /// The service registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Service>> {
        self.services.get(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.services.keys().map(String::as_str)
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether no service is registered.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Name and service pairs, sorted by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn Service>)> + '_ {
        self.services.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str);

    #[async_trait]
    impl Service for Fixed {
        async fn call(&self, _: Request, _: &CallContext) -> Result<Value, ServiceError> {
            Ok(Value::from(self.0))
        }
    }

    #[tokio::test]
    async fn register_get_names_and_snapshots() {
        let mut r = Registry::new().with("b", Arc::new(Fixed("b")));
        let snapshot = r.clone();
        assert!(r.register("a", Arc::new(Fixed("a"))).is_none());
        assert!(r.register("a", Arc::new(Fixed("a2"))).is_some());
        assert_eq!(r.names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(snapshot.names().collect::<Vec<_>>(), ["b"]);
        let (tx, _rx) = crate::rpc::push::channel(1);
        let cx = CallContext::new(1, None, tx);
        let got = match r.get("a") {
            Some(s) => s.call(Request::new("a", Value::Null), &cx).await,
            None => Err(ServiceError::not_found("a")),
        };
        assert_eq!(got, Ok(Value::from("a2")));
        assert!(r.get("zz").is_none());
        assert_eq!(format!("{r:?}"), r#"{"a", "b"}"#);
    }
}
