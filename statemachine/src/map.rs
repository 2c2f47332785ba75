//! The Distributed Map: a Map Run reads its items from S3 (ItemReader), runs one child
//! execution of the ItemProcessor per item as a tokio task (at most MaxConcurrency at once),
//! and writes the children's results to S3 as Step Functions' ResultWriter does:
//!
//! `<Prefix>/<map-run-id>/SUCCEEDED_n.json`, `FAILED_n.json` (JSON arrays of
//! [`ChildExecution`]) and `manifest.json` ([`ResultManifest`]).
//!
//! Once more children failed than tolerated, the Map Run fails with
//! `States.ExceededToleratedFailureThreshold`, as in Step Functions: the children still running
//! are aborted (their tasks cancelled, their futures dropped) and the items not started never
//! start. The results then hold the succeeded and failed children, and the aborted ones with
//! status `ABORTED` and no error among the `FAILED_n.json` entries (the manifest has only the
//! keys `SUCCEEDED`, `FAILED` and `PENDING`); items never started have no entry.

use std::collections::HashMap;
use std::sync::Arc;

use crate::shapes::{
    ChildExecution, Included, MapOutput, ResultFile, ResultFiles, ResultManifest, ResultWriterDetails,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::context::{ExecutionContext, STATE_MACHINE_NAME, now, states_arn, with_map_item};
use crate::definition::{ExecutionType, Map, Setting, StateMachine};
use crate::error::{TaskError, names};
use crate::executor::{Executor, HistoryEvent};
use crate::path::{Template, kind};

/// The status of a child execution that succeeded, in its results entry.
const SUCCEEDED: &str = "SUCCEEDED";
/// The status of a child execution that failed.
const FAILED: &str = "FAILED";
/// The status of a child execution stopped because its Map Run failed.
const ABORTED: &str = "ABORTED";

/// When the Map Run fails for its failed children.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tolerance {
    percentage: Option<f64>,
    count: Option<u64>,
}

impl Tolerance {
    /// Whether `failed` of `total` children exceed it. With neither setting, one failure does.
    fn exceeded(&self, failed: u64, total: u64) -> bool {
        if failed == 0 {
            return false;
        }
        match (self.percentage, self.count) {
            (None, None) => true,
            (percentage, count) => {
                percentage.is_some_and(|p| failed as f64 * 100.0 / total.max(1) as f64 > p)
                    || count.is_some_and(|c| failed > c)
            }
        }
    }
}

/// How a child execution ended.
enum Ended {
    /// It ran to its end: its output or its error.
    Finished(Result<Value, TaskError>),
    /// It was running when the Map Run failed, and was stopped.
    Aborted,
}

/// One child execution that started and ended.
struct Child {
    index: usize,
    name: String,
    input: Value,
    start: String,
    stop: String,
    ended: Ended,
    history: Vec<HistoryEvent>,
}

