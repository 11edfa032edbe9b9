//! What the listener actor is asked to do.

use ractor::RpcReplyPort;

pub(crate) enum ListenerMsg {
    Suspend(RpcReplyPort<()>),
    Resume(RpcReplyPort<std::io::Result<()>>),
    /// The accept loop cannot go on (acceptor_sup is gone).
    LoopEnded(String),
}
