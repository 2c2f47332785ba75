//! The converter's payloads: the job (locations and options) every batch carries, the batch
//! event, the per-file result and the batch result. snake_case, like every payload of ours.

use csvlake_engine::decode::Dialect;
use csvlake_engine::options::{AvroOptions, CsvOptions, Format, ParquetOptions, default_formats};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::errors::FileError;

/// Where the inputs are. Unknown fields are rejected, so that a typo (`"prefx"`) cannot widen
/// what a run reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputLocation {
    /// Input bucket.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Input prefix; output keys are relative to it.
    #[serde(default)]
    pub prefix: String,
    /// Sub-prefixes of `prefix` to scan, each a folder (`2026/`); empty: the whole prefix. Output
    /// keys stay relative to `prefix`, so a scan of `2026/` writes exactly the keys that a scan
    /// of the whole prefix writes for those inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scan: Vec<String>,
    /// Key suffixes that are converted. Default `.csv`, `.csv.gz`, `.csv.zst`, `.tsv`, `.tsv.gz`, `.tsv.zst`.
    #[serde(default = "default_suffixes")]
    pub suffixes: Vec<String>,
}

impl InputLocation {
    /// The prefixes a scan lists: `prefix` joined with each of `scan` as a folder, sorted, those
    /// inside another dropped (so that the listings are disjoint and in key order); `prefix` alone
    /// when `scan` is empty. A sub-prefix that is absolute or has an empty, `.` or `..` segment is
    /// an error.
    pub fn scan_prefixes(&self) -> Result<Vec<String>, String> {
        if self.scan.is_empty() {
            return Ok(vec![self.prefix.clone()]);
        }
        let base = crate::keys::folder(&self.prefix);
        let mut out: Vec<String> = Vec::new();
        let mut subs = self.scan.iter().map(|s| crate::keys::folder(s)).collect::<Vec<_>>();
        subs.sort();
        for sub in subs {
            let segments: Vec<&str> = sub.trim_end_matches('/').split('/').collect();
            if sub.is_empty()
                || sub.starts_with('/')
                || segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..")
            {
                return Err(format!("input.scan: {sub:?} is not a sub-folder of input.prefix"));
            }
            let full = format!("{base}{sub}");
            if !out.last().is_some_and(|prev| full.starts_with(prev.as_str())) {
                out.push(full);
            }
        }
        Ok(out)
    }
}

/// The default input suffixes.
pub fn default_suffixes() -> Vec<String> {
    [".csv", ".csv.gz", ".csv.zst", ".tsv", ".tsv.gz", ".tsv.zst"].map(String::from).to_vec()
}

/// Where the outputs go. Unknown fields are rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputLocation {
    /// Output bucket.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Output prefix (`<out>`: outputs go under `<out>/parquet/`, `<out>/avro/`, run objects under `<out>/_runs/`).
    #[serde(default)]
    pub prefix: String,
}

/// Everything a converter needs to know besides the files: locations and format options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Input location.
    pub input: InputLocation,
    /// Output location.
    pub output: OutputLocation,
    /// Formats to write. Default both.
    #[serde(default = "default_formats")]
    pub formats: Vec<Format>,
    /// CSV options.
    #[serde(default)]
    pub csv: CsvOptions,
    /// Parquet options.
    #[serde(default)]
    pub parquet: ParquetOptions,
    /// Avro options.
    #[serde(default)]
    pub avro: AvroOptions,
    /// How deep below the input root a table's folder lies (see [`crate::tables`]).
    #[serde(default = "default_table_depth")]
    pub table_depth: u32,
    /// The run the job belongs to, which names `_runs/<run_id>/` (set by the planner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// How the files of a table agree on its schema.
    #[serde(default)]
    pub schema_policy: crate::run::SchemaPolicy,
}

fn default_table_depth() -> u32 {
    crate::tables::DEFAULT_TABLE_DEPTH
}

