//! Runs a [`Definition`]: state by state, with the input and output processing of Step
//! Functions (InputPath → Parameters → task → ResultSelector → ResultPath → OutputPath), Retry
//! and Catch, and the context object. The Distributed Map lives in [`crate::map`].

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use serde_json::{Value, json};

use crate::context::{ExecutionContext, now};
use crate::definition::{Definition, Handlers, Io, State, StateMachine, Task, Transition};
use crate::error::{TaskError, names};
use crate::function::{Function, Invocation, timed_out};
use crate::path::Path;
use crate::retry::{is_recoverable, matches};

/// Default number of entries per ResultWriter file.
pub const DEFAULT_RESULTS_PER_FILE: usize = 1000;

/// Executes a definition with registered functions and an S3 client (for the Map's ItemReader
/// and ResultWriter). Cheap to clone; one executor runs any number of executions at once.
#[derive(Clone)]
pub struct Executor {
    definition: Arc<Definition>,
    pub(crate) s3: aws_sdk_s3::Client,
    functions: Arc<BTreeMap<String, Arc<dyn Function>>>,
    timeouts: Arc<BTreeMap<String, Duration>>,
    delay_scale: f64,
    pub(crate) results_per_file: usize,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("definition", &self.definition.start_at())
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .field("timeouts", &self.timeouts)
            .field("delay_scale", &self.delay_scale)
            .field("results_per_file", &self.results_per_file)
            .finish()
    }
}

/// The outcome of one execution.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    /// How it ended.
    pub status: ExecutionStatus,
    /// What happened, in order. Child executions of a Map appear as [`HistoryEvent::MapItem`]
    /// events, grouped by child, in item order.
    pub history: Vec<HistoryEvent>,
}

impl Execution {
    /// The output, when the execution succeeded.
    pub fn output(&self) -> Option<&Value> {
        match &self.status {
            ExecutionStatus::Succeeded(output) => Some(output),
            ExecutionStatus::Failed(_) => None,
        }
    }

    /// The error, when the execution failed.
    pub fn error(&self) -> Option<&TaskError> {
        match &self.status {
            ExecutionStatus::Succeeded(_) => None,
            ExecutionStatus::Failed(error) => Some(error),
        }
    }
}

/// How an execution ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecutionStatus {
    /// With this output.
    Succeeded(Value),
    /// With this error: a Fail state's, or a state error no Catch handled.
    Failed(TaskError),
}

/// One event of an execution's history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistoryEvent {
    /// A state was entered.
    StateEntered {
        /// The state.
        state: String,
    },
    /// A state completed and the execution moves on (or ends).
    StateExited {
        /// The state.
        state: String,
    },
    /// An attempt of a Task state failed.
    TaskFailed {
        /// The state.
        state: String,
        /// The error name.
        error: String,
    },
    /// An attempt of a Map state (its Map Run) failed.
    MapRunFailed {
        /// The state.
        state: String,
        /// The error name.
        error: String,
    },
    /// A failed attempt will be retried after `delay`.
    RetryScheduled {
        /// The state.
        state: String,
        /// The retry number under the matching retrier, from 1.
        attempt: u32,
        /// The wait before it (after jitter and the delay scale).
        delay: Duration,
    },
    /// A Catch handled an error.
    Caught {
        /// The state.
        state: String,
        /// The error name.
        error: String,
        /// Where the execution goes.
        next: String,
    },
    /// A Map Run started.
    MapRunStarted {
        /// The Map state.
        state: String,
        /// Its ARN.
        map_run_arn: String,
        /// Items read.
        items: u64,
    },
    /// An event of a child execution of a Map Run.
    MapItem {
        /// The Map state.
        state: String,
        /// The item.
        index: u64,
        /// The child's event.
        event: Box<HistoryEvent>,
    },
    /// A child execution of a Map Run failed.
    MapItemFailed {
        /// The Map state.
        state: String,
        /// The item.
        index: u64,
        /// The child's error name.
        error: String,
    },
    /// A child execution of a Map Run was still running when the Map Run failed: it was
    /// stopped (its future dropped) and is written to the results as `ABORTED`.
    MapItemAborted {
        /// The Map state.
        state: String,
        /// The item.
        index: u64,
    },
    /// A Map Run ended; items not started are neither run nor written to the results.
    MapRunEnded {
        /// The Map state.
        state: String,
        /// Children that succeeded.
        succeeded: u64,
        /// Children that failed.
        failed: u64,
        /// Children stopped while running because the tolerated failures were exceeded.
        aborted: u64,
        /// Items never started because the tolerated failures were exceeded.
        not_started: u64,
    },
}

