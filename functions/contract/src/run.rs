//! The payloads of a run, between the states of `statemachine/pipeline.asl.json`:
//!
//! execution input ([`RunInput`]) → planner ([`PlanRequest`] → [`Plan`]) → batch manifest
//! ([`ManifestBatch`], one Map item each) → converter ([`crate::payload::ConvertBatch`]) →
//! ResultWriter files ([`ResultManifest`], [`ChildExecution`]) → reducer ([`ReduceRequest`] →
//! [`RunSummary`]), plus the objects the reducer writes ([`Report`]).
//!
//! Our own payloads are snake_case; the Step Functions shapes (Map output, ResultWriter files,
//! error objects) keep AWS's PascalCase names, as the reducer reads them from Step Functions.

use std::collections::BTreeMap;

use csvlake_engine::decode::Dialect;
use csvlake_engine::options::{AvroOptions, CsvOptions, Format, ParquetOptions, default_formats};
use csvlake_engine::{Error, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::errors::FileError;
use crate::keys;
use crate::payload::{FileRef, InputLocation, Job, OutputLocation};

/// Default `batch.max_files`.
pub const DEFAULT_BATCH_FILES: usize = 256;
/// Default `batch.max_bytes` (512 MiB).
pub const DEFAULT_BATCH_BYTES: u64 = 512 << 20;
/// Default `max_concurrency` of the Distributed Map.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 500;
/// The largest MaxConcurrency a Distributed Map accepts.
pub const MAX_MAX_CONCURRENCY: u32 = 10_000;
/// Default `tolerated_failure_percentage`.
pub const DEFAULT_TOLERATED_FAILURE_PERCENTAGE: f64 = 5.0;

/// Default `conform_limit`: the most earlier files of a table that a widening may rewrite.
pub const DEFAULT_CONFORM_LIMIT: u64 = 10_000;

/// What a run does when the files of a table disagree on its schema.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaPolicy {
    /// One schema per table: files narrower than the table's schema are written with it, and
    /// when a run widens it, the table's earlier files are converted again with the new one.
    #[default]
    Conform,
    /// A file that would widen the table's stored schema fails as `bad_input.schema_drift`.
    Fail,
    /// Each file keeps the schema inferred from it alone.
    PerFile,
}

/// Where the reducer registers each table: an AWS Glue Data Catalog database. Unknown fields are
/// rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogOptions {
    /// The Glue database (it must exist).
    #[schemars(length(min = 1, max = 255))]
    pub database: String,
}

/// How the planner finds the files of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// List the input prefix and keep keys with a configured suffix.
    #[default]
    Scan,
    /// Convert the keys given in `keys`.
    Keys,
    /// Convert the keys of a `failed-keys.json` written by an earlier run (`report`).
    Report,
}

/// An S3 object. Unknown fields are rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectLocation {
    /// Bucket.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Key.
    #[schemars(length(min = 1))]
    pub key: String,
}

impl ObjectLocation {
    /// `s3://bucket/key`.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Bounds of one batch (one converter invocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BatchLimits {
    /// Files per batch at most. Default 256.
    pub max_files: usize,
    /// Input bytes per batch at most; a larger file is a batch of its own. Default 512 MiB.
    pub max_bytes: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { max_files: DEFAULT_BATCH_FILES, max_bytes: DEFAULT_BATCH_BYTES }
    }
}