/// Runs one attempt of the Map state `name` on its effective input; returns the Map's result,
/// [`MapOutput`] as JSON.
pub(crate) async fn run(
    executor: &Executor,
    name: &str,
    map: &Map,
    effective: &Value,
    context: &Value,
    history: &mut Vec<HistoryEvent>,
) -> Result<Value, TaskError> {
    let max_concurrency = match &map.max_concurrency {
        Setting::Fixed(n) => *n,
        Setting::Path(path) => {
            let value = path.get(effective, context).ok_or_else(|| missing(name, "MaxConcurrencyPath", path))?;
            value.as_u64().ok_or_else(|| mistyped(name, "MaxConcurrencyPath", "a non-negative integer", value))?
        }
    };
    let tolerance = Tolerance {
        percentage: match &map.tolerated_failure_percentage {
            None => None,
            Some(Setting::Fixed(p)) => Some(*p),
            Some(Setting::Path(path)) => {
                let key = "ToleratedFailurePercentagePath";
                let value = path.get(effective, context).ok_or_else(|| missing(name, key, path))?;
                let p = value.as_f64().filter(|p| (0.0..=100.0).contains(p));
                Some(p.ok_or_else(|| mistyped(name, key, "a number in 0..=100", value))?)
            }
        },
        count: match &map.tolerated_failure_count {
            None => None,
            Some(Setting::Fixed(n)) => Some(*n),
            Some(Setting::Path(path)) => {
                let key = "ToleratedFailureCountPath";
                let value = path.get(effective, context).ok_or_else(|| missing(name, key, path))?;
                Some(value.as_u64().ok_or_else(|| mistyped(name, key, "a non-negative integer", value))?)
            }
        },
    };
    let (bucket, key) = s3_location(&map.reader, "Key", effective, context, name, "ItemReader")?;
    let (results_bucket, results_prefix) =
        s3_location(&map.writer, "Prefix", effective, context, name, "ResultWriter")?;

    let items = read_items(executor, &bucket, &key).await?;
    let inputs = match &map.item_selector {
        None => items,
        Some(selector) => items
            .iter()
            .enumerate()
            .map(|(i, item)| selector.eval(effective, &with_map_item(context, i, item), name, "ItemSelector"))
            .collect::<Result<Vec<_>, _>>()?,
    };

    let run_id = Uuid::new_v4().to_string();
    let label = format!("{STATE_MACHINE_NAME}/{name}");
    let map_run_arn = states_arn(&format!("mapRun:{label}:{run_id}"));
    let children = Children {
        executor: executor.clone(),
        processor: Arc::clone(&map.processor),
        state_machine_arn: states_arn(&format!("stateMachine:{label}")),
        label: label.clone(),
        run_id: run_id.clone(),
        execution_type: map.execution_type,
    };
    let total = inputs.len() as u64;
    history.push(HistoryEvent::MapRunStarted {
        state: name.to_owned(),
        map_run_arn: map_run_arn.clone(),
        items: total,
    });

    let limit = if max_concurrency == 0 { usize::MAX } else { usize::try_from(max_concurrency).unwrap_or(usize::MAX) };
    let (mut finished, exceeded) = children.run_all(inputs, limit, tolerance).await;
    finished.sort_by_key(|c| c.index);

    let (mut succeeded, mut failed, mut aborted) = (0, 0, 0);
    for child in &mut finished {
        let index = child.index as u64;
        for event in child.history.drain(..) {
            history.push(HistoryEvent::MapItem { state: name.to_owned(), index, event: Box::new(event) });
        }
        match &child.ended {
            Ended::Finished(Ok(_)) => succeeded += 1,
            Ended::Finished(Err(e)) => {
                failed += 1;
                history.push(HistoryEvent::MapItemFailed { state: name.to_owned(), index, error: e.error.clone() });
            }
            Ended::Aborted => {
                aborted += 1;
                history.push(HistoryEvent::MapItemAborted { state: name.to_owned(), index });
            }
        }
    }
    let not_started = total - finished.len() as u64;
    history.push(HistoryEvent::MapRunEnded { state: name.to_owned(), succeeded, failed, aborted, not_started });

    // Aborted children are written among the failed ones, with their own status.
    let entries = finished.into_iter().map(|c| children.entry(c));
    let (succeeded_entries, failed_entries): (Vec<_>, Vec<_>) = entries.partition(|e| e.status == SUCCEEDED);
    let writer = ResultWriter {
        s3: &executor.s3,
        bucket: &results_bucket,
        base: results_base(&results_prefix, &run_id),
        per_file: executor.results_per_file,
    };
    let manifest_key = writer.write(&map_run_arn, &succeeded_entries, &failed_entries).await?;

    if exceeded {
        return Err(TaskError::new(
            names::EXCEEDED_TOLERATED_FAILURE_THRESHOLD,
            format!(
                "The specified tolerated failure threshold was exceeded: {failed} of {total} items failed \
                 (ToleratedFailurePercentage {}, ToleratedFailureCount {}); {aborted} running were aborted and \
                 {not_started} never started; Map Run {map_run_arn}, results in s3://{results_bucket}/{manifest_key}",
                tolerance.percentage.map_or("not set".into(), |p| p.to_string()),
                tolerance.count.map_or("not set".into(), |c| c.to_string()),
            ),
        ));
    }
    let output = MapOutput {
        map_run_arn,
        result_writer_details: ResultWriterDetails { bucket: results_bucket, key: manifest_key },
    };
    serde_json::to_value(output).map_err(|e| TaskError::runtime(name, format!("the Map output: {e}")))
}