/// Where a state leads.
enum Step<'m> {
    Next(&'m str, Value),
    End(Value),
}

impl<'m> Step<'m> {
    fn after(transition: &'m Transition, output: Value) -> Self {
        match transition {
            Transition::Next(next) => Self::Next(next, output),
            Transition::End => Self::End(output),
        }
    }
}

/// A state that does work, with Retry and Catch.
#[derive(Clone, Copy)]
enum Work<'m> {
    Task(&'m Task),
    Map(&'m crate::definition::Map),
}

impl<'m> Work<'m> {
    fn io(self) -> &'m Io {
        match self {
            Self::Task(task) => &task.io,
            Self::Map(map) => &map.io,
        }
    }

    fn handlers(self) -> &'m Handlers {
        match self {
            Self::Task(task) => &task.handlers,
            Self::Map(map) => &map.handlers,
        }
    }

    fn transition(self) -> &'m Transition {
        match self {
            Self::Task(task) => &task.transition,
            Self::Map(map) => &map.transition,
        }
    }
}

impl Executor {
    /// An executor of `definition`, reading and writing S3 through `s3`.
    pub fn new(definition: Definition, s3: aws_sdk_s3::Client) -> Self {
        Self {
            definition: Arc::new(definition),
            s3,
            functions: Arc::new(BTreeMap::new()),
            timeouts: Arc::new(BTreeMap::new()),
            delay_scale: 1.0,
            results_per_file: DEFAULT_RESULTS_PER_FILE,
        }
    }

    /// Registers `f` under `arn`: a Task whose FunctionName is `arn` invokes it. A FunctionName
    /// that is an ARN also finds a function registered under its bare name, and the reverse.
    pub fn with_function(mut self, arn: impl Into<String>, f: Arc<dyn Function>) -> Self {
        Arc::make_mut(&mut self.functions).insert(arn.into(), f);
        self
    }

