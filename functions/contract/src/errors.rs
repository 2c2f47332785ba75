//! The names of failures, as results, reports, Lambda errors and the state machine's Retry and
//! Catch spell them.
//!
//! A failed *file* is data: a per-file `failed` result whose [`FileError::kind`] is a
//! `bad_input.*` name (or the error of the batch it was in). A failed *batch* is a Lambda error
//! whose `error_type` is [`TRANSIENT`] (the state machine retries it) or [`INTERNAL`]. The
//! handlers return [`BatchError`], whose [`lambda_runtime::Diagnostic`] carries those names.

use csvlake_engine::Error;
use serde::{Deserialize, Serialize};

/// `error_type` of a batch that may succeed when retried (throttling, network, 5xx).
pub const TRANSIENT: &str = "csvlake.Transient";
/// `error_type` of a batch that failed for a reason a retry will not fix.
pub const INTERNAL: &str = "csvlake.Internal";
/// The Error of the execution that failed because more files failed than tolerated (the
/// definition's Fail state).
pub const TOLERANCE_EXCEEDED: &str = "csvlake.ToleranceExceeded";
/// Error kind of the files of a batch that never ran, or had not finished when the Map ended.
pub const NOT_RUN: &str = "csvlake.NotRun";
/// Error kind of the files of a child execution that failed without naming an error (one that
/// was aborted, for instance).
pub const BATCH_FAILED: &str = "csvlake.BatchFailed";

/// The Error of a run that found another run writing one of its tables (a live lease).
pub const RUN_IN_PROGRESS: &str = "csvlake.RunInProgress";

/// `error_type` of a batch that stopped before the Lambda deadline with files left to convert;
/// the state machine retries it, and the retry skips the files already done.
pub const DEADLINE: &str = "csvlake.Deadline";
/// The Error of the execution whose Distributed Map failed (items unreadable, results
/// unwritable…): the run is reported, with the Map's error in `map_error`.
pub const MAP_FAILED: &str = "csvlake.MapFailed";

/// `error_type` of a reducer that could not register a run's tables in the AWS Glue Data
/// Catalog: the database is missing, Glue refused a call, or two of a table's columns have the
/// same name once Glue lowercases them.
pub const CATALOG_ERROR: &str = "csvlake.CatalogError";

/// `error_type` of a reducer whose run widened a table's schema, when conforming the table's
/// earlier files would have needed more than `conform_limit` of them. The run is reported first,
/// and the files that would have widened it failed as `bad_input.schema_drift`.
pub const CONFORM_LIMIT: &str = "csvlake.ConformLimit";
/// Error kind of a file the storage refused access to (AccessDenied, a KMS key it may not use).
pub const ACCESS_DENIED: &str = "access_denied";

/// The tracing target of each handler's outcome when it fails ("planning failed", "batch
/// failed", "reduce failed"). Lambda logs it; the local executor reports the failure itself and
/// turns this target off.
pub const OUTCOME_LOG_TARGET: &str = "csvlake::outcome";

/// Longest per-file error message, in bytes (a value quoted in it may be long).
pub const MAX_FILE_MESSAGE_BYTES: usize = 256;

