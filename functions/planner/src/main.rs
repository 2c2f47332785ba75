//! Lambda entry point of the planner: builds the S3 client once and serves planning requests.

use csvlake_contract::deployment::S3_ENDPOINT_ENV;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let endpoint = std::env::var(S3_ENDPOINT_ENV).ok();
    let client = csvlake_s3::env_client(endpoint.as_deref()).await;
    let client = &client;
    // A deployment whose roots or lease setting do not parse must not plan anything.
    let config = csvlake_planner::PlannerConfig::from_env()?;
    let config = &config;
    lambda_runtime::run(service_fn(move |event| async move { csvlake_planner::handle(event, client, config).await }))
        .await
}