    /// Gives the function registered under `arn` (before or after this call) a timeout, as a
    /// Lambda function has one ([`crate::LAMBDA_TIMEOUT`] for the deployed ones; default: none).
    /// Each invocation then has the deadline now + `timeout` (the deadline in a [`crate::lambda`]
    /// handler's context), and one still running at its deadline is dropped and fails its Task
    /// with `Sandbox.Timedout`, as Lambda reports it. A Task's own TimeoutSeconds still applies,
    /// as `States.Timeout`. `arn` resolves like a FunctionName: by ARN or bare name.
    pub fn with_function_timeout(mut self, arn: impl Into<String>, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.timeouts).insert(arn.into(), timeout);
        self
    }

    /// Multiplies every Retry wait (default 1.0; tests use 0.0). A negative or NaN scale counts
    /// as 0.
    pub fn with_delay_scale(mut self, scale: f64) -> Self {
        self.delay_scale = if scale.is_nan() { 0.0 } else { scale.max(0.0) };
        self
    }

    /// The most entries a ResultWriter puts in one `SUCCEEDED_n.json` or `FAILED_n.json`
    /// (default [`DEFAULT_RESULTS_PER_FILE`]; Step Functions splits by size instead). At least 1.
    pub fn with_results_per_file(mut self, n: usize) -> Self {
        self.results_per_file = n.max(1);
        self
    }

    /// Runs an execution named `name` (the run id: `$$.Execution.Name`) on `input`.
    pub async fn execute(&self, name: &str, input: Value) -> Execution {
        let context = ExecutionContext::top(name, input.clone());
        let mut history = Vec::new();
        let machine = Arc::clone(&self.definition.machine);
        let run = self.run_machine(&machine, &context, input, &mut history);
        let result = match self.definition.timeout {
            Some(limit) => tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
                Err(TaskError::new(names::TIMEOUT, format!("the execution ran longer than {}s", limit.as_secs())))
            }),
            None => run.await,
        };
        let status = match result {
            Ok(output) => ExecutionStatus::Succeeded(output),
            Err(error) => ExecutionStatus::Failed(error),
        };
        Execution { status, history }
    }

    /// Runs `machine` from its StartAt to a terminal state.
    pub(crate) async fn run_machine(
        &self,
        machine: &StateMachine,
        execution: &ExecutionContext,
        mut input: Value,
        history: &mut Vec<HistoryEvent>,
    ) -> Result<Value, TaskError> {
        let mut name = machine.start_at.as_str();
        loop {
            // Parsing checked every transition, so a missing state is a bug, reported as such.
            let state = machine.states.get(name).ok_or_else(|| TaskError::runtime(name, "no such state"))?;
            history.push(HistoryEvent::StateEntered { state: name.to_owned() });
            let step = self.run_state(name, state, execution, input, history).await?;
            history.push(HistoryEvent::StateExited { state: name.to_owned() });
            match step {
                Step::Next(next, output) => {
                    name = next;
                    input = output;
                }
                Step::End(output) => return Ok(output),
            }
        }
    }

    async fn run_state<'m>(
        &self,
        name: &str,
        state: &'m State,
        execution: &ExecutionContext,
        input: Value,
        history: &mut Vec<HistoryEvent>,
    ) -> Result<Step<'m>, TaskError> {
        let entered = now();
        let context = || execution.object(name, &entered, 0);
        match state {
            State::Pass(pass) => {
                let context = context();
                let effective = select(&pass.input_path, &input, &context, name, "InputPath")?;
                let mut result = match &pass.parameters {
                    Some(template) => template.eval(&effective, &context, name, "Parameters")?,
                    None => effective,
                };
                if let Some(fixed) = &pass.result {
                    result = fixed.clone();
                }
                let output = place_result(&pass.result_path, input, result, name)?;
                let output = select(&pass.output_path, &output, &context, name, "OutputPath")?;
                Ok(Step::after(&pass.transition, output))
            }
            State::Choice(choice) => {
                let context = context();
                let effective = select(&choice.input_path, &input, &context, name, "InputPath")?;
                let mut next = None;
                for branch in &choice.choices {
                    if branch.rule.eval(&effective, &context, name)? {
                        next = Some(branch.next.as_str());
                        break;
                    }
                }
                let next = next.or(choice.default.as_deref()).ok_or_else(|| {
                    TaskError::new(
                        names::NO_CHOICE_MATCHED,
                        format!("no Choices rule of state \"{name}\" matched and it has no Default"),
                    )
                })?;
                Ok(Step::Next(next, select(&choice.output_path, &effective, &context, name, "OutputPath")?))
            }
            State::Succeed(succeed) => {
                let context = context();
                let effective = select(&succeed.input_path, &input, &context, name, "InputPath")?;
                Ok(Step::End(select(&succeed.output_path, &effective, &context, name, "OutputPath")?))
            }
            State::Fail(fail) => {
                let context = context();
                let read = |path: &Option<Path>, given: &Option<String>| match path {
                    Some(p) => match p.get(&input, &context) {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    },
                    None => given.clone().unwrap_or_default(),
                };
                Err(TaskError::new(read(&fail.error_path, &fail.error), read(&fail.cause_path, &fail.cause)))
            }
            State::Task(task) => self.run_work(name, Work::Task(task), execution, &entered, input, history).await,
            State::Map(map) => self.run_work(name, Work::Map(map), execution, &entered, input, history).await,
        }
    }

    /// A Task or Map state: attempts under Retry, then either the result processed into the
    /// output or the error handed to Catch.
    async fn run_work<'m>(
        &self,
        name: &str,
        work: Work<'m>,
        execution: &ExecutionContext,
        entered: &str,
        input: Value,
        history: &mut Vec<HistoryEvent>,
    ) -> Result<Step<'m>, TaskError> {
        let (io, handlers, transition) = (work.io(), work.handlers(), work.transition());
        let mut context = execution.object(name, entered, 0);
        let effective = select(&io.input_path, &input, &context, name, "InputPath")?;
        let mut attempts = vec![0u32; handlers.retry.len()];
        let mut retries = 0u32;
        let outcome = loop {
            context = execution.object(name, entered, retries);
            let attempt = match work {
                Work::Task(task) => self.invoke(name, task, &effective, &context).await,
                Work::Map(map) => crate::map::run(self, name, map, &effective, &context, history).await,
            };
            let error = match attempt {
                Ok(result) => break Ok(result),
                Err(error) => error,
            };
            history.push(match work {
                Work::Task(_) => HistoryEvent::TaskFailed { state: name.to_owned(), error: error.error.clone() },
                Work::Map(_) => HistoryEvent::MapRunFailed { state: name.to_owned(), error: error.error.clone() },
            });
            if !is_recoverable(&error.error) {
                break Err(error);
            }
            // The first retrier that matches decides, even when its attempts are used up.
            let Some(i) = handlers.retry.iter().position(|r| matches(&r.error_equals, &error.error)) else {
                break Err(error);
            };
            if attempts[i] >= handlers.retry[i].max_attempts {
                break Err(error);
            }
            attempts[i] += 1;
            retries += 1;
            let delay = handlers.retry[i].delay(attempts[i], self.delay_scale);
            history.push(HistoryEvent::RetryScheduled { state: name.to_owned(), attempt: attempts[i], delay });
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        };
        match outcome {
            Ok(result) => {
                let selected = match &io.result_selector {
                    Some(template) => template.eval(&result, &context, name, "ResultSelector")?,
                    None => result,
                };
                let output = place_result(&io.result_path, input, selected, name)?;
                let output = select(&io.output_path, &output, &context, name, "OutputPath")?;
                Ok(Step::after(transition, output))
            }
            Err(error) => {
                let catcher = handlers
                    .catch
                    .iter()
                    .find(|c| is_recoverable(&error.error) && matches(&c.error_equals, &error.error));
                let Some(catcher) = catcher else { return Err(error) };
                history.push(HistoryEvent::Caught {
                    state: name.to_owned(),
                    error: error.error.clone(),
                    next: catcher.next.clone(),
                });
                let output = place_result(&catcher.result_path, input, error.to_value(), name)?;
                Ok(Step::Next(&catcher.next, output))
            }
        }
    }

    /// One attempt of a Task: `arn:aws:states:::lambda:invoke` on a registered function.
    async fn invoke(&self, name: &str, task: &Task, effective: &Value, context: &Value) -> Result<Value, TaskError> {
        let parameters = task.parameters.eval(effective, context, name, "Parameters")?;
        let function_name = match parameters.get("FunctionName") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(TaskError::runtime(name, "the FunctionName parameter is not a string")),
        };
        let payload = parameters.get("Payload").cloned().unwrap_or_else(|| json!({}));
        within_payload_limit(name, "input", &payload)?;
        let function = resolve(&self.functions, function_name).ok_or_else(|| {
            TaskError::new(
                names::RESOURCE_NOT_FOUND,
                format!(
                    "Function not found: {function_name} (registered: {:?})",
                    self.functions.keys().collect::<Vec<_>>()
                ),
            )
        })?;
        let function_timeout = resolve(&self.timeouts, function_name).copied();
        let invocation = Invocation::new(function_timeout.and_then(|t| SystemTime::now().checked_add(t)));
        // A panicking function fails its task, as the Lambda runtime reports a panic; one that
        // runs past its function's timeout is dropped, as Lambda stops it.
        let call = AssertUnwindSafe(function.invoke_with(payload, &invocation)).catch_unwind();
        let call = async {
            match function_timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| timed_out(&invocation, limit)),
                None => Ok(call.await),
            }
        };
        let outcome = match task.timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                TaskError::new(names::TIMEOUT, format!("{function_name} ran longer than {}s", limit.as_secs()))
            })??,
            None => call.await?,
        };
        let output = outcome.map_err(|panic| TaskError::new(names::TASK_FAILED, panic_message(&panic)))??;
        within_payload_limit(name, "result", &output)?;
        Ok(json!({"ExecutedVersion": "$LATEST", "Payload": output, "StatusCode": 200}))
    }
}

