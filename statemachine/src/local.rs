//! The pipeline as `csvlake run` executes it: pipeline.asl.json with the three function
//! substitutions that infra sets, mapped to local ARNs, and each ARN to the in-process handler
//! of its Lambda (the same `handle` functions the Lambda binaries serve).

use std::sync::Arc;

use csvlake::Converter;

use crate::{
    AslError, CONVERTER, DEFINITION, Definition, Executor, PLANNER, REDUCER, lambda, local_function_arn,
    local_substitutions,
};

/// An executor of pipeline.asl.json whose tasks run the planner, converter and reducer
/// handlers in this process, over `client`.
pub fn executor(client: aws_sdk_s3::Client, converter: Arc<Converter>) -> Result<Executor, AslError> {
    let definition = Definition::parse(DEFINITION, &local_substitutions())?;
    let (planner_client, reducer_client) = (client.clone(), client.clone());
    let planner = lambda(move |event| {
        let client = planner_client.clone();
        async move { csvlake_planner::handle(event, &client).await }
    });
    let converter = lambda(move |event| {
        let converter = converter.clone();
        async move { csvlake_converter::handle(event, &converter).await }
    });
    let reducer = lambda(move |event| {
        let client = reducer_client.clone();
        async move { csvlake_reducer::handle(event, &client).await }
    });
    Ok(Executor::new(definition, client)
        .with_function(local_function_arn(PLANNER), planner)
        .with_function(local_function_arn(CONVERTER), converter)
        .with_function(local_function_arn(REDUCER), reducer))
}
