//! The files generated from these contracts for the parts of the repository that are not Rust:
//!
//! - `statemachine/execution-input.schema.json`: the JSON Schema of [`RunInput`], from which
//!   infra builds the reprocess API's request model;
//! - `statemachine/constants.json`: the names of [`crate::deployment`] and [`crate::errors`]
//!   that the CDK app and the definition use.
//!
//! Both are committed. A test fails when either is stale; run it with `CSVLAKE_BLESS=1` to
//! write them again.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::deployment::*;
use crate::errors;
use crate::run::RunInput;

/// Path of the schema file, relative to the repository root.
pub const SCHEMA_FILE: &str = "statemachine/execution-input.schema.json";
/// Path of the constants file, relative to the repository root.
pub const CONSTANTS_FILE: &str = "statemachine/constants.json";

/// The JSON Schema (draft-07) of the execution input.
pub fn execution_input_schema() -> Value {
    let schema = SchemaSettings::draft07().into_generator().into_root_schema_for::<RunInput>();
    serde_json::to_value(schema).expect("a schema serializes")
}

/// The names the CDK app and the definition share with the code.
pub fn constants() -> Value {
    json!({
        "substitutions": {
            "planner": PLANNER_SUBSTITUTION,
            "converter": CONVERTER_SUBSTITUTION,
            "reducer": REDUCER_SUBSTITUTION,
        },
        "metrics": {
            "namespace": METRICS_NAMESPACE,
            "pipeline_dimension": PIPELINE_DIMENSION,
            "files_converted": FILES_CONVERTED_METRIC,
            "files_failed": FILES_FAILED_METRIC,
            "files_skipped": FILES_SKIPPED_METRIC,
            "rows": ROWS_METRIC,
            "bytes_in": BYTES_IN_METRIC,
            "bytes_out": BYTES_OUT_METRIC,
        },
        "environment": {
            "pipeline": PIPELINE_ENV,
            "s3_endpoint_url": S3_ENDPOINT_ENV,
            "input_root": INPUT_ROOT_ENV,
            "output_root": OUTPUT_ROOT_ENV,
            "lease_seconds": LEASE_SECONDS_ENV,
            "max_concurrency": MAX_CONCURRENCY_ENV,
        },
        "errors": {
            "transient": errors::TRANSIENT,
            "internal": errors::INTERNAL,
            "tolerance_exceeded": errors::TOLERANCE_EXCEEDED,
            "not_run": errors::NOT_RUN,
            "batch_failed": errors::BATCH_FAILED,
            "run_in_progress": errors::RUN_IN_PROGRESS,
            "deadline": errors::DEADLINE,
            "map_failed": errors::MAP_FAILED,
            "catalog_error": errors::CATALOG_ERROR,
            "conform_limit": errors::CONFORM_LIMIT,
        },
    })
}

/// The text of a generated file: pretty JSON with a final newline.
pub fn render(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Compares a committed file with what the code generates, or writes it with `CSVLAKE_BLESS`.
    fn check(file: &str, value: &Value) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(file);
        let want = render(value);
        if std::env::var_os("CSVLAKE_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{file} is stale: run `CSVLAKE_BLESS=1 cargo test -p csvlake-contract generated` and commit it"
        );
    }

    #[test]
    fn the_execution_input_schema_file_is_current() {
        check(SCHEMA_FILE, &execution_input_schema());
    }

    #[test]
    fn the_constants_file_is_current() {
        check(CONSTANTS_FILE, &constants());
    }

    #[test]
    fn the_schema_names_every_execution_input_field_and_refuses_others() {
        let schema = execution_input_schema();
        let fields: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        let example = serde_json::to_value(RunInput {
            keys: vec!["a.csv".into()],
            incremental: Some(true),
            ..RunInput::default()
        })
        .unwrap();
        for field in example.as_object().unwrap().keys() {
            assert!(fields.contains(&field.as_str()), "{field} missing from {fields:?}");
        }
        for field in ["input", "output", "mode", "keys", "report", "csv", "parquet", "avro", "batch", "formats"] {
            assert!(fields.contains(&field), "{field} missing from {fields:?}");
        }
        assert_eq!(schema["additionalProperties"], json!(false), "unknown fields are refused, as serde refuses them");
    }
}
