//! The planner Lambda: finds the files of a run (a paged listing, explicit keys, or an earlier
//! run's failed keys), takes the lease of each table it writes, skips inputs that its table's
//! index shows converted from the same content with the same options, bin-packs the rest into
//! batches and writes the batch manifest to S3. It returns a small plan whose size does not
//! depend on the number of files; the Distributed Map reads the manifest itself. The work
//! itself is [`plan::plan`].

pub mod plan;

use csvlake_contract::BatchError;
use csvlake_contract::run::{Plan, PlanRequest};
use lambda_runtime::LambdaEvent;

pub use plan::PlannerConfig;

/// Handles one planning request.
pub async fn handle(
    event: LambdaEvent<PlanRequest>,
    client: &aws_sdk_s3::Client,
    config: &PlannerConfig,
) -> Result<Plan, BatchError> {
    let request = event.payload;
    tracing::info!(run_id = %request.run_id, mode = ?request.input.mode, "planning");
    let result = plan::plan(client, config, request).await;
    match &result {
        Ok(plan) => tracing::info!(
            files = plan.files,
            batches = plan.batches,
            skipped = plan.skipped,
            rejected = plan.rejected,
            manifest = %plan.manifest.uri(),
            "planned"
        ),
        Err(e) => {
            tracing::error!(target: csvlake_contract::errors::OUTCOME_LOG_TARGET, error = %e, error_type = e.error_type(), "planning failed")
        }
    }
    result
}
