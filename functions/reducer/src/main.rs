//! Lambda entry point of the reducer: builds the S3 client once, reduces runs, and logs each
//! run's counts as CloudWatch Embedded Metric Format.

use csvlake_contract::BatchError;
use csvlake_contract::deployment::S3_ENDPOINT_ENV;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let endpoint = std::env::var(S3_ENDPOINT_ENV).ok();
    let client = csvlake_s3::env_client(endpoint.as_deref()).await;
    let client = &client;
    let pipeline = std::env::var(csvlake_reducer::PIPELINE_ENV).ok();
    let pipeline = pipeline.as_deref();
    lambda_runtime::run(service_fn(move |event| async move {
        let answer = csvlake_reducer::serve(event, client).await?;
        if let csvlake_reducer::Answer::Reduce(summary) = &answer {
            println!("{}", csvlake_reducer::metrics_line(summary, pipeline));
        }
        Ok::<_, BatchError>(answer)
    }))
    .await
}
