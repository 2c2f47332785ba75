//! The Step Functions shapes the Distributed Map writes, in AWS's own field names: its output
//! when it has a ResultWriter, the ResultWriter's `manifest.json`, and the child executions of
//! its `SUCCEEDED_n.json`, `FAILED_n.json` and `PENDING_n.json` files. The interpreter writes
//! them as Step Functions does, for whatever reads them (csvlake's reducer reads them with its
//! own contract types, as it reads what AWS writes).

use serde::{Deserialize, Serialize};

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
    /// `FAILED_n.json` files: children that failed, and children stopped (`ABORTED`) when the
    /// Map Run failed.
    #[serde(rename = "FAILED", default)]
    pub failed: Vec<ResultFile>,
    /// `PENDING_n.json` files. The interpreter writes none: a child still running when its Map
    /// Run failed is stopped and written to `FAILED_n.json` with the status `ABORTED`.
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
    /// Its input (the item after the ItemSelector), as a JSON string.
    #[serde(default)]
    pub input: String,
    /// Whether `input` is included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_details: Option<Included>,
    /// Child execution name.
    #[serde(default)]
    pub name: String,
    /// Its output, as a JSON string, when it succeeded.
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