/// What is registered under the function `name`, or under its bare name (or ARN).
fn resolve<'a, T>(registered: &'a BTreeMap<String, T>, name: &str) -> Option<&'a T> {
    registered.get(name).or_else(|| {
        let bare = bare_function_name(name);
        registered.iter().find(|(k, _)| bare_function_name(k) == bare).map(|(_, v)| v)
    })
}

/// `my-function` of `arn:aws:lambda:region:account:function:my-function[:qualifier]`.
fn bare_function_name(name: &str) -> &str {
    match name.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => name,
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("Lambda panicked: {message}")
}

/// InputPath or OutputPath: the node at `path` (`null` → `{}`); a missing node is a
/// `States.Runtime` error.
pub(crate) fn select(
    path: &Option<Path>,
    value: &Value,
    context: &Value,
    state: &str,
    field: &str,
) -> Result<Value, TaskError> {
    match path {
        None => Ok(json!({})),
        Some(path) => path.get(value, context).cloned().ok_or_else(|| {
            TaskError::runtime(state, format!("Invalid path \"{path}\": the {field} references an invalid value"))
        }),
    }
}

/// ResultPath: the result placed into the state's input (`null` → the input unchanged).
fn place_result(path: &Option<Path>, mut input: Value, result: Value, state: &str) -> Result<Value, TaskError> {
    let Some(path) = path else { return Ok(input) };
    path.set(&mut input, result)
        .map_err(|e| TaskError::runtime(state, format!("unable to apply ResultPath \"{path}\" to the input: {e}")))?;
    Ok(input)
}

/// The Step Functions limit on a task's input and result: 256 KiB of UTF-8 JSON.
pub const PAYLOAD_LIMIT_BYTES: usize = 256 * 1024;

/// Fails like Step Functions when a payload is over [`PAYLOAD_LIMIT_BYTES`], so that a batch
/// too large for AWS fails locally too.
fn within_payload_limit(state: &str, what: &str, value: &Value) -> Result<(), TaskError> {
    let size = serde_json::to_vec(value).map_or(0, |v| v.len());
    if size > PAYLOAD_LIMIT_BYTES {
        return Err(TaskError::new(
            names::DATA_LIMIT_EXCEEDED,
            format!("the {what} of state {state:?} is {size} bytes, over the {PAYLOAD_LIMIT_BYTES}-byte limit"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_resolve_by_arn_or_bare_name() {
        assert_eq!(bare_function_name("arn:aws:lambda:local:000000000000:function:csvlake-planner"), "csvlake-planner");
        assert_eq!(bare_function_name("arn:aws:lambda:eu-west-1:1:function:f:live"), "f");
        assert_eq!(bare_function_name("f"), "f");
    }
}