fn missing(state: &str, field: &str, path: &crate::path::Path) -> TaskError {
    TaskError::runtime(state, format!("Invalid path \"{path}\": the {field} references an invalid value"))
}

fn mistyped(state: &str, field: &str, expected: &str, value: &Value) -> TaskError {
    TaskError::runtime(state, format!("the {field} value must be {expected}, not the {} {value}", kind(value)))
}

/// `Bucket` and `Key` (or `Prefix`) of evaluated ItemReader or ResultWriter Parameters.
fn s3_location(
    parameters: &Template,
    second: &str,
    effective: &Value,
    context: &Value,
    state: &str,
    what: &str,
) -> Result<(String, String), TaskError> {
    let value = parameters.eval(effective, context, state, &format!("the Parameters of the {what}"))?;
    let field = |key: &str| match value.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        other => Err(TaskError::runtime(
            state,
            format!("{key} in the Parameters of the {what} must be a string, not {}", other.map_or("missing", kind)),
        )),
    };
    Ok((field("Bucket")?, field(second)?))
}

/// The items: the object's body, a JSON array.
async fn read_items(executor: &Executor, bucket: &str, key: &str) -> Result<Vec<Value>, TaskError> {
    let failed = |message: String| TaskError::new(names::ITEM_READER_FAILED, message);
    let object = executor
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| failed(format!("s3:getObject s3://{bucket}/{key}: {}", DisplayErrorContext(e))))?;
    let body =
        object.body.collect().await.map_err(|e| failed(format!("reading s3://{bucket}/{key}: {e}")))?.into_bytes();
    match serde_json::from_slice(&body) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(other) => Err(failed(format!("s3://{bucket}/{key} holds a JSON {}, not an array of items", kind(&other)))),
        Err(e) => Err(failed(format!("s3://{bucket}/{key} is not JSON: {e}"))),
    }
}

/// What every child of one Map Run shares.
struct Children {
    executor: Executor,
    processor: Arc<StateMachine>,
    state_machine_arn: String,
    label: String,
    run_id: String,
    execution_type: ExecutionType,
}

impl Children {
    /// Runs the children, at most `limit` at once. Once the tolerance is exceeded it starts no
    /// more and aborts the running ones (a child that ends before its abort takes effect keeps
    /// its outcome). Returns the children that started, and whether the tolerance was exceeded.
    async fn run_all(&self, inputs: Vec<Value>, limit: usize, tolerance: Tolerance) -> (Vec<Child>, bool) {
        let total = inputs.len() as u64;
        let mut pending = inputs.into_iter().enumerate();
        let mut running = JoinSet::new();
        // What a child that panicked (a bug of the executor) is recorded with.
        let mut started = HashMap::new();
        let mut finished = Vec::new();
        let mut failed = 0;
        let mut exceeded = false;
        loop {
            while !exceeded && running.len() < limit {
                let Some((index, input)) = pending.next() else { break };
                let name = Uuid::new_v4().to_string();
                let start = now();
                let execution = ExecutionContext {
                    name: name.clone(),
                    id: self.execution_arn(&name),
                    input: input.clone(),
                    start_time: start.clone(),
                    state_machine_id: self.state_machine_arn.clone(),
                    state_machine_name: self.label.clone(),
                };
                let handle = running.spawn(child(self.executor.clone(), Arc::clone(&self.processor), execution));
                started.insert(handle.id(), (index, name, input, start));
            }
            let Some(joined) = running.join_next_with_id().await else { break };
            let (id, ended, history) = match joined {
                Ok((id, (result, history))) => (id, Ended::Finished(result), history),
                Err(e) if e.is_cancelled() => (e.id(), Ended::Aborted, Vec::new()),
                Err(e) => {
                    let panic = TaskError::new(names::RUNTIME, format!("the child execution stopped: {e}"));
                    (e.id(), Ended::Finished(Err(panic)), Vec::new())
                }
            };
            let Some((index, name, input, start)) = started.remove(&id) else { continue };
            if matches!(ended, Ended::Finished(Err(_))) {
                failed += 1;
                if !exceeded && tolerance.exceeded(failed, total) {
                    exceeded = true;
                    // The Map Run fails now: the children still running are stopped.
                    running.abort_all();
                }
            }
            finished.push(Child { index, name, input, start, stop: now(), ended, history });
        }
        (finished, exceeded)
    }

