//! Errors the runtime reports to the code that drives it: building a graph and controlling a
//! running pipeline. Task errors are the user's own type; the runtime keeps their type name
//! and message as a [`flowdeck_protocol::ErrorInfo`].

use std::fmt::Display;

use flowdeck_protocol::{ErrorInfo, ItemId};

/// Why a graph cannot become a pipeline.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("the pipeline has no stage")]
    Empty,
    #[error("no stage takes the pipeline's input: call `Graph::input` on the first stage")]
    NoInput,
    #[error("stage `{0}` is declared twice: stage names must be unique")]
    DuplicateStage(String),
    #[error("stage `{0}` can never receive an item: nothing connects to it")]
    Unreachable(String),
    #[error("stages form a cycle through `{0}`: a pipeline must be a DAG")]
    Cycle(String),
    #[error("stage `{0}` needs at least one worker")]
    NoWorkers(String),
    #[error("stage `{0}` needs a queue capacity of at least 1")]
    NoCapacity(String),
    #[error(
        "join `{join}` groups its parts by `{origin}`, but items can reach it without passing \
         `{origin}`: every path to a join must go through its origin"
    )]
    JoinAround { join: String, origin: String },
}

/// Why a control action was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no stage is named `{0}`")]
    UnknownStage(String),
    #[error("item {0} is unknown: never seen, or older than the retained detail")]
    UnknownItem(ItemId),
    #[error("item {0} has not failed, so it cannot be retried")]
    NotFailed(ItemId),
    #[error("the input of item {0} is no longer kept, so it cannot be retried")]
    InputGone(ItemId),
    #[error("the pipeline has finished and takes no more work")]
    Finished,
    #[error("item {0} has already finished")]
    AlreadyDone(ItemId),
    #[error("stage `{stage}` has no worker {worker} (it has {workers})")]
    UnknownWorker {
        stage: String,
        worker: u16,
        workers: usize,
    },
    #[error(
        "worker {worker} of stage `{stage}` runs no attempt now, so there is nothing to restart"
    )]
    WorkerIdle { stage: String, worker: u16 },
}

/// The pipeline stopped taking input before an item could be fed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the pipeline is draining or finished and takes no more input")]
pub struct Closed;

/// The last segment of a type's path: `my_app::errors::FetchError` becomes `FetchError`,
/// generics kept (`Box<dyn Error>` stays readable).
pub(crate) fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    let short = base.rsplit("::").next().unwrap_or(base);
    format!("{short}{}", &full[base.len()..])
}

pub(crate) fn error_info<E: Display>(kind: &str, err: &E) -> ErrorInfo {
    ErrorInfo {
        kind: kind.to_owned(),
        message: err.to_string(),
    }
}

/// The errors the runtime itself raises for a task, next to the user's own.
pub(crate) fn runtime_error(kind: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo {
        kind: kind.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct FetchError;

    #[test]
    fn short_names_drop_the_path() {
        assert_eq!(short_type_name::<FetchError>(), "FetchError");
        assert_eq!(short_type_name::<std::io::Error>(), "Error");
        assert_eq!(short_type_name::<String>(), "String");
    }
}
