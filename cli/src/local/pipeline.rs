//! The pipeline as `csvlake run` executes it: pipeline.asl.json with the three function
//! substitutions that infra sets, mapped to local ARNs, and each ARN to the in-process handler
//! of its Lambda (the same `handle` functions the Lambda binaries serve).

use std::sync::Arc;

use csvlake_contract::BatchError;
use csvlake_contract::deployment::{CONVERTER_SUBSTITUTION, PLANNER_SUBSTITUTION, REDUCER_SUBSTITUTION};
use csvlake_contract::run::Plan;
use csvlake_converter::Converter;
use csvlake_planner::PlannerConfig;
use csvlake_statemachine::{
    AslError, DEFINITION, Definition, Executor, LAMBDA_TIMEOUT, lambda, local_function_arn, local_substitutions,
};

/// The definition's substitution variables, one per function.
pub const VARIABLES: [&str; 3] = [PLANNER_SUBSTITUTION, CONVERTER_SUBSTITUTION, REDUCER_SUBSTITUTION];

/// Told of the plan when the Plan state has it: a progress display learns the run's totals.
pub type PlanObserver = Arc<dyn Fn(&Plan) + Send + Sync>;

/// An executor of pipeline.asl.json whose tasks run the planner, converter and reducer
/// handlers in this process, over `client`.
pub fn executor(client: aws_sdk_s3::Client, converter: Arc<Converter>) -> Result<Executor, AslError> {
    observed_executor(client, converter, PlannerConfig::default(), None)
}

/// [`executor`] with the planner's configuration, telling `on_plan` of every plan the planner
/// returns.
pub fn observed_executor(
    client: aws_sdk_s3::Client,
    converter: Arc<Converter>,
    config: PlannerConfig,
    on_plan: Option<PlanObserver>,
) -> Result<Executor, AslError> {
    let config = Arc::new(config);
    let definition = Definition::parse(DEFINITION, &local_substitutions(&VARIABLES))?;
    let (planner_client, reducer_client) = (client.clone(), client.clone());
    let planner = lambda(move |event| {
        let (client, on_plan, config) = (planner_client.clone(), on_plan.clone(), config.clone());
        async move {
            let plan = csvlake_planner::handle(event, &client, &config).await?;
            if let Some(on_plan) = on_plan {
                on_plan(&plan);
            }
            Ok::<_, BatchError>(plan)
        }
    });
    let converter = lambda(move |event| {
        let converter = converter.clone();
        async move { csvlake_converter::handle(event, &converter).await }
    });
    let reducer = lambda(move |event| {
        let client = reducer_client.clone();
        async move { csvlake_reducer::serve(event, &client).await }
    });
    // Each function has the deployed Lambdas' timeout: the converter reads the deadline from
    // its context, and a call that runs past it fails with Sandbox.Timedout, as in AWS.
    let mut executor = Executor::new(definition, client)
        .with_function(local_function_arn(PLANNER_SUBSTITUTION), planner)
        .with_function(local_function_arn(CONVERTER_SUBSTITUTION), converter)
        .with_function(local_function_arn(REDUCER_SUBSTITUTION), reducer);
    for variable in VARIABLES {
        executor = executor.with_function_timeout(local_function_arn(variable), LAMBDA_TIMEOUT);
    }
    Ok(executor)
}