    fn execution_arn(&self, child: &str) -> String {
        match self.execution_type {
            ExecutionType::Standard => states_arn(&format!("execution:{}:{child}", self.label)),
            ExecutionType::Express => states_arn(&format!("express:{}:{}:{child}", self.label, self.run_id)),
        }
    }

    /// The ResultWriter entry of a child that ended.
    fn entry(&self, child: Child) -> ChildExecution {
        let (status, output, error, cause) = match child.ended {
            Ended::Finished(Ok(output)) => (SUCCEEDED, Some(output.to_string()), None, None),
            Ended::Finished(Err(e)) => (FAILED, None, Some(e.error), Some(e.cause)),
            Ended::Aborted => (ABORTED, None, None, None),
        };
        ChildExecution {
            execution_arn: self.execution_arn(&child.name),
            input: child.input.to_string(),
            input_details: Some(Included { included: true }),
            name: child.name,
            output_details: output.as_ref().map(|_| Included { included: true }),
            output,
            redrive_count: 0,
            redrive_status: "NOT_REDRIVABLE".into(),
            redrive_status_reason: None,
            start_date: child.start,
            state_machine_arn: self.state_machine_arn.clone(),
            status: status.into(),
            stop_date: Some(child.stop),
            error,
            cause,
        }
    }
}

/// One child execution, boxed: it runs the executor, which runs Maps, which run children.
fn child(
    executor: Executor,
    processor: Arc<StateMachine>,
    execution: ExecutionContext,
) -> BoxFuture<'static, (Result<Value, TaskError>, Vec<HistoryEvent>)> {
    Box::pin(async move {
        let mut history = Vec::new();
        let result = executor.run_machine(&processor, &execution, execution.input.clone(), &mut history).await;
        (result, history)
    })
}

/// `<Prefix>/<map-run-id>`, without doubled slashes.
fn results_base(prefix: &str, run_id: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() { run_id.to_owned() } else { format!("{prefix}/{run_id}") }
}

/// Writes the results files and the manifest of one Map Run.
struct ResultWriter<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    base: String,
    per_file: usize,
}

impl ResultWriter<'_> {
    /// Writes `SUCCEEDED_n.json`, `FAILED_n.json` (failed and aborted children) and then
    /// `manifest.json`; returns the manifest's key.
    async fn write(
        &self,
        map_run_arn: &str,
        succeeded: &[ChildExecution],
        failed: &[ChildExecution],
    ) -> Result<String, TaskError> {
        let files = ResultFiles {
            failed: self.write_files(FAILED, failed).await?,
            pending: Vec::new(),
            succeeded: self.write_files(SUCCEEDED, succeeded).await?,
        };
        let manifest = ResultManifest {
            destination_bucket: self.bucket.to_owned(),
            map_run_arn: map_run_arn.to_owned(),
            result_files: files,
        };
        let key = format!("{}/manifest.json", self.base);
        self.put(&key, serialize(&manifest)?).await?;
        Ok(key)
    }

    async fn write_files(&self, status: &str, entries: &[ChildExecution]) -> Result<Vec<ResultFile>, TaskError> {
        let mut files = Vec::new();
        for (n, chunk) in entries.chunks(self.per_file).enumerate() {
            let key = format!("{}/{status}_{n}.json", self.base);
            let body = serialize(chunk)?;
            let size = body.len() as u64;
            self.put(&key, body).await?;
            files.push(ResultFile { key, size });
        }
        Ok(files)
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), TaskError> {
        self.s3
            .put_object()
            .bucket(self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                TaskError::new(
                    names::RESULT_WRITER_FAILED,
                    format!("s3:putObject s3://{}/{key}: {}", self.bucket, DisplayErrorContext(e)),
                )
            })?;
        Ok(())
    }
}

