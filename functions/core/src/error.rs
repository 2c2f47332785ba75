//! The one error type of the library, and the classification the pipeline depends on.
//!
//! DESIGN.md: a failed *file* is data (a per-file `failed` result with a `bad_input.*` kind), a
//! failed *batch* is an error whose Lambda `error_type` is `csvlake.Transient` or
//! `csvlake.Internal`. The state machine's Retry/Catch match those strings exactly.

use serde::{Deserialize, Serialize};

/// `error_type` of a batch that may succeed when retried (throttling, network, 5xx).
pub const TRANSIENT_ERROR_TYPE: &str = "csvlake.Transient";
/// `error_type` of a batch that failed for a reason a retry will not fix.
pub const INTERNAL_ERROR_TYPE: &str = "csvlake.Internal";

/// Why an input file cannot be converted. The serialized name is `bad_input.<kind>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BadInputKind {
    /// The object is empty: there is no header and no data.
    Empty,
    /// The bytes are not CSV (for example a binary file or a broken quote).
    NotCsv,
    /// A row has a different number of fields than the header.
    RaggedRow,
    /// A field is not valid UTF-8.
    InvalidUtf8,
    /// A `.gz` object that does not decompress.
    Compression,
    /// A value contradicts the explicit schema.
    SchemaMismatch,
    /// The explicit schema itself is invalid or names a column the file lacks.
    InvalidSchema,
    /// A configured limit (field size, columns) was exceeded.
    LimitExceeded,
    /// The key cannot be mapped under the output prefix (`..`, absolute, empty segments).
    InvalidKey,
    /// The object disappeared between planning and conversion.
    NotFound,
    /// Another input of the run maps to the same output keys.
    OutputCollision,
}

impl BadInputKind {
    /// The stable name used in results and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "bad_input.empty",
            Self::NotCsv => "bad_input.not_csv",
            Self::RaggedRow => "bad_input.ragged_row",
            Self::InvalidUtf8 => "bad_input.invalid_utf8",
            Self::Compression => "bad_input.compression",
            Self::SchemaMismatch => "bad_input.schema_mismatch",
            Self::InvalidSchema => "bad_input.invalid_schema",
            Self::LimitExceeded => "bad_input.limit_exceeded",
            Self::InvalidKey => "bad_input.invalid_key",
            Self::NotFound => "bad_input.not_found",
            Self::OutputCollision => "bad_input.output_collision",
        }
    }
}

impl std::fmt::Display for BadInputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the csvlake library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input file is bad; this becomes a per-file `failed` result, never a batch error.
    #[error("{kind}: {message}")]
    BadInput {
        /// The classification.
        kind: BadInputKind,
        /// What is wrong, naming the line where there is one.
        message: String,
        /// 1-based line of the input where the problem starts, when known.
        line: Option<u64>,
    },
    /// A failure that a retry of the batch may cure (S3 throttling, network, 5xx).
    #[error("transient: {0}")]
    Transient(String),
    /// Anything else: a bug or a misconfiguration that retrying will not fix.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bad-input error with a line number.
    pub fn bad_line(kind: BadInputKind, line: u64, message: impl Into<String>) -> Self {
        Self::BadInput { kind, message: format!("line {line}: {}", message.into()), line: Some(line) }
    }

    /// A bad-input error that concerns the whole file.
    pub fn bad(kind: BadInputKind, message: impl Into<String>) -> Self {
        Self::BadInput { kind, message: message.into(), line: None }
    }

    /// The Lambda `error_type` for a batch that fails with this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Transient(_) => TRANSIENT_ERROR_TYPE,
            Self::BadInput { .. } | Self::Internal(_) => INTERNAL_ERROR_TYPE,
        }
    }

    /// The per-file error record, for bad input. Its message is cut at
    /// [`MAX_FILE_MESSAGE_BYTES`]: results travel in Step Functions payloads of 256 KiB.
    pub fn to_file_error(&self) -> FileError {
        let (kind, message, line) = match self {
            Self::BadInput { kind, message, line } => (kind.as_str(), message, *line),
            Self::Transient(m) => (TRANSIENT_ERROR_TYPE, m, None),
            Self::Internal(m) => (INTERNAL_ERROR_TYPE, m, None),
        };
        FileError { kind: kind.to_owned(), message: shortened(message, MAX_FILE_MESSAGE_BYTES), line }
    }
}

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

/// The error part of a per-file result (DESIGN.md "Per-file result").
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

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Self::Internal(format!("parquet: {e}"))
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Self::Internal(format!("arrow: {e}"))
    }
}

impl From<arrow_avro::errors::AvroError> for Error {
    fn from(e: arrow_avro::errors::AvroError) -> Self {
        Self::Internal(format!("avro: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("json: {e}"))
    }
}

#[cfg(feature = "lambda")]
impl From<Error> for lambda_runtime::Diagnostic {
    /// The `error_type` strings are the ones the state machine's Retry and Catch name.
    fn from(e: Error) -> Self {
        Self { error_type: e.error_type().to_owned(), error_message: e.to_string() }
    }
}