/// `text` cut at a character boundary to at most `max` bytes, plus `…` when cut.
pub fn shortened(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The error part of a per-file result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileError {
    /// `bad_input.*`, or the batch error type for files of a failed batch.
    pub kind: String,
    /// Human-readable description, naming the line when there is one.
    pub message: String,
    /// 1-based input line, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

/// The names of an engine [`Error`] in the run's payloads.
pub trait ErrorNames {
    /// The Lambda `error_type` of a batch that fails with this error.
    fn error_type(&self) -> &'static str;

    /// The per-file error record. Its message is cut at [`MAX_FILE_MESSAGE_BYTES`]: results
    /// travel in Step Functions payloads of 256 KiB.
    fn to_file_error(&self) -> FileError;
}

impl ErrorNames for Error {
    fn error_type(&self) -> &'static str {
        match self {
            Self::Transient(_) => TRANSIENT,
            Self::BadInput { .. } | Self::Denied(_) | Self::Internal(_) => INTERNAL,
        }
    }

    fn to_file_error(&self) -> FileError {
        let (kind, message, line) = match self {
            Self::BadInput { kind, message, line } => (kind.as_str(), message, *line),
            Self::Transient(m) => (TRANSIENT, m, None),
            Self::Denied(m) => (ACCESS_DENIED, m, None),
            Self::Internal(m) => (INTERNAL, m, None),
        };
        FileError { kind: kind.to_owned(), message: shortened(message, MAX_FILE_MESSAGE_BYTES), line }
    }
}

/// The error a handler returns: the failure of a whole invocation. Lambda reports it as a
/// [`lambda_runtime::Diagnostic`] whose `error_type` is [`BatchError::error_type`], which is
/// what the state machine's Retry and Catch match.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// An engine error: transient, internal, or bad input that failed the whole invocation.
    #[error(transparent)]
    Engine(#[from] Error),
    /// Another run holds the lease of a table this run would write.
    #[error("{0}")]
    RunInProgress(String),
    /// The converter stopped before the Lambda deadline with files left to convert.
    #[error("{0}")]
    Deadline(String),
    /// The run's tables could not be registered in the AWS Glue Data Catalog.
    #[error("{0}")]
    Catalog(String),
    /// A widening would have conformed more earlier files than `conform_limit`.
    #[error("{0}")]
    ConformLimit(String),
}

impl BatchError {
    /// The Lambda `error_type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Engine(e) => e.error_type(),
            Self::RunInProgress(_) => RUN_IN_PROGRESS,
            Self::Deadline(_) => DEADLINE,
            Self::Catalog(_) => CATALOG_ERROR,
            Self::ConformLimit(_) => CONFORM_LIMIT,
        }
    }
}

impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(e: BatchError) -> Self {
        Self { error_type: e.error_type().to_owned(), error_message: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use csvlake_engine::BadInputKind;

    use super::*;

    #[test]
    fn batch_errors_carry_the_names_the_state_machine_matches() {
        let d = lambda_runtime::Diagnostic::from(BatchError::Engine(Error::Transient("slow down".into())));
        assert_eq!((d.error_type.as_str(), d.error_message.as_str()), (TRANSIENT, "transient: slow down"));
        let d = lambda_runtime::Diagnostic::from(BatchError::from(Error::Internal("broken".into())));
        assert_eq!(d.error_type, INTERNAL);
        let d = lambda_runtime::Diagnostic::from(BatchError::RunInProgress("table sales: run r1 holds it".into()));
        assert_eq!(
            (d.error_type.as_str(), d.error_message.as_str()),
            (RUN_IN_PROGRESS, "table sales: run r1 holds it")
        );
        let d =
            lambda_runtime::Diagnostic::from(BatchError::Catalog("catalog lake.sales: EntityNotFoundException".into()));
        assert_eq!(
            (d.error_type.as_str(), d.error_message.as_str()),
            (CATALOG_ERROR, "catalog lake.sales: EntityNotFoundException")
        );
        let bad = Error::bad_line(BadInputKind::RaggedRow, 3, "expected 2 fields, found 1");
        assert_eq!(bad.error_type(), INTERNAL, "bad input that fails a whole batch is not retried");
        let f = bad.to_file_error();
        assert_eq!((f.kind.as_str(), f.line), ("bad_input.ragged_row", Some(3)));
    }

    #[test]
    fn file_messages_are_cut_at_a_character_boundary() {
        let f = Error::Internal("é".repeat(400)).to_file_error();
        assert!(f.message.len() <= MAX_FILE_MESSAGE_BYTES + '…'.len_utf8() && f.message.ends_with('…'));
        assert_eq!(shortened("short", 10), "short");
    }
}
