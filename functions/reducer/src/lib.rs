//! The reducer Lambda: the last task of a run. It reads the Distributed Map's ResultWriter files
//! (or, when the Map failed, whatever results it left), writes `report.json`, `files.jsonl` and
//! `failed-keys.json` under `<out>/_runs/<run_id>/`, and returns a small [`RunSummary`] whose
//! `exceeded_tolerance` decides whether the execution succeeds. The work itself is
//! [`report::reduce`].

pub mod catalog;
pub mod report;
pub mod tables;

use std::time::{SystemTime, UNIX_EPOCH};

use csvlake_contract::run::{ReduceRequest, RunSummary};
use csvlake_contract::{BatchError, ErrorNames};
use lambda_runtime::LambdaEvent;

pub use csvlake_contract::deployment::PIPELINE_ENV;

/// Handles the `Reduce` state: the plan, plus the Map's output or the error its Catch recorded.
pub async fn handle(event: LambdaEvent<ReduceRequest>, client: &aws_sdk_s3::Client) -> Result<RunSummary, BatchError> {
    let request = event.payload;
    let plan = &request.plan;
    if let Some(e) = &request.reduce_error {
        // The Catch path: the run could not report; its tables must not stay locked.
        tracing::error!(run_id = %plan.run_id, error = %e.error, cause = %e.cause, "the run could not be reduced; releasing its leases");
        if let Err(e) = tables::release_all(client, plan).await {
            tracing::error!(run_id = %plan.run_id, error = %e, "releasing the leases failed");
            return Err(e.into());
        }
        return Ok(report::released(&request));
    }
    match &request.convert_error {
        Some(e) => {
            tracing::warn!(run_id = %plan.run_id, batches = plan.batches, error = %e.error, "reducing a run whose Map failed")
        }
        None => tracing::info!(run_id = %plan.run_id, batches = plan.batches, "reducing run"),
    }
    let summary = match report::reduce(client, &request).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: csvlake_contract::errors::OUTCOME_LOG_TARGET, run_id = %plan.run_id, error = %e, error_type = e.error_type(), "reduce failed");
            return Err(e.into());
        }
    };
    Ok(summary)
}

/// The run's counts as one CloudWatch Embedded Metric Format line. The Lambda prints it to its
/// log stream, where CloudWatch reads EMF (one JSON object per line); the local executor does
/// not, so that `csvlake run` keeps its output for people.
pub fn metrics_line(summary: &RunSummary, pipeline: Option<&str>) -> String {
    let now =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    report::emf(summary, pipeline.filter(|p| !p.is_empty()), now).to_string()
}
