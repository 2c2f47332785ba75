//! The converter Lambda: converts the files of one batch in parallel tasks and returns one
//! result per file. The file is the unit of failure: bad input, a denied object, or a transient
//! failure that persists after the file's own retries is a per-file `failed` result. The batch
//! fails (`csvlake.Deadline`, `csvlake.Transient`), after recording its results so far, only
//! when the Lambda deadline leaves files unconverted or every file failed transiently; the state
//! machine retries it, and the retry skips the files done. The work itself is
//! [`convert::Converter`].

pub mod convert;

use csvlake_contract::BatchError;
use csvlake_contract::payload::{BatchResult, ConvertBatch};
use lambda_runtime::LambdaEvent;

pub use convert::Converter;

/// Memory left to the runtime and the SDK, outside the conversion budget.
const RESERVED_MIB: u32 = 160;

/// The conversion memory budget for a function of `memory_mib` MiB.
pub fn memory_budget_mib(memory_mib: u32) -> u32 {
    memory_mib.saturating_sub(RESERVED_MIB).max(convert::MAX_FILE_WEIGHT_MIB)
}

/// The budget from the Lambda environment (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`), 1 GiB elsewhere.
pub fn memory_budget_from_env() -> u32 {
    std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|v| v.parse().ok()).map_or(1024, memory_budget_mib)
}

/// Handles one batch, stopping in time for the invocation's deadline (none when the context
/// gives none).
pub async fn handle(event: LambdaEvent<ConvertBatch>, converter: &Converter) -> Result<BatchResult, BatchError> {
    let batch = event.payload;
    let deadline = (event.context.deadline > 0)
        .then(|| std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.context.deadline));
    tracing::info!(files = batch.files.len(), bucket = %batch.job.input.bucket, retry = batch.retry_count, "converting batch");
    let result = converter.convert_batch_until(&batch, deadline).await;
    if let Err(e) = &result {
        tracing::error!(target: csvlake_contract::errors::OUTCOME_LOG_TARGET, error = %e, error_type = e.error_type(), "batch failed");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::file_weight_mib;

    #[test]
    fn the_budget_leaves_room_for_the_runtime() {
        assert_eq!(memory_budget_mib(1769), 1609);
        assert_eq!(memory_budget_mib(128), 160, "never below one large file");
    }

    #[test]
    fn large_files_weigh_more_so_fewer_run_at_once() {
        assert_eq!(file_weight_mib(10_000), 4);
        assert_eq!(file_weight_mib(20 << 20), 44);
        assert_eq!(file_weight_mib(5 << 30), 160);
        // A 1,769 MB function converts up to 10 large files at once, or hundreds of small ones.
        assert_eq!(memory_budget_mib(1769) / file_weight_mib(5 << 30), 10);
        assert!(memory_budget_mib(1769) / file_weight_mib(50_000) >= 400);
    }
}
