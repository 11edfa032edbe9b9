//! The actions: terminate, restart or kill a child named by its path of
//! ids; suspend or resume a listener.

use crate::listener::ListenerHandle;
use crate::supervisor::{ChildKind, ChildState, Supervisor, SupervisorError};
use serde::Deserialize;

/// What may be done to a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildAction {
    /// `terminate_child`: stopped as its spec says; not restarted.
    Terminate,
    /// Stopped if running, then `restart_child`.
    Restart,
    /// Killed (OTP's `exit(Pid, kill)`): its supervisor restarts it as its
    /// restart type says.
    Kill,
}

impl ChildAction {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "terminate" => Some(ChildAction::Terminate),
            "restart" => Some(ChildAction::Restart),
            "kill" => Some(ChildAction::Kill),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChildAction::Terminate => "terminate",
            ChildAction::Restart => "restart",
            ChildAction::Kill => "kill",
        }
    }
}

/// The body of a child action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChildTarget {
    /// The ids from the root's children down to the child.
    pub(crate) path: Vec<String>,
}

/// The body of a listener action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerTarget {
    pub(crate) listener: String,
}

/// Why an action was not done.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActionError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

impl From<SupervisorError> for ActionError {
    fn from(e: SupervisorError) -> Self {
        match e {
            SupervisorError::NotFound(id) => ActionError::NotFound(format!("no child {id:?}")),
            other => ActionError::Conflict(other.to_string()),
        }
    }
}

/// The supervisor of the child at `path`, and the child's id.
async fn parent_of<'p>(
    root: &Supervisor,
    path: &'p [String],
) -> Result<(Supervisor, &'p str), ActionError> {
    let Some((id, above)) = path.split_last() else {
        return Err(ActionError::BadRequest(
            "the path is empty: the root is not a child".into(),
        ));
    };
    let mut sup = root.clone();
    for step in above {
        let children = sup.which_children().await?;
        let child = children
            .into_iter()
            .find(|c| c.id.as_deref() == Some(step.as_str()))
            .ok_or_else(|| ActionError::NotFound(format!("no child {step:?}")))?;
        sup = match (child.kind, child.state) {
            (ChildKind::Supervisor, ChildState::Running(cell)) => Supervisor::from_cell(cell)
                .ok_or_else(|| ActionError::NotFound(format!("{step:?} is not a supervisor")))?,
            (ChildKind::Supervisor, _) => {
                return Err(ActionError::Conflict(format!("{step:?} is not running")))
            }
            (ChildKind::Worker, _) => {
                return Err(ActionError::NotFound(format!("{step:?} is a worker")))
            }
        };
    }
    Ok((sup, id))
}

/// Does `action` to the child at `path` below `root`.
pub(crate) async fn on_child(
    root: &Supervisor,
    path: &[String],
    action: ChildAction,
) -> Result<(), ActionError> {
    let (sup, id) = parent_of(root, path).await?;
    let state = sup
        .which_children()
        .await?
        .into_iter()
        .find(|c| c.id.as_deref() == Some(id))
        .map(|c| c.state)
        .ok_or_else(|| ActionError::NotFound(format!("no child {id:?}")))?;
    match action {
        ChildAction::Terminate => sup.terminate_child(id).await?,
        ChildAction::Restart => {
            if matches!(state, ChildState::Running(_)) {
                sup.terminate_child(id).await?;
            }
            sup.restart_child(id).await?;
        }
        ChildAction::Kill => match state {
            ChildState::Running(cell) => cell.kill(),
            _ => return Err(ActionError::Conflict(format!("{id:?} is not running"))),
        },
    }
    Ok(())
}

/// Suspends (`true`) or resumes the listener called `name`.
pub(crate) async fn on_listener(
    listeners: &[ListenerHandle],
    name: &str,
    suspend: bool,
) -> Result<(), ActionError> {
    let l = listeners
        .iter()
        .find(|l| l.name() == name)
        .ok_or_else(|| ActionError::NotFound(format!("no listener {name:?}")))?;
    let done = if suspend {
        l.suspend().await
    } else {
        l.resume().await
    };
    done.map_err(|e| ActionError::Conflict(e.to_string()))
}