/// The execution input: what starts a run. Every field but `input` and `output` has a default,
/// and in mode `report` those two come from the failed-keys file as well.
///
/// Options are kept optional so that mode `report` can lay the execution input over the
/// failed-keys file: a field given here wins, a field left out keeps the earlier run's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// Where the inputs are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputLocation>,
    /// Where the outputs go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputLocation>,
    /// How files are found. Default `scan`.
    #[serde(default)]
    pub mode: Mode,
    /// Mode `keys`: the input keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Mode `report`: the `failed-keys.json` of an earlier run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ObjectLocation>,
    /// Convert only the inputs that are new, whose content changed (ETag, size) or that were
    /// converted with other options, by the table index. Default `true`; `false` converts all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    /// How deep below the input root a table's folder lies: 1 (default) makes every folder
    /// directly under the root a table, 0 makes the root one table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 16))]
    pub table_depth: Option<u32>,
    /// Remove the outputs of inputs deleted since they were converted (`orphaned` in the
    /// report). Default `false`: they are reported and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_orphans: Option<bool>,
    /// Output formats. Default both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<Format>>,
    /// Batch bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchLimits>,
    /// Converter invocations at once. Default 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10_000))]
    pub max_concurrency: Option<u32>,
    /// Failed files (and failed batches) tolerated, in percent, before the run fails. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub tolerated_failure_percentage: Option<f64>,
    /// CSV options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvOptions>,
    /// Parquet options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parquet: Option<ParquetOptions>,
    /// Avro options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avro: Option<AvroOptions>,
    /// How a table's files agree on its schema (default `conform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_policy: Option<SchemaPolicy>,
    /// Under `conform`, the most earlier files of a table that a widening may convert again
    /// (default 10,000); a widening that needs more fails the run before anything is rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conform_limit: Option<u64>,
    /// Register each table in this Glue Data Catalog database at the end of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogOptions>,
}

impl RunInput {
    /// Mode `report`: this input laid over the earlier run's failed-keys file. The file gives
    /// the keys and every option this input leaves out; the result is in mode `keys`.
    pub fn over(self, earlier: RunInput) -> RunInput {
        RunInput {
            input: self.input.or(earlier.input),
            output: self.output.or(earlier.output),
            mode: Mode::Keys,
            keys: earlier.keys,
            report: None,
            incremental: self.incremental.or(earlier.incremental),
            table_depth: self.table_depth.or(earlier.table_depth),
            delete_orphans: self.delete_orphans,
            formats: self.formats.or(earlier.formats),
            batch: self.batch.or(earlier.batch),
            max_concurrency: self.max_concurrency.or(earlier.max_concurrency),
            tolerated_failure_percentage: self.tolerated_failure_percentage.or(earlier.tolerated_failure_percentage),
            csv: self.csv.or(earlier.csv),
            parquet: self.parquet.or(earlier.parquet),
            avro: self.avro.or(earlier.avro),
            schema_policy: self.schema_policy.or(earlier.schema_policy),
            conform_limit: self.conform_limit.or(earlier.conform_limit),
            catalog: self.catalog.or(earlier.catalog),
        }
    }

    /// The job every batch carries, with defaults filled in and checked.
    pub fn job(&self) -> Result<Job> {
        let mut input = self.input.clone().ok_or_else(|| invalid("input is required: {\"bucket\", \"prefix\"}"))?;
        let mut output = self.output.clone().ok_or_else(|| invalid("output is required: {\"bucket\", \"prefix\"}"))?;
        // Prefixes are folders: `landing` reads `landing/…`, never `landingzone/…`.
        input.prefix = keys::folder(&input.prefix);
        output.prefix = keys::folder(&output.prefix);
        input.scan_prefixes().map_err(|e| invalid(&e))?;
        if input.bucket.is_empty() || output.bucket.is_empty() {
            return Err(invalid("input.bucket and output.bucket must not be empty"));
        }
        let job = Job {
            input,
            output,
            formats: self.formats.clone().unwrap_or_else(default_formats),
            csv: self.csv.clone().unwrap_or_default(),
            parquet: self.parquet.clone().unwrap_or_default(),
            avro: self.avro.clone().unwrap_or_default(),
            table_depth: self.table_depth.unwrap_or(crate::tables::DEFAULT_TABLE_DEPTH),
            run_id: None,
            schema_policy: self.schema_policy.unwrap_or_default(),
        };
        if job.table_depth > crate::tables::MAX_TABLE_DEPTH {
            return Err(invalid("table_depth must be at most 16"));
        }
        job.validate()?;
        Ok(job)
    }