fn serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, TaskError> {
    serde_json::to_vec(value).map_err(|e| TaskError::new(names::RESULT_WRITER_FAILED, format!("serializing: {e}")))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn tolerance_follows_the_percentage_and_count() {
        let none = Tolerance { percentage: None, count: None };
        assert!(!none.exceeded(0, 10));
        assert!(none.exceeded(1, 10));
        let pct = Tolerance { percentage: Some(10.0), count: None };
        assert!(!pct.exceeded(1, 10));
        assert!(pct.exceeded(2, 10));
        let zero = Tolerance { percentage: Some(0.0), count: None };
        assert!(zero.exceeded(1, 1000));
        let all = Tolerance { percentage: Some(100.0), count: None };
        assert!(!all.exceeded(10, 10));
        let count = Tolerance { percentage: None, count: Some(2) };
        assert!(!count.exceeded(2, 3));
        assert!(count.exceeded(3, 3));
        let both = Tolerance { percentage: Some(50.0), count: Some(1) };
        assert!(both.exceeded(2, 100));
    }

    /// Counts how many of its kind were dropped.
    struct Guard(Arc<AtomicUsize>);

    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn exceeding_the_tolerance_aborts_the_running_children_and_starts_no_more() {
        let definition = crate::tests::parse(json!({"StartAt": "Work", "States": {"Work": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "work", "Payload.$": "$"},
            "End": true
        }}}));
        let processor = Arc::clone(&definition.machine);
        let (started, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let work = {
            let (started, dropped) = (Arc::clone(&started), Arc::clone(&dropped));
            crate::tests::function(move |payload| {
                started.fetch_add(1, Ordering::SeqCst);
                let guard = Guard(Arc::clone(&dropped));
                async move {
                    if payload["fail"] == json!(true) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return Err(TaskError::new("csvlake.Internal", "broken"));
                    }
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    drop(guard);
                    Ok(payload)
                }
            })
        };
        let executor = Executor::new(definition, crate::tests::unused_s3()).with_function("work", work);
        let children = Children {
            executor,
            processor,
            state_machine_arn: states_arn("stateMachine:csvlake-pipeline/Map"),
            label: "csvlake-pipeline/Map".into(),
            run_id: "run".into(),
            execution_type: ExecutionType::Standard,
        };
        let inputs = vec![json!({"fail": true}), json!({}), json!({}), json!({}), json!({})];
        let tolerance = Tolerance { percentage: Some(0.0), count: None };
        let run = children.run_all(inputs, 3, tolerance);
        let (mut ended, exceeded) =
            tokio::time::timeout(Duration::from_secs(10), run).await.expect("the running children were not aborted");
        assert!(exceeded);
        assert_eq!(started.load(Ordering::SeqCst), 3, "items 3 and 4 never start");
        assert_eq!(dropped.load(Ordering::SeqCst), 3, "every started call was dropped, the running ones early");
        ended.sort_by_key(|c| c.index);
        assert_eq!(ended.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(matches!(&ended[0].ended, Ended::Finished(Err(e)) if e.error == "csvlake.Internal"));
        assert!(ended[1..].iter().all(|c| matches!(c.ended, Ended::Aborted)));

        let entries: Vec<ChildExecution> = ended.into_iter().map(|c| children.entry(c)).collect();
        assert_eq!(entries.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), [FAILED, ABORTED, ABORTED]);
        let aborted = &entries[1];
        assert!(aborted.error.is_none() && aborted.cause.is_none() && aborted.output.is_none());
        assert!(aborted.stop_date.is_some() && aborted.input == "{}", "{aborted:?}");
    }

    #[test]
    fn results_sit_under_the_prefix_and_the_run() {
        assert_eq!(results_base("out/_runs/r/results", "u"), "out/_runs/r/results/u");
        assert_eq!(results_base("results/", "u"), "results/u");
        assert_eq!(results_base("", "u"), "u");
    }
}
