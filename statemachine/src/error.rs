//! The two kinds of failure: a definition that cannot be executed ([`AslError`], found when
//! parsing, before anything runs) and a state error raised while running ([`TaskError`], the
//! `Error`/`Cause` pair that Retry and Catch match and that a failed execution reports).

use serde_json::{Value, json};

/// Error names the runtime itself raises, as Step Functions spells them.
pub(crate) mod names {
    /// A bad path, an unusable value: never retried, never caught, fails the execution.
    pub(crate) const RUNTIME: &str = "States.Runtime";
    /// A Task ran longer than its TimeoutSeconds, or the execution longer than its own.
    pub(crate) const TIMEOUT: &str = "States.Timeout";
    /// The generic name of a task failure; in ErrorEquals it matches everything but a timeout.
    pub(crate) const TASK_FAILED: &str = "States.TaskFailed";
    /// Matches every error name but [`RUNTIME`] and [`DATA_LIMIT_EXCEEDED`].
    pub(crate) const ALL: &str = "States.ALL";
    /// A Choice state where no rule matched and there is no Default.
    pub(crate) const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    /// More Map items failed than tolerated.
    pub(crate) const EXCEEDED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceededToleratedFailureThreshold";
    /// The Map's ItemReader could not read its items.
    pub(crate) const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    /// The Map's ResultWriter could not write its results.
    pub(crate) const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    /// A Task named a function that is not registered.
    pub(crate) const RESOURCE_NOT_FOUND: &str = "Lambda.ResourceNotFoundException";
    /// A task's input or result over the 256 KiB payload limit: a terminal error that
    /// `States.ALL` does not match (only its own name in ErrorEquals does).
    pub(crate) const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
}

/// Why a definition cannot be executed. Every message names the construct at fault and where
/// it sits (state, field, path).
#[derive(Debug, thiserror::Error)]
pub enum AslError {
    /// The text (after substitution) is not JSON.
    #[error("the definition is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A `${Name}` placeholder that no substitution resolves; holds the placeholder.
    #[error("unresolved substitution \"{0}\": every ${{...}} placeholder needs a substitution")]
    Unresolved(String),
    /// A valid States Language construct outside the subset this executor runs.
    #[error("{0}")]
    Unsupported(String),
    /// A definition that Step Functions itself would reject: a missing or mistyped field, an
    /// unknown field, a transition to no state.
    #[error("{0}")]
    Invalid(String),
}

/// Result of parsing.
pub(crate) type AslResult<T> = Result<T, AslError>;

/// A state error: what a function failure, a runtime problem or a Fail state raises. Retry and
/// Catch match [`TaskError::error`]; a Catch records both fields as `{"Error", "Cause"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    /// The error name, e.g. `csvlake.Transient` or `States.Timeout`.
    pub error: String,
    /// Free text, often JSON (a Lambda error's cause is `{"errorType", "errorMessage"}`).
    pub cause: String,
}

impl TaskError {
    /// An error with this name and cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self { error: error.into(), cause: cause.into() }
    }

    /// A `States.Runtime` error in `state`.
    pub(crate) fn runtime(state: &str, message: impl std::fmt::Display) -> Self {
        Self::new(names::RUNTIME, format!("An error occurred while executing the state \"{state}\": {message}"))
    }

    /// The error object a Catch places at its ResultPath.
    pub(crate) fn to_value(&self) -> Value {
        json!({"Error": self.error, "Cause": self.cause})
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

impl std::error::Error for TaskError {}