    /// Batch bounds, checked.
    pub fn batch_limits(&self) -> Result<BatchLimits> {
        let b = self.batch.unwrap_or_default();
        if b.max_files == 0 || b.max_bytes == 0 {
            return Err(invalid("batch.max_files and batch.max_bytes must be positive"));
        }
        Ok(b)
    }

    /// `max_concurrency`, checked: 0 means no limit to Step Functions (which then runs up to
    /// 10,000 children at once), and more than 10,000 is refused there.
    pub fn max_concurrency(&self) -> Result<u32> {
        let n = self.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
        if n > MAX_MAX_CONCURRENCY {
            return Err(invalid("max_concurrency must be at most 10000 (0 means no limit)"));
        }
        Ok(n)
    }

    /// `tolerated_failure_percentage`, checked to lie in 0..=100.
    pub fn tolerated_failure_percentage(&self) -> Result<f64> {
        let p = self.tolerated_failure_percentage.unwrap_or(DEFAULT_TOLERATED_FAILURE_PERCENTAGE);
        if !(0.0..=100.0).contains(&p) {
            return Err(invalid("tolerated_failure_percentage must lie between 0 and 100"));
        }
        Ok(p)
    }
}

fn invalid(message: &str) -> Error {
    Error::Internal(format!("invalid execution input: {message}"))
}

/// The planner's event: the execution input and the run id (the execution name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// The run id: `$$.Execution.Name`.
    pub run_id: String,
    /// The execution input.
    pub input: RunInput,
}

/// Where the Distributed Map's ResultWriter writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsLocation {
    /// Bucket (the output bucket).
    pub bucket: String,
    /// Prefix: `<out>/_runs/<run_id>/results`.
    pub prefix: String,
}

/// The planner's output, which becomes the state the Map and the reducer read. Its size does
/// not grow with the number of files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The run id.
    pub run_id: String,
    /// The job every batch carries (the Map's ItemSelector passes it on).
    pub job: Job,
    /// How the files were found (`report` plans in mode `keys`).
    pub mode: Mode,
    /// Whether up-to-date inputs were skipped.
    pub incremental: bool,
    /// Files in the manifest.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Batches in the manifest (Map items).
    pub batches: u64,
    /// Inputs skipped because their outputs were up to date.
    pub skipped: u64,
    /// Inputs rejected at planning time (output collisions, keys not found); their results are
    /// in `rejected_results`.
    pub rejected: u64,
    /// Inputs gone since they were converted, whose outputs remain (listed in `orphans`).
    #[serde(default)]
    pub orphaned: u64,
    /// Whether the reducer removes the outputs of orphaned inputs.
    #[serde(default)]
    pub delete_orphans: bool,
    /// JSON lines of [`crate::tables::TableRun`]: the tables this run leased, whose index the
    /// reducer writes and whose lease it releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<ObjectLocation>,
    /// JSON lines of [`crate::tables::Orphan`], when `orphaned > 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphans: Option<ObjectLocation>,
    /// The batch manifest: a JSON array of [`ManifestBatch`].
    pub manifest: ObjectLocation,
    /// JSON lines of per-file results decided by the planner, when `rejected > 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_results: Option<ObjectLocation>,
    /// Where the ResultWriter writes.
    pub results: ResultsLocation,
    /// The batch bounds the manifest was packed with.
    pub batch: BatchLimits,
    /// The Map's MaxConcurrency.
    pub max_concurrency: u32,
    /// The `max_concurrency` the run asked for, when the deployment's ceiling lowered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_max_concurrency: Option<u32>,
    /// The Map's ToleratedFailurePercentage, also applied to files by the reducer.
    pub tolerated_failure_percentage: f64,
    /// The most earlier files of a table that a widening may convert again.
    #[serde(default = "default_conform_limit")]
    pub conform_limit: u64,
    /// The Glue database the reducer registers the tables in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogOptions>,
}

