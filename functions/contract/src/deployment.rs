//! What the code and the deployment (the CDK app in `infra/`) must spell alike: the state
//! machine's substitution variables, the reducer's metrics, and the environment the functions
//! read. infra reads them from `statemachine/constants.json`, which [`crate::generated`] writes
//! from these constants.

/// The definition's substitution variable of the planner function's ARN.
pub const PLANNER_SUBSTITUTION: &str = "PlannerFunctionArn";
/// The definition's substitution variable of the converter function's ARN.
pub const CONVERTER_SUBSTITUTION: &str = "ConverterFunctionArn";
/// The definition's substitution variable of the reducer function's ARN.
pub const REDUCER_SUBSTITUTION: &str = "ReducerFunctionArn";

/// The CloudWatch namespace of the run metrics.
pub const METRICS_NAMESPACE: &str = "csvlake";
/// The EMF dimension that names the deployment, so that two stacks in one account keep their
/// metrics (and alarms) apart.
pub const PIPELINE_DIMENSION: &str = "Pipeline";
/// The environment variable that names the deployment in the metrics (the stack sets it to its
/// name, and its FilesFailed alarm filters on it).
pub const PIPELINE_ENV: &str = "CSVLAKE_PIPELINE";
/// The environment variable of an S3-compatible endpoint URL the functions use instead of AWS's.
pub const S3_ENDPOINT_ENV: &str = "CSVLAKE_S3_ENDPOINT_URL";

/// The metric of converted files.
pub const FILES_CONVERTED_METRIC: &str = "FilesConverted";
/// The metric of failed files (the stack alarms on it).
pub const FILES_FAILED_METRIC: &str = "FilesFailed";
/// The metric of files skipped as up to date.
pub const FILES_SKIPPED_METRIC: &str = "FilesSkipped";
/// The metric of rows converted.
pub const ROWS_METRIC: &str = "Rows";
/// The metric of input bytes.
pub const BYTES_IN_METRIC: &str = "BytesIn";
/// The metric of output bytes.
pub const BYTES_OUT_METRIC: &str = "BytesOut";
/// The environment variable of the input root, `s3://bucket/prefix/`: the planner refuses a run
/// that reads outside it, and roots every run's output keys there.
pub const INPUT_ROOT_ENV: &str = "CSVLAKE_INPUT_ROOT";
/// The environment variable of the output root, `s3://bucket/prefix/`: the planner refuses a run
/// that writes outside it.
pub const OUTPUT_ROOT_ENV: &str = "CSVLAKE_OUTPUT_ROOT";
/// The environment variable of a table lease's lifetime in seconds: the longest a run may take
/// (the state machine's timeout).
pub const LEASE_SECONDS_ENV: &str = "CSVLAKE_LEASE_SECONDS";
/// Default lease lifetime: one day.
pub const DEFAULT_LEASE_SECONDS: u64 = 86_400;
/// The environment variable of the deployment's ceiling on a run's `max_concurrency`: the
/// planner clamps a run's value to it, and the report says so.
pub const MAX_CONCURRENCY_ENV: &str = "CSVLAKE_MAX_CONCURRENCY";
