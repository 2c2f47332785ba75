//! Local execution of the csvlake state machine: an interpreter of `pipeline.asl.json`, the
//! very definition infra deploys to AWS Step Functions, so that a local run and a cloud run
//! follow the same states, paths, retries and Map semantics.
//!
//! It runs the subset of the States Language (JSONPath) that the definition uses, and rejects
//! anything else when parsing, naming the construct:
//!
//! - top level: `Comment`, `StartAt`, `States`, `QueryLanguage` (JSONPath), `TimeoutSeconds`,
//!   `Version`; `${Name}` definition substitutions;
//! - states: Task (`arn:aws:states:::lambda:invoke`), Choice, Pass, Succeed, Fail, and the
//!   Distributed Map (ItemReader `s3:getObject` of a JSON array, ItemSelector, ItemProcessor,
//!   MaxConcurrency, tolerated failures, ResultWriter `s3:putObject`);
//! - input and output processing: InputPath, Parameters, ResultSelector, ResultPath,
//!   OutputPath, with reference paths and the context object (`$$`); Retry and Catch.
//!
//! The interpreter knows nothing of the functions it runs: a Task's resource resolves to a
//! [`Function`] that the caller registers under the ARN the definition names ([`lambda`] adapts
//! a Lambda handler), optionally with a timeout as a Lambda function has
//! ([`Executor::with_function_timeout`], [`LAMBDA_TIMEOUT`]). It writes the Step Functions shapes
//! of [`shapes`] as AWS does.
//!
//! ```no_run
//! # async fn run(s3: aws_sdk_s3::Client, planner: std::sync::Arc<dyn csvlake_statemachine::Function>) {
//! use csvlake_statemachine::{DEFINITION, Definition, Executor, local_function_arn, local_substitutions};
//!
//! let variables = ["PlannerFunctionArn", "ConverterFunctionArn", "ReducerFunctionArn"];
//! let definition = Definition::parse(DEFINITION, &local_substitutions(&variables)).expect("the pipeline parses");
//! let executor = Executor::new(definition, s3).with_function(local_function_arn(variables[0]), planner);
//! let execution = executor.execute("run-1", serde_json::json!({"input": {"bucket": "raw"}})).await;
//! # }
//! ```

mod choice;
mod context;
mod definition;
mod error;
mod executor;
mod fields;
mod function;
mod map;
mod path;
mod retry;
pub mod shapes;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use definition::Definition;
pub use error::{AslError, TaskError};
pub use executor::{DEFAULT_RESULTS_PER_FILE, Execution, ExecutionStatus, Executor, HistoryEvent, PAYLOAD_LIMIT_BYTES};
pub use function::{DESERIALIZE_ERROR_TYPE, Function, Invocation, LAMBDA_TIMEOUT, TIMED_OUT_ERROR_TYPE, lambda};

/// The state machine definition infra deploys, with its `${...}` placeholders.
pub const DEFINITION: &str = include_str!("../pipeline.asl.json");

/// The local ARN a substitution variable stands for: `PlannerFunctionArn` →
/// `arn:aws:lambda:local:000000000000:function:csvlake-planner`.
pub fn local_function_arn(variable: &str) -> String {
    let base = variable.strip_suffix("FunctionArn").unwrap_or(variable);
    let mut name = String::from("csvlake");
    for (i, c) in base.chars().enumerate() {
        if i == 0 || c.is_uppercase() {
            name.push('-');
        }
        name.extend(c.to_lowercase());
    }
    format!("arn:aws:lambda:{}:{}:function:{name}", context::REGION, context::ACCOUNT)
}

/// The substitutions of `variables` by their local ARNs ([`local_function_arn`]).
pub fn local_substitutions(variables: &[&str]) -> BTreeMap<String, String> {
    variables.iter().map(|v| ((*v).to_owned(), local_function_arn(v))).collect()
}