fn default_conform_limit() -> u64 {
    DEFAULT_CONFORM_LIMIT
}

/// One item of the batch manifest, and so one child execution of the Map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestBatch {
    /// Index in the manifest, from 0.
    pub batch: u64,
    /// Its files.
    pub files: Vec<FileRef>,
}

/// One item of the `Conform` Map's manifest: files of one table, converted again with the
/// table's schema as their floor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConformBatch {
    /// Index in the conform manifest, from 0.
    pub batch: u64,
    /// Its files (their ETags are the ones converted).
    pub files: Vec<FileRef>,
    /// The id of the table schema (`schemas/<id>.json`) to write them with.
    pub schema: String,
}

/// The reducer's `Join` phase's answer (`ResultPath: $.join`): the `Conform` Map's work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConformPlan {
    /// Batches in the conform manifest (Map items); 0 when every file has its table's schema.
    pub batches: u64,
    /// Files in them: the run's files narrower than their table's schema, and earlier files of
    /// a table whose schema widened.
    pub files: u64,
    /// Of those, the earlier files (converted by earlier runs).
    pub earlier: u64,
    /// The conform manifest: a JSON array of [`ConformBatch`].
    pub manifest: ObjectLocation,
    /// Where the `Conform` Map's ResultWriter writes.
    pub results: ResultsLocation,
    /// JSON lines of per-file results that replace the run's results for those files: the files
    /// that would have widened a table whose earlier files were too many to conform
    /// (`conform_limit`). They fail as `bad_input.schema_drift`, and their outputs are removed.
    /// (Always present, if null: the definition's ResultSelector names every field.)
    #[serde(default)]
    pub drift: Option<ObjectLocation>,
    /// Why a table's earlier files were not conformed: the widening needed more than
    /// `conform_limit` of them. The run then fails with `csvlake.ConformLimit` once reported.
    #[serde(default)]
    pub limited: Option<String>,
}

/// Which part of its work the reducer is asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// After the `Convert` Map: join each table's schema, and plan the `Conform` Map.
    Join,
    /// Last: the report, the tables' indexes, the catalog, and the leases' release.
    #[default]
    Reduce,
}

/// `<out>/_runs/<run_id>/<name>`.
pub fn run_key(output_prefix: &str, run_id: &str, name: &str) -> String {
    keys::join(output_prefix, &format!("_runs/{run_id}/{name}"))
}

/// Names of the objects under `_runs/<run_id>/`.
pub mod names {
    /// The batch manifest.
    pub const MANIFEST: &str = "manifest.json";
    /// Results the planner decided (rejected inputs), as JSON lines.
    pub const REJECTED: &str = "rejected.jsonl";
    /// The ResultWriter prefix.
    pub const RESULTS: &str = "results";
    /// The per-file results a batch recorded before it failed: `batches/<n>.json`.
    pub const BATCHES: &str = "batches";
    /// The run report.
    pub const REPORT: &str = "report.json";
    /// One JSON line per file.
    pub const FILES: &str = "files.jsonl";
    /// Failed keys, valid input for mode `report`.
    pub const FAILED_KEYS: &str = "failed-keys.json";
    /// The tables the run leased, as JSON lines.
    pub const TABLES: &str = "tables.jsonl";
    /// The orphaned inputs, as JSON lines.
    pub const ORPHANS: &str = "orphaned.jsonl";
    /// The `Conform` Map's manifest.
    pub const CONFORM_MANIFEST: &str = "conform/manifest.json";
    /// The `Conform` Map's ResultWriter prefix.
    pub const CONFORM_RESULTS: &str = "conform/results";
    /// The per-file results a `Conform` batch recorded before it failed: `conform/batches/<n>.json`.
    pub const CONFORM_BATCHES: &str = "conform/batches";
    /// The results that replace those of files that would have widened a limited table.
    pub const CONFORM_DRIFT: &str = "conform/drift.jsonl";
}

