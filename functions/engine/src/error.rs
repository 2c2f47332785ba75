//! The engine's error type. Its three classes are what the pipeline acts on: bad input fails one
//! file (and names the line), a transient failure of the bytes being read may be cured by a
//! retry, and anything else is internal. The names these classes carry in results and in Lambda
//! errors belong to the run contracts, not to the engine.

/// Why an input file cannot be converted. The serialized name is `bad_input.<kind>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BadInputKind {
    /// The object is empty: there is no header and no data.
    Empty,
    /// The bytes are not CSV (for example a binary file).
    NotCsv,
    /// A quote that opens a field does not close it before the next delimiter or line end, a
    /// quote stands inside an unquoted field, or a quote is left open at the end of the file.
    MalformedQuote,
    /// No candidate dialect reads the sample as a consistent table.
    AmbiguousDialect,
    /// Bytes that are not valid in the file's encoding (other than UTF-8).
    InvalidEncoding,
    /// A row has a different number of fields than the header.
    RaggedRow,
    /// A field is not valid UTF-8.
    InvalidUtf8,
    /// A compressed object (gzip or zstd, by suffix or by content) that does not decompress.
    Compression,
    /// A value contradicts the explicit schema.
    SchemaMismatch,
    /// The explicit schema itself is invalid or names a column the file lacks.
    InvalidSchema,
    /// A limit (field or record size, columns, decompressed bytes) was exceeded.
    LimitExceeded,
    /// The key cannot be mapped under the output prefix (`..`, absolute, empty segments).
    InvalidKey,
    /// The object disappeared between planning and conversion.
    NotFound,
    /// Another input of the run maps to the same output keys.
    OutputCollision,
    /// The file would widen its table's schema, under the schema policy `fail`.
    SchemaDrift,
}

impl BadInputKind {
    /// The stable name used in results and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "bad_input.empty",
            Self::NotCsv => "bad_input.not_csv",
            Self::MalformedQuote => "bad_input.malformed_quote",
            Self::AmbiguousDialect => "bad_input.ambiguous_dialect",
            Self::InvalidEncoding => "bad_input.invalid_encoding",
            Self::RaggedRow => "bad_input.ragged_row",
            Self::InvalidUtf8 => "bad_input.invalid_utf8",
            Self::Compression => "bad_input.compression",
            Self::SchemaMismatch => "bad_input.schema_mismatch",
            Self::InvalidSchema => "bad_input.invalid_schema",
            Self::LimitExceeded => "bad_input.limit_exceeded",
            Self::InvalidKey => "bad_input.invalid_key",
            Self::NotFound => "bad_input.not_found",
            Self::OutputCollision => "bad_input.output_collision",
            Self::SchemaDrift => "bad_input.schema_drift",
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
    /// The storage refused access to one object (AccessDenied, a KMS key it may not use): the
    /// file fails with kind `access_denied`, and the others go on.
    #[error("access denied: {0}")]
    Denied(String),
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
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Self::Internal(format!("parquet: {e}"))
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
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
