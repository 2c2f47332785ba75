//! Lambda entry point of the converter: builds the S3 client once and serves batches.

use csvlake_contract::deployment::S3_ENDPOINT_ENV;
use csvlake_converter::Converter;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let endpoint = std::env::var(S3_ENDPOINT_ENV).ok();
    let client = csvlake_s3::env_client(endpoint.as_deref()).await;
    let converter = Converter::new(client).with_memory_budget_mib(csvlake_converter::memory_budget_from_env());
    let converter = &converter;
    lambda_runtime::run(service_fn(move |event| async move { csvlake_converter::handle(event, converter).await })).await
}