/// A Step Functions error object, as a Catch with a ResultPath records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatesError {
    /// Error name, e.g. `States.ExceededToleratedFailureThreshold` or `csvlake.Transient`.
    #[serde(rename = "Error")]
    pub error: String,
    /// Cause, free text (often JSON).
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

/// Where a ResultWriter put its manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultWriterDetails {
    /// Bucket.
    #[serde(rename = "Bucket")]
    pub bucket: String,
    /// Key of `manifest.json`.
    #[serde(rename = "Key")]
    pub key: String,
}

/// The output of a Distributed Map state that has a ResultWriter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapOutput {
    /// The Map Run.
    #[serde(rename = "MapRunArn")]
    pub map_run_arn: String,
    /// Where the results are.
    #[serde(rename = "ResultWriterDetails")]
    pub result_writer_details: ResultWriterDetails,
}

/// One results file listed in a ResultWriter manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultFile {
    /// Its key.
    #[serde(rename = "Key")]
    pub key: String,
    /// Its size in bytes.
    #[serde(rename = "Size")]
    pub size: u64,
}

/// The results files of a Map Run, by child execution status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultFiles {
    /// `FAILED_n.json` files.
    #[serde(rename = "FAILED", default)]
    pub failed: Vec<ResultFile>,
    /// `PENDING_n.json` files: children that had not finished when the Map Run ended.
    #[serde(rename = "PENDING", default)]
    pub pending: Vec<ResultFile>,
    /// `SUCCEEDED_n.json` files.
    #[serde(rename = "SUCCEEDED", default)]
    pub succeeded: Vec<ResultFile>,
}

/// The `manifest.json` a ResultWriter writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultManifest {
    /// Bucket of the result files.
    #[serde(rename = "DestinationBucket")]
    pub destination_bucket: String,
    /// The Map Run.
    #[serde(rename = "MapRunArn")]
    pub map_run_arn: String,
    /// The result files.
    #[serde(rename = "ResultFiles")]
    pub result_files: ResultFiles,
}

/// `{"Included": true}` in a result entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Included {
    /// Whether the data is included.
    #[serde(rename = "Included")]
    pub included: bool,
}