impl Job {
    /// Checks what can be checked before reading any file: at least one format, a valid CSV
    /// dialect, a positive row-group size.
    pub fn validate(&self) -> csvlake_engine::Result<()> {
        if self.formats.is_empty() {
            return Err(csvlake_engine::Error::Internal("formats is empty: name parquet, avro or both".into()));
        }
        if self.parquet.row_group_rows == 0 || self.parquet.row_group_bytes == 0 {
            return Err(csvlake_engine::Error::Internal(
                "parquet.row_group_rows and parquet.row_group_bytes must be positive".into(),
            ));
        }
        self.csv.validate()
    }

    /// A job with default options.
    pub fn new(input: InputLocation, output: OutputLocation) -> Self {
        Self {
            input,
            output,
            formats: default_formats(),
            csv: CsvOptions::default(),
            parquet: ParquetOptions::default(),
            avro: AvroOptions::default(),
            table_depth: default_table_depth(),
            run_id: None,
            schema_policy: crate::run::SchemaPolicy::default(),
        }
    }

    /// The fingerprint of this job's conversion options (see [`crate::tables::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        crate::tables::fingerprint(self)
    }
}

/// One input object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Input key.
    pub key: String,
    /// Size in bytes, as listed.
    #[serde(default)]
    pub size: u64,
    /// ETag, as listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// The converter's event: one batch of files and the job they belong to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvertBatch {
    /// The job options.
    pub job: Job,
    /// Index of the batch in the run's manifest, when it comes from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// The files of this batch.
    pub files: Vec<FileRef>,
    /// Retries of this batch so far (`$$.State.RetryCount`). On a retry, or a redrive, a file
    /// whose outputs already carry its source's ETag and the job's fingerprint is not converted
    /// again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_count: u32,
    /// Redrives of the run so far (`$$.Execution.RedriveCount`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redrive_count: u32,
    /// A batch of the `Conform` Map: the id of the table schema (`schemas/<id>.json` of the
    /// files' table) to write its files with. Without it, the table's stored schema is read
    /// from its `current.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ConvertBatch {
    /// Whether this batch may have run before, in part.
    pub fn is_repeat(&self) -> bool {
        self.retry_count > 0 || self.redrive_count > 0
    }
}

/// Outcome of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Every requested output was written.
    Converted,
    /// The file was not converted; `error` says why. No output object was written.
    Failed,
    /// The outputs were up to date.
    Skipped,
}

/// One written output object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRef {
    /// Its format.
    pub format: Format,
    /// Its key in the output bucket.
    pub key: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The result of one file: what the converter returns for it and the report aggregates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileResult {
    /// Input key.
    pub key: String,
    /// Outcome.
    pub status: FileStatus,
    /// Data rows converted (the header is not counted).
    #[serde(default)]
    pub rows: u64,
    /// Bytes read from the input object (compressed size for `.gz`): its size.
    #[serde(default)]
    pub bytes_in: u64,
    /// The input's ETag (bare) as it was read: what the outputs were made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The id of the file's schema, whose columns the converter stored under the table's
    /// `schemas/<id>.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Output objects written.
    #[serde(default)]
    pub outputs: Vec<OutputRef>,
    /// The dialect the file was read with, as given or detected; absent when the file failed
    /// before its dialect was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<Dialect>,
    /// Wall time spent on the file.
    #[serde(default)]
    pub millis: u64,
    /// Why the file failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<FileError>,
}

impl FileResult {
    /// A failed result.
    pub fn failed(key: impl Into<String>, bytes_in: u64, millis: u64, error: FileError) -> Self {
        Self {
            key: key.into(),
            status: FileStatus::Failed,
            rows: 0,
            bytes_in,
            etag: None,
            schema: None,
            outputs: Vec::new(),
            dialect: None,
            millis,
            error: Some(error),
        }
    }
}

/// The converter's response: one result per file of the batch, in batch order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// Per-file results.
    pub files: Vec<FileResult>,
}
