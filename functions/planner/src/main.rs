//! Lambda entry point of the planner (not yet implemented: it fails every invocation clearly).

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|_event: LambdaEvent<serde_json::Value>| async {
        Err::<serde_json::Value, csvlake::Error>(csvlake::Error::Internal("the planner is not implemented yet".into()))
    }))
    .await
}