/// One child execution in a `SUCCEEDED_n.json`, `FAILED_n.json` or `PENDING_n.json` (a JSON
/// array of these). `Input` and `Output` are JSON documents serialized as strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildExecution {
    /// Child execution ARN.
    #[serde(default)]
    pub execution_arn: String,
    /// Its input (a [`crate::payload::ConvertBatch`] with `batch` set), as a JSON string.
    #[serde(default)]
    pub input: String,
    /// Whether `input` is included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_details: Option<Included>,
    /// Child execution name.
    #[serde(default)]
    pub name: String,
    /// Its output (a [`crate::payload::BatchResult`]) as a JSON string, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Whether `output` is included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_details: Option<Included>,
    /// Redrives so far.
    #[serde(default)]
    pub redrive_count: u32,
    /// `REDRIVABLE`, `NOT_REDRIVABLE`….
    #[serde(default)]
    pub redrive_status: String,
    /// Why it is (not) redrivable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_status_reason: Option<String>,
    /// Start time, ISO 8601.
    #[serde(default)]
    pub start_date: String,
    /// The child state machine ARN.
    #[serde(default)]
    pub state_machine_arn: String,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`, `RUNNING`, `PENDING_REDRIVE`.
    #[serde(default)]
    pub status: String,
    /// Stop time, ISO 8601, when it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_date: Option<String>,
    /// Error name of a failed child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Cause of a failed child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The reducer's event: the plan, and either the Map's output or the error its Catch recorded;
/// then, in the `Reduce` phase, the `Join` phase's answer and the `Conform` Map's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceRequest {
    /// The plan (the state the Map ran on).
    #[serde(flatten)]
    pub plan: Plan,
    /// What the reducer is asked for (a Pass state sets it before each call).
    #[serde(default)]
    pub phase: Phase,
    /// The Map's output (`ResultPath: $.convert`), when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<MapOutput>,
    /// The Map's error (the Catch's `ResultPath: $.convert_error`), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert_error: Option<StatesError>,
    /// The `Join` phase's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<ConformPlan>,
    /// The `Join` phase's error, when it failed: nothing was conformed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_error: Option<StatesError>,
    /// The `Conform` Map's output (`ResultPath: $.conform`), when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conform: Option<MapOutput>,
    /// The `Conform` Map's error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conform_error: Option<StatesError>,
    /// The Reduce state's own error (its Catch's `ResultPath: $.reduce_error`): the reducer is
    /// then asked only to release the run's leases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduce_error: Option<StatesError>,
}

impl ReduceRequest {
    /// The `Reduce` phase's request of a run whose Maps left nothing: set the fields that apply.
    pub fn new(plan: Plan) -> Self {
        Self {
            plan,
            phase: Phase::Reduce,
            convert: None,
            convert_error: None,
            join: None,
            join_error: None,
            conform: None,
            conform_error: None,
            reduce_error: None,
        }
    }
}

/// Outcome of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Within the tolerance (some files may still have failed).
    Succeeded,
    /// More failed than tolerated, or the Map itself failed.
    Failed,
}

/// Counts over the files of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Files planned (converted + failed), plus skipped ones.
    pub files: u64,
    /// Files converted.
    pub converted: u64,
    /// Files failed.
    pub failed: u64,
    /// Files skipped as up to date.
    pub skipped: u64,
    /// Inputs gone since they were converted, whose outputs remained (see the report's
    /// `orphaned`).
    #[serde(default)]
    pub orphaned: u64,
    /// Rows converted.
    pub rows: u64,
    /// Input bytes of the files processed.
    pub bytes_in: u64,
    /// Output bytes written.
    pub bytes_out: u64,
    /// Sum of per-file wall times.
    pub millis: u64,
}

/// One failed file in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedFile {
    /// Input key.
    pub key: String,
    /// Why.
    pub error: FileError,
}

/// How many files of a run were read with one dialect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialectCount {
    /// The dialect.
    pub dialect: Dialect,
    /// Files read with it (converted or failed).
    pub files: u64,
}

/// An input gone since it was converted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanedFile {
    /// The input key.
    pub key: String,
    /// Its outputs.
    pub outputs: Vec<String>,
    /// Whether the outputs were removed (`delete_orphans`).
    pub deleted: bool,
}

/// A table the run wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReport {
    /// The table's folder below the root (empty for the root's own table).
    pub table: String,
    /// Its name.
    pub name: String,
    /// The index generation this run wrote, when it wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Entries in the table's index after the run.
    pub entries: u64,
    /// The run whose expired lease this run took over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_over_from: Option<String>,
    /// Multipart uploads aborted under the table's outputs: those left by dead runs, and those of
    /// this run that nothing would complete (an upload whose CreateMultipartUpload answer was
    /// lost).
    #[serde(default)]
    pub aborted_uploads: u64,
    /// The table's schema after the run: the join of its files' schemas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<crate::tables::TableSchema>,
    /// Its version: 1 for the first, one more at each widening.
    #[serde(default)]
    pub schema_version: u64,
    /// Whether this run widened it.
    #[serde(default)]
    pub widened: bool,
    /// Files converted again with the table's schema by the `Conform` Map: the run's own
    /// narrower files, and earlier files when the schema widened.
    #[serde(default)]
    pub conformed: u64,
    /// Files of the table whose outputs still have another schema (a conform that failed, or a
    /// widening over `conform_limit`); the next run conforms them.
    #[serde(default)]
    pub unconformed: u64,
}

/// What a run registered in the Glue Data Catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogReport {
    /// The database.
    pub database: String,
    /// One entry per Glue table the run wrote or checked.
    pub tables: Vec<CatalogTable>,
    /// Why the registration stopped, when it failed (the run then fails with
    /// `csvlake.CatalogError`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One Glue table of a [`CatalogReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogTable {
    /// The csvlake table (its folder below the root).
    pub table: String,
    /// The Glue table's name.
    pub name: String,
    /// The format of the files it reads.
    pub format: Format,
    /// `created`, `updated` or `unchanged`; `skipped` for the root's table beside other tables
    /// (its folder holds theirs).
    pub action: String,
}

