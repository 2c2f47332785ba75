//! The reducer Lambda: the last task of a run. It reads the Distributed Map's ResultWriter files
//! (or, when the Map failed, whatever results it left), writes `report.json`, `files.jsonl` and
//! `failed-keys.json` under `<out>/_runs/<run_id>/`, and returns a small [`RunSummary`] whose
//! `exceeded_tolerance` decides whether the execution succeeds. The work itself is
//! [`report::reduce`].

pub mod catalog;
pub mod join;
pub mod report;
pub mod tables;

use std::time::{SystemTime, UNIX_EPOCH};

use csvlake_contract::run::{ConformPlan, Phase, ReduceRequest, RunSummary};
use csvlake_contract::{BatchError, ErrorNames};
use lambda_runtime::LambdaEvent;

pub use csvlake_contract::deployment::PIPELINE_ENV;

/// What the reducer answers: the `Join` phase's conform plan, or the run's summary.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// The `Join` phase's answer.
    Join(ConformPlan),
    /// The `Reduce` phase's answer.
    Reduce(RunSummary),
}

/// Handles a call of the reducer Lambda: the `Join` phase after the `Convert` Map, or the
/// `Reduce` phase last, as the event's `phase` says.
pub async fn serve(event: LambdaEvent<ReduceRequest>, client: &aws_sdk_s3::Client) -> Result<Answer, BatchError> {
    if event.payload.phase == Phase::Reduce {
        return Box::pin(handle(event, client)).await.map(Answer::Reduce);
    }
    let request = event.payload;
    match Box::pin(join::join(client, &request)).await {
        Ok(plan) => Ok(Answer::Join(plan)),
        Err(e) => {
            tracing::error!(target: csvlake_contract::errors::OUTCOME_LOG_TARGET, run_id = %request.plan.run_id, error = %e, error_type = e.error_type(), "join failed");
            Err(e.into())
        }
    }
}

/// Handles the `Reduce` phase: the plan, plus the Maps' outputs or the errors their Catches
/// recorded.
pub async fn handle(event: LambdaEvent<ReduceRequest>, client: &aws_sdk_s3::Client) -> Result<RunSummary, BatchError> {
    let request = event.payload;
    let plan = &request.plan;
    if let Some(e) = &request.reduce_error {
        // The Catch path: the run could not report (or reported, then failed: its leases are
        // released already); its tables must not stay locked.
        if [csvlake_contract::errors::CONFORM_LIMIT, csvlake_contract::errors::CATALOG_ERROR]
            .contains(&e.error.as_str())
        {
            tracing::info!(run_id = %plan.run_id, error = %e.error, "the run was reported and failed; releasing its leases");
        } else {
            tracing::error!(target: csvlake_contract::errors::OUTCOME_LOG_TARGET, run_id = %plan.run_id, error = %e.error, cause = %e.cause, "the run could not be reduced; releasing its leases");
        }
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
        Ok((_, Some(failure))) => {
            tracing::error!(target: csvlake_contract::errors::OUTCOME_LOG_TARGET, run_id = %plan.run_id, error = %failure, error_type = failure.error_type(), "the run was reported, and failed");
            return Err(failure);
        }
        Ok((s, None)) => s,
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
