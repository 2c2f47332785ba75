//! Tests of the executor through its public API: parsing and state semantics. Whole runs of
//! `pipeline.asl.json` over an S3 endpoint are in the workspace's `tests` crate.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::{Definition, Function, TaskError};

mod definition;
mod semantics;

/// A function from an async closure.
struct FnFunction<F>(F);

#[async_trait::async_trait]
impl<F, Fut> Function for FnFunction<F>
where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, TaskError>> + Send,
{
    async fn invoke(&self, payload: Value) -> Result<Value, TaskError> {
        (self.0)(payload).await
    }
}

pub(crate) fn function<F, Fut>(f: F) -> Arc<dyn Function>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
{
    Arc::new(FnFunction(f))
}

/// Parses a definition without substitutions.
pub(crate) fn parse(definition: Value) -> Definition {
    Definition::parse(&definition.to_string(), &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

/// A client for an endpoint nobody listens on, for definitions without a Map.
pub(crate) fn unused_s3() -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_s3::config::Credentials::new("unused", "unused", None, None, "test"))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