/// `report.json`. `failed` comes last, since it is the one part that grows with the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The run id.
    pub run_id: String,
    /// Outcome.
    pub status: RunStatus,
    /// Input location.
    pub input: InputLocation,
    /// Output location.
    pub output: OutputLocation,
    /// Counts.
    pub totals: Totals,
    /// Failed files by error kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Files by the dialect they were read with, most frequent first.
    #[serde(default)]
    pub dialects: Vec<DialectCount>,
    /// The Map's MaxConcurrency.
    #[serde(default)]
    pub max_concurrency: u32,
    /// The `max_concurrency` the run asked for, when the deployment's ceiling lowered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_max_concurrency: Option<u32>,
    /// The tables the run wrote.
    #[serde(default)]
    pub tables: Vec<TableReport>,
    /// Inputs gone since they were converted.
    #[serde(default)]
    pub orphaned: Vec<OrphanedFile>,
    /// The Map's own error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_error: Option<StatesError>,
    /// Why earlier files were not conformed (a widening over `conform_limit`); the run then
    /// fails with `csvlake.ConformLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conform_error: Option<String>,
    /// What the run registered in the Glue Data Catalog, when it names a database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogReport>,
    /// Every failed file with its error.
    pub failed: Vec<FailedFile>,
}

/// The reducer's output, the last state's input: small, whatever the size of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// Outcome.
    pub status: RunStatus,
    /// Whether more files or batches failed than tolerated (the execution then fails).
    pub exceeded_tolerance: bool,
    /// Counts.
    pub totals: Totals,
    /// Failed files by error kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// The Map's own error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_error: Option<StatesError>,
    /// `report.json`.
    pub report: ObjectLocation,
    /// `files.jsonl`.
    pub files: ObjectLocation,
    /// `failed-keys.json`, when a file failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_keys: Option<ObjectLocation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_example_input_parses() {
        let text = r#"{
          "input":  {"bucket": "raw",  "prefix": "landing/2026/", "suffixes": [".csv", ".csv.gz"]},
          "output": {"bucket": "lake", "prefix": "converted/"},
          "mode": "scan",
          "keys": ["landing/2026/a.csv"],
          "report": {"bucket": "lake", "key": "converted/_runs/x/failed-keys.json"},
          "incremental": true,
          "formats": ["parquet", "avro"],
          "batch": {"max_files": 256, "max_bytes": 536870912},
          "max_concurrency": 500,
          "tolerated_failure_percentage": 5,
          "csv": {"delimiter": ",", "quote": "\"", "header": true, "null_values": [""], "schema": null},
          "parquet": {"compression": "snappy", "row_group_rows": 131072},
          "avro": {"codec": "snappy"}
        }"#;
        let input: RunInput = serde_json::from_str(text).unwrap();
        assert_eq!(input.mode, Mode::Scan);
        assert_eq!(input.batch_limits().unwrap(), BatchLimits::default());
        let job = input.job().unwrap();
        assert_eq!(job.input.prefix, "landing/2026/");
        assert_eq!(job.output.bucket, "lake");
    }

    #[test]
    fn a_minimal_input_gets_the_defaults_and_typos_are_named() {
        let input: RunInput = serde_json::from_str(r#"{"input": {"bucket": "a"}, "output": {"bucket": "b"}}"#).unwrap();
        assert_eq!(input.incremental, None);
        assert_eq!(input.max_concurrency().unwrap(), 500);
        assert!(RunInput { max_concurrency: Some(10_001), ..input.clone() }.max_concurrency().is_err());
        assert_eq!(input.tolerated_failure_percentage().unwrap(), 5.0);
        assert_eq!(input.job().unwrap().formats, default_formats());
        let e = serde_json::from_str::<RunInput>(r#"{"input": {"bucket": "a"}, "incremental_": true}"#).unwrap_err();
        assert!(e.to_string().contains("incremental_"), "{e}");
        let e = RunInput::default().job().unwrap_err();
        assert!(e.to_string().contains("input is required"), "{e}");
        let folders: RunInput = serde_json::from_str(
            r#"{"input": {"bucket": "a", "prefix": "landing"}, "output": {"bucket": "b", "prefix": "out"}}"#,
        )
        .unwrap();
        let job = folders.job().unwrap();
        assert_eq!(
            (job.input.prefix.as_str(), job.output.prefix.as_str()),
            ("landing/", "out/"),
            "prefixes are folders"
        );
        let scan = |subs: &[&str]| InputLocation {
            bucket: "a".into(),
            prefix: "landing".into(),
            scan: subs.iter().map(|s| (*s).to_owned()).collect(),
            suffixes: Vec::new(),
        };
        assert_eq!(scan(&[]).scan_prefixes().unwrap(), ["landing"]);
        assert_eq!(scan(&["2026/01", "2026", "2025/"]).scan_prefixes().unwrap(), ["landing/2025/", "landing/2026/"]);
        for bad in ["../x", "/abs", "a//b", "./a"] {
            let input = RunInput { input: Some(scan(&[bad])), ..folders.clone() };
            assert!(input.job().is_err(), "{bad}");
        }
        // A typo in a location would otherwise widen what a run reads or where it writes.
        for text in [
            r#"{"input": {"bucket": "a", "prefx": "landing/"}, "output": {"bucket": "b"}}"#,
            r#"{"input": {"bucket": "a"}, "output": {"bucket": "b", "prefx": "out/"}}"#,
            r#"{"mode": "report", "report": {"bucket": "b", "kye": "k"}}"#,
        ] {
            let e = serde_json::from_str::<RunInput>(text).unwrap_err();
            assert!(e.to_string().contains("unknown field"), "{text}: {e}");
        }
    }

    #[test]
    fn report_mode_lays_the_input_over_the_earlier_run() {
        let earlier = RunInput {
            input: Some(InputLocation {
                bucket: "raw".into(),
                prefix: "in/".into(),
                scan: Vec::new(),
                suffixes: vec![".csv".into()],
            }),
            output: Some(OutputLocation { bucket: "lake".into(), prefix: "out/".into() }),
            mode: Mode::Keys,
            keys: vec!["in/a.csv".into()],
            formats: Some(vec![Format::Avro]),
            ..RunInput::default()
        };
        let now = RunInput {
            mode: Mode::Report,
            report: Some(ObjectLocation { bucket: "lake".into(), key: "k".into() }),
            formats: Some(vec![Format::Parquet]),
            ..RunInput::default()
        };
        let merged = now.over(earlier);
        assert_eq!(merged.mode, Mode::Keys);
        assert_eq!(merged.keys, ["in/a.csv"]);
        assert_eq!(merged.formats, Some(vec![Format::Parquet]));
        assert_eq!(merged.output.unwrap().prefix, "out/");
    }

    #[test]
    fn run_objects_sit_under_the_output_prefix() {
        assert_eq!(run_key("converted/", "r1", names::REPORT), "converted/_runs/r1/report.json");
        assert_eq!(run_key("", "r1", names::MANIFEST), "_runs/r1/manifest.json");
    }
}
