//! Whole runs of `pipeline.asl.json` itself, with fake planner, converter and reducer
//! functions (Lambda handlers over the payload types of `csvlake_contract::run`), over the embedded S3
//! endpoint. The ResultWriter files are checked on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csvlake_cli::local::{LocalBucket, LocalS3};
use csvlake_contract::payload::{BatchResult, ConvertBatch, FileRef, FileResult, FileStatus};
use csvlake_contract::run::{
    ChildExecution, ConformBatch, ConformPlan, ManifestBatch, Mode, ObjectLocation, Phase, Plan, PlanRequest,
    ReduceRequest, ResultManifest, ResultsLocation, names, run_key,
};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};

use csvlake_cli::local::pipeline::VARIABLES;
use csvlake_contract::deployment::{
    CONVERTER_SUBSTITUTION as CONVERTER, PLANNER_SUBSTITUTION as PLANNER, REDUCER_SUBSTITUTION as REDUCER,
};
use csvlake_statemachine::{
    DEFINITION, Definition, ExecutionStatus, Executor, Function, HistoryEvent, Invocation, TaskError, lambda,
    local_function_arn, local_substitutions,
};

const LAKE: &str = "lake";

/// How the fakes behave.
struct Options {
    /// Batches whose conversion fails with `csvlake.Internal`.
    failing: Vec<u64>,
    /// Batches whose conversion fails with `csvlake.Transient` this many times first.
    transient: Vec<(u64, u32)>,
    /// Batches whose conversion fails with this error type (`csvlake.Deadline`,
    /// `Lambda.TooManyRequestsException`…) this many times first.
    raising: Vec<(u64, &'static str, u32)>,
    /// Batches whose conversion takes a minute.
    slow: Vec<u64>,
    /// The converter function's timeout.
    converter_timeout: Option<Duration>,
    /// Whether the planner writes the manifest.
    write_manifest: bool,
    /// What the reducer answers for `exceeded_tolerance`.
    exceeded: bool,
    /// Whether the reducer's Join phase plans a conform of the run's first file.
    conform: bool,
    results_per_file: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            failing: Vec::new(),
            transient: Vec::new(),
            raising: Vec::new(),
            slow: Vec::new(),
            converter_timeout: None,
            write_manifest: true,
            exceeded: false,
            conform: false,
            results_per_file: 1000,
        }
    }
}

/// The converter's bookkeeping.
#[derive(Default)]
struct Converter {
    calls: Mutex<Vec<Value>>,
    /// The deadline of each call's Lambda context, in milliseconds since the epoch.
    deadlines: Mutex<Vec<u64>>,
    running: AtomicUsize,
    peak: AtomicUsize,
    /// Calls whose future was dropped before they finished.
    dropped: AtomicUsize,
    failing: Vec<u64>,
    transient: Mutex<BTreeMap<u64, u32>>,
    raising: Mutex<BTreeMap<u64, (&'static str, u32)>>,
    slow: Vec<u64>,
}

/// Counts a call as dropped unless it finished.
struct Unfinished<'a>(&'a AtomicUsize, bool);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Converter {
    async fn convert(&self, batch: ConvertBatch) -> Result<BatchResult, Diagnostic> {
        let mut unfinished = Unfinished(&self.dropped, false);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let slow = batch.batch.is_some_and(|b| self.slow.contains(&b));
        tokio::time::sleep(Duration::from_millis(if slow { 60_000 } else { 30 })).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        unfinished.1 = true;
        let index = batch.batch.ok_or_else(|| engine(csvlake_engine::Error::Internal("no batch index".into())))?;
        if let Some((error_type, left)) = self.raising.lock().unwrap().get_mut(&index)
            && *left > 0
        {
            *left -= 1;
            let error_message = format!("batch {index}: {error_type}");
            return Err(Diagnostic { error_type: (*error_type).into(), error_message });
        }
        self.convert_batch(index, batch).map_err(engine)
    }

    fn convert_batch(&self, index: u64, batch: ConvertBatch) -> csvlake_engine::Result<BatchResult> {
        if let Some(left) = self.transient.lock().unwrap().get_mut(&index)
            && *left > 0
        {
            *left -= 1;
            return Err(csvlake_engine::Error::Transient(format!("batch {index} throttled")));
        }
        if self.failing.contains(&index) {
            return Err(csvlake_engine::Error::Internal(format!("batch {index} is broken")));
        }
        let files = batch
            .files
            .iter()
            .map(|f| FileResult {
                dialect: None,
                etag: None,
                schema: None,
                key: f.key.clone(),
                status: FileStatus::Converted,
                rows: 1,
                bytes_in: f.size,
                outputs: Vec::new(),
                millis: 1,
                error: None,
            })
            .collect();
        Ok(BatchResult { files })
    }
}

/// How the Lambda runtime reports an engine error of the converter.
fn engine(e: csvlake_engine::Error) -> Diagnostic {
    Diagnostic::from(csvlake_contract::BatchError::Engine(e))
}

/// Records each raw payload, then calls the Lambda handler.
struct Recording {
    converter: Arc<Converter>,
    handler: Arc<dyn Function>,
}

#[async_trait::async_trait]
impl Function for Recording {
    async fn invoke(&self, payload: Value) -> Result<Value, TaskError> {
        self.invoke_with(payload, &Invocation::new(None)).await
    }

    async fn invoke_with(&self, payload: Value, invocation: &Invocation) -> Result<Value, TaskError> {
        self.converter.calls.lock().unwrap().push(payload.clone());
        self.handler.invoke_with(payload, invocation).await
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    _s3: LocalS3,
    lake: PathBuf,
    executor: Executor,
    converter: Arc<Converter>,
    plans: Arc<Mutex<Vec<Plan>>>,
    reduced: Arc<Mutex<Vec<ReduceRequest>>>,
}

async fn plan(s3: &aws_sdk_s3::Client, request: PlanRequest, write_manifest: bool) -> csvlake_engine::Result<Plan> {
    let input = request.input;
    let job = input.job()?;
    let batches: Vec<ManifestBatch> = input
        .keys
        .iter()
        .enumerate()
        .map(|(i, key)| ManifestBatch {
            batch: i as u64,
            files: vec![FileRef { key: key.clone(), size: 100 + i as u64, etag: None }],
        })
        .collect();
    let manifest =
        ObjectLocation { bucket: LAKE.into(), key: run_key(&job.output.prefix, &request.run_id, names::MANIFEST) };
    if write_manifest && !batches.is_empty() {
        s3.put_object()
            .bucket(LAKE)
            .key(&manifest.key)
            .body(serde_json::to_vec(&batches)?.into())
            .send()
            .await
            .map_err(|e| csvlake_engine::Error::Transient(format!("{e:?}")))?;
    }
    Ok(Plan {
        run_id: request.run_id.clone(),
        mode: Mode::Keys,
        incremental: false,
        files: batches.len() as u64,
        bytes: batches.iter().flat_map(|b| &b.files).map(|f| f.size).sum(),
        batches: batches.len() as u64,
        skipped: 0,
        rejected: 0,
        orphaned: 0,
        delete_orphans: false,
        tables: None,
        orphans: None,
        manifest,
        rejected_results: None,
        results: ResultsLocation {
            bucket: LAKE.into(),
            prefix: run_key(&job.output.prefix, &request.run_id, names::RESULTS),
        },
        batch: input.batch_limits()?,
        max_concurrency: input.max_concurrency()?,
        requested_max_concurrency: None,
        tolerated_failure_percentage: input.tolerated_failure_percentage()?,
        conform_limit: csvlake_contract::run::DEFAULT_CONFORM_LIMIT,
        catalog: None,
        job,
    })
}

async fn harness(options: Options) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join(LAKE);
    let s3 = LocalS3::start(&[LocalBucket { name: LAKE.into(), dir: lake.clone() }]).await.unwrap();
    let client = s3.client();

    let plans = Arc::new(Mutex::new(Vec::new()));
    let planner = {
        let (client, plans) = (client.clone(), Arc::clone(&plans));
        let write = options.write_manifest;
        lambda(move |event: LambdaEvent<PlanRequest>| {
            let (client, plans) = (client.clone(), Arc::clone(&plans));
            async move {
                let plan = plan(&client, event.payload, write).await?;
                plans.lock().unwrap().push(plan.clone());
                Ok::<_, csvlake_contract::BatchError>(plan)
            }
        })
    };
    let converter = Arc::new(Converter {
        failing: options.failing,
        transient: Mutex::new(options.transient.into_iter().collect()),
        raising: Mutex::new(options.raising.into_iter().map(|(batch, error, n)| (batch, (error, n))).collect()),
        slow: options.slow,
        ..Converter::default()
    });
    let handler = {
        let converter = Arc::clone(&converter);
        lambda(move |event: LambdaEvent<ConvertBatch>| {
            let converter = Arc::clone(&converter);
            converter.deadlines.lock().unwrap().push(event.context.deadline);
            async move { converter.convert(event.payload).await }
        })
    };
    let reduced = Arc::new(Mutex::new(Vec::new()));
    let reducer = {
        let reduced = Arc::clone(&reduced);
        let exceeded = options.exceeded;
        let (client, conform) = (client.clone(), options.conform);
        lambda(move |event: LambdaEvent<ReduceRequest>| {
            let (reduced, client) = (Arc::clone(&reduced), client.clone());
            async move {
                if event.payload.phase == Phase::Join {
                    let answer = join(&client, &event.payload, conform).await?;
                    reduced.lock().unwrap().push(event.payload);
                    return Ok(serde_json::to_value(answer).map_err(csvlake_engine::Error::from)?);
                }
                // The summary's fields the definition reads, as the reducer fills them.
                let exceeded = exceeded || event.payload.convert_error.is_some();
                let mut summary = json!({"run_id": event.payload.plan.run_id, "exceeded_tolerance": exceeded});
                if let Some(e) = &event.payload.convert_error {
                    summary["map_error"] = serde_json::to_value(e).map_err(csvlake_engine::Error::from)?;
                }
                reduced.lock().unwrap().push(event.payload);
                Ok::<_, csvlake_contract::BatchError>(summary)
            }
        })
    };

    let definition = Definition::parse(DEFINITION, &local_substitutions(&VARIABLES)).unwrap();
    let mut executor = Executor::new(definition, client)
        .with_delay_scale(0.0)
        .with_results_per_file(options.results_per_file)
        .with_function(local_function_arn(PLANNER), planner)
        .with_function(
            local_function_arn(CONVERTER),
            Arc::new(Recording { converter: Arc::clone(&converter), handler }),
        )
        .with_function(local_function_arn(REDUCER), reducer);
    if let Some(timeout) = options.converter_timeout {
        executor = executor.with_function_timeout(local_function_arn(CONVERTER), timeout);
    }
    Harness { _dir: dir, _s3: s3, lake, executor, converter, plans, reduced }
}

/// The Join phase: no conform, or one of the run's first file with the schema `s1`.
async fn join(s3: &aws_sdk_s3::Client, request: &ReduceRequest, conform: bool) -> csvlake_engine::Result<ConformPlan> {
    let plan = &request.plan;
    let out = &plan.job.output;
    let manifest =
        ObjectLocation { bucket: LAKE.into(), key: run_key(&out.prefix, &plan.run_id, names::CONFORM_MANIFEST) };
    let batches = if conform {
        let files = vec![FileRef { key: "in/0.csv".into(), size: 100, etag: None }];
        let items = vec![ConformBatch { batch: 0, files, schema: "s1".into() }];
        s3.put_object()
            .bucket(LAKE)
            .key(&manifest.key)
            .body(serde_json::to_vec(&items)?.into())
            .send()
            .await
            .map_err(|e| csvlake_engine::Error::Transient(format!("{e:?}")))?;
        1
    } else {
        0
    };
    Ok(ConformPlan {
        batches,
        files: batches,
        earlier: 0,
        manifest,
        results: ResultsLocation {
            bucket: LAKE.into(),
            prefix: run_key(&out.prefix, &plan.run_id, names::CONFORM_RESULTS),
        },
        drift: None,
        limited: None,
    })
}

/// An execution input in mode `keys`, one batch per key.
fn input(keys: usize, max_concurrency: u32, tolerated: f64) -> Value {
    json!({
        "input": {"bucket": "raw", "prefix": "in/"},
        "output": {"bucket": LAKE, "prefix": "out/"},
        "mode": "keys",
        "keys": (0..keys).map(|i| format!("in/{i}.csv")).collect::<Vec<_>>(),
        "max_concurrency": max_concurrency,
        "tolerated_failure_percentage": tolerated,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ResultWriter output of one Map Run, read from disk.
struct Results {
    manifest: ResultManifest,
    succeeded: Vec<Vec<ChildExecution>>,
    failed: Vec<Vec<ChildExecution>>,
}

impl Harness {
    /// Reads the manifest at `key` and every results file it lists, checking the sizes.
    fn results(&self, key: &str) -> Results {
        let manifest: ResultManifest = read_json(&self.lake.join(key));
        assert_eq!(manifest.destination_bucket, LAKE);
        assert!(manifest.result_files.pending.is_empty());
        let base = key.strip_suffix("/manifest.json").unwrap();
        let read = |files: &[csvlake_contract::run::ResultFile], status: &str| {
            files
                .iter()
                .enumerate()
                .map(|(n, file)| {
                    assert_eq!(file.key, format!("{base}/{status}_{n}.json"));
                    let path = self.lake.join(&file.key);
                    assert_eq!(std::fs::metadata(&path).unwrap().len(), file.size, "{}", file.key);
                    read_json::<Vec<ChildExecution>>(&path)
                })
                .collect::<Vec<_>>()
        };
        Results {
            succeeded: read(&manifest.result_files.succeeded, "SUCCEEDED"),
            failed: read(&manifest.result_files.failed, "FAILED"),
            manifest,
        }
    }

    /// The one Map Run manifest under the run's results prefix.
    fn only_manifest(&self, run_id: &str) -> String {
        let prefix = run_key("out/", run_id, names::RESULTS);
        let runs: Vec<_> =
            std::fs::read_dir(self.lake.join(&prefix)).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        format!("{prefix}/{}/manifest.json", runs[0].to_string_lossy())
    }

    fn converter_calls(&self) -> Vec<Value> {
        self.converter.calls.lock().unwrap().clone()
    }

    /// The Reduce phase's request, after the Join phase's.
    fn reduced(&self) -> ReduceRequest {
        let reduced = self.reduced.lock().unwrap();
        let phases: Vec<Phase> = reduced.iter().map(|r| r.phase).collect();
        assert_eq!(phases, [Phase::Join, Phase::Reduce]);
        reduced[1].clone()
    }
}

/// The batch index of a results entry, from its Input.
fn batch_of(entry: &ChildExecution) -> u64 {
    let input: ConvertBatch = serde_json::from_str(&entry.input).unwrap();
    input.batch.unwrap()
}

fn entered(history: &[HistoryEvent], state: &str) -> bool {
    history.iter().any(|e| matches!(e, HistoryEvent::StateEntered { state: s } if s == state))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_converts_every_batch_and_hands_the_results_to_the_reducer() {
    let h = harness(Options { results_per_file: 2, ..Options::default() }).await;
    // Executions are Send and 'static: they run on spawned tasks.
    let executor = h.executor.clone();
    let execution = tokio::spawn(async move { executor.execute("run-1", input(5, 2, 0.0)).await }).await.unwrap();
    assert_eq!(execution.status, ExecutionStatus::Succeeded(json!({"run_id": "run-1", "exceeded_tolerance": false})));

    let plan = h.plans.lock().unwrap()[0].clone();
    assert_eq!(plan.run_id, "run-1");

    // Each converter call is the ItemSelector's {job, batch, files}, with the attempt counts.
    let mut calls = h.converter_calls();
    calls.sort_by_key(|c| c["batch"].as_u64());
    assert_eq!(calls.len(), 5);
    for (i, call) in calls.iter().enumerate() {
        let keys: Vec<&String> = call.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["batch", "files", "job", "redrive_count", "retry_count"]);
        assert_eq!((call["retry_count"].as_u64(), call["redrive_count"].as_u64()), (Some(0), Some(0)));
        assert_eq!(call["batch"], json!(i));
        assert_eq!(call["job"], serde_json::to_value(&plan.job).unwrap());
        assert_eq!(call["files"], json!([{"key": format!("in/{i}.csv"), "size": 100 + i}]));
    }
    assert_eq!(h.converter.peak.load(Ordering::SeqCst), 2, "MaxConcurrencyPath is respected");

    // The reducer gets the plan and the Map's output.
    let reduced = h.reduced();
    assert_eq!(reduced.plan, plan);
    assert!(reduced.convert_error.is_none());
    let convert = reduced.convert.unwrap();
    assert_eq!(convert.result_writer_details.bucket, LAKE);
    let prefix = format!("{}/", plan.results.prefix);
    assert!(convert.result_writer_details.key.starts_with(&prefix), "{}", convert.result_writer_details.key);
    assert!(convert.map_run_arn.starts_with("arn:aws:states:local:000000000000:mapRun:csvlake-pipeline/Convert:"));

    // The ResultWriter files: 5 successes split 2 + 2 + 1, no failures.
    let results = h.results(&convert.result_writer_details.key);
    assert_eq!(results.manifest.map_run_arn, convert.map_run_arn);
    assert_eq!(results.succeeded.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert!(results.failed.is_empty());
    let mut batches = Vec::new();
    for entry in results.succeeded.iter().flatten() {
        assert_eq!(entry.status, "SUCCEEDED");
        assert_eq!(entry.redrive_status, "NOT_REDRIVABLE");
        assert!(entry.input_details.unwrap().included && entry.output_details.unwrap().included);
        assert!(entry.execution_arn.ends_with(&format!(":{}", entry.name)));
        assert!(entry.state_machine_arn.ends_with(":stateMachine:csvlake-pipeline/Convert"));
        assert!(entry.error.is_none() && entry.stop_date.is_some());
        assert!(chrono::DateTime::parse_from_rfc3339(&entry.start_date).is_ok());
        let output: BatchResult = serde_json::from_str(entry.output.as_deref().unwrap()).unwrap();
        assert_eq!(output.files.len(), 1);
        batches.push(batch_of(entry));
    }
    assert_eq!(batches, [0, 1, 2, 3, 4], "entries are in item order");

    let h = &execution.history;
    assert!(h.iter().any(|e| matches!(e, HistoryEvent::MapRunStarted { items: 5, .. })));
    assert!(h.iter().any(|e| matches!(e, HistoryEvent::MapRunEnded { succeeded: 5, failed: 0, not_started: 0, .. })));
    assert!(entered(h, "Reduce") && entered(h, "Done") && !entered(h, "ToleranceExceeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_phase_plans_a_conform_map_whose_results_reach_the_reducer() {
    let h = harness(Options { conform: true, ..Options::default() }).await;
    let execution = h.executor.execute("run-c", input(3, 2, 0.0)).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded(json!({"run_id": "run-c", "exceeded_tolerance": false})));
    let hist = &execution.history;
    for state in ["Convert", "ToJoin", "Join", "AnythingToConform", "Conform", "ToReduce", "Reduce", "Done"] {
        assert!(entered(hist, state), "{state} not entered");
    }
    // Three Convert batches, then the Conform batch with the schema its item names.
    let calls = h.converter_calls();
    assert_eq!(calls.len(), 4);
    let conform: Vec<&Value> = calls.iter().filter(|c| c.get("schema").is_some()).collect();
    assert_eq!(conform.len(), 1);
    assert_eq!(conform[0]["schema"], json!("s1"));
    assert_eq!(conform[0]["files"], json!([{"key": "in/0.csv", "size": 100}]));
    assert_eq!(conform[0]["batch"], json!(0));

    // The Reduce phase gets the Join phase's answer and the Conform Map's output.
    let reduced = h.reduced();
    let join = reduced.join.clone().expect("the join");
    assert_eq!((join.batches, join.drift, join.limited), (1, None, None));
    let output = reduced.conform.expect("the Conform Map's output");
    let prefix = format!("{}/", join.results.prefix);
    assert!(output.result_writer_details.key.starts_with(&prefix), "{}", output.result_writer_details.key);
    assert!(output.map_run_arn.contains("csvlake-pipeline/Conform:"), "{}", output.map_run_arn);
    let results = h.results(&output.result_writer_details.key);
    assert_eq!(results.succeeded.iter().map(Vec::len).sum::<usize>(), 1);
    assert!(reduced.convert.is_some() && reduced.conform_error.is_none() && reduced.join_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_bounds_the_children_and_zero_means_unbounded() {
    let h = harness(Options::default()).await;
    let execution = h.executor.execute("bounded", input(9, 3, 0.0)).await;
    assert!(execution.output().is_some(), "{:?}", execution.status);
    assert_eq!(h.converter.peak.load(Ordering::SeqCst), 3);

    h.converter.peak.store(0, Ordering::SeqCst);
    let execution = h.executor.execute("unbounded", input(6, 0, 0.0)).await;
    assert!(execution.output().is_some(), "{:?}", execution.status);
    assert_eq!(h.converter.peak.load(Ordering::SeqCst), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_run_at_once_on_one_executor() {
    let h = harness(Options::default()).await;
    let runs = ["a", "b", "c"].map(|name| {
        let executor = h.executor.clone();
        tokio::spawn(async move { executor.execute(name, input(2, 1, 0.0)).await })
    });
    for (run, name) in runs.into_iter().zip(["a", "b", "c"]) {
        let execution = run.await.unwrap();
        assert_eq!(execution.output().unwrap()["run_id"], json!(name));
    }
    assert_eq!(h.converter_calls().len(), 6);
    assert_eq!(h.reduced.lock().unwrap().len(), 6, "a Join and a Reduce per run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_converter_failures_are_retried_within_the_child() {
    let h = harness(Options { transient: vec![(1, 2)], ..Options::default() }).await;
    let execution = h.executor.execute("retry", input(3, 3, 0.0)).await;
    assert!(execution.output().is_some(), "{:?}", execution.status);
    assert_eq!(h.converter_calls().len(), 5);
    let child_retries: Vec<(u64, u32)> = execution
        .history
        .iter()
        .filter_map(|e| match e {
            HistoryEvent::MapItem { state, index, event } if state == "Convert" => match event.as_ref() {
                HistoryEvent::RetryScheduled { state, attempt, .. } if state == "ConvertBatch" => {
                    Some((*index, *attempt))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(child_retries, [(1, 1), (1, 2)]);
    let reduced = h.reduced();
    let results = h.results(&reduced.convert.unwrap().result_writer_details.key);
    assert_eq!(results.succeeded.concat().iter().map(batch_of).collect::<Vec<_>>(), [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_tolerance_is_caught_reduced_and_the_results_are_still_written() {
    let h = harness(Options { failing: vec![1], ..Options::default() }).await;
    // One at a time: batch 1 fails, so batches 2..5 never start.
    let execution = h.executor.execute("exceeded", input(6, 1, 0.0)).await;
    // Reported, then failed as a tolerance matter (not a Map failure), with the Map's cause in
    // the reducer's input.
    let ended = execution.error().unwrap_or_else(|| panic!("{:?}", execution.status)).clone();
    assert_eq!(ended.error, "csvlake.ToleranceExceeded");
    assert!(entered(&execution.history, "ToleranceExceeded") && !entered(&execution.history, "MapFailed"));
    assert_eq!(h.converter_calls().len(), 2, "csvlake.Internal is not retried and nothing starts after it");
    assert!(execution.history.contains(&HistoryEvent::Caught {
        state: "Convert".into(),
        error: "States.ExceededToleratedFailureThreshold".into(),
        next: "ToJoin".into()
    }));
    assert!(execution.history.contains(&HistoryEvent::MapItemFailed {
        state: "Convert".into(),
        index: 1,
        error: "csvlake.Internal".into()
    }));
    assert!(
        execution.history.iter().any(|e| matches!(
            e,
            HistoryEvent::MapRunEnded { succeeded: 1, failed: 1, aborted: 0, not_started: 4, .. }
        ))
    );

    let reduced = h.reduced();
    assert!(reduced.convert.is_none());
    let error = reduced.convert_error.unwrap();
    assert_eq!(error.error, "States.ExceededToleratedFailureThreshold");
    assert!(error.cause.starts_with("The specified tolerated failure threshold was exceeded"), "{}", error.cause);

    let results = h.results(&h.only_manifest("exceeded"));
    assert!(error.cause.contains(&results.manifest.map_run_arn), "{}", error.cause);
    assert_eq!(results.succeeded.concat().iter().map(batch_of).collect::<Vec<_>>(), [0]);
    let failed = results.failed.concat();
    assert_eq!(failed.len(), 1);
    assert_eq!(batch_of(&failed[0]), 1);
    assert_eq!(failed[0].status, "FAILED");
    assert_eq!(failed[0].error.as_deref(), Some("csvlake.Internal"));
    assert!(failed[0].output.is_none());
    let cause: Value = serde_json::from_str(failed[0].cause.as_deref().unwrap()).unwrap();
    assert_eq!(cause, json!({"errorType": "csvlake.Internal", "errorMessage": "internal: batch 1 is broken"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_within_the_tolerance_succeed_and_the_reducer_decides_the_outcome() {
    let h = harness(Options { failing: vec![3], exceeded: true, results_per_file: 4, ..Options::default() }).await;
    let execution = h.executor.execute("within", input(10, 4, 10.0)).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed(TaskError::new(
            "csvlake.ToleranceExceeded",
            "More files or batches failed than tolerated_failure_percentage allows. The run report lists them, and \
             failed-keys.json reprocesses them."
        ))
    );
    assert!(entered(&execution.history, "ToleranceExceeded"));
    let reduced = h.reduced();
    assert!(reduced.convert_error.is_none());
    let results = h.results(&reduced.convert.unwrap().result_writer_details.key);
    assert_eq!(results.succeeded.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 1]);
    assert_eq!(results.failed.concat().iter().map(batch_of).collect::<Vec<_>>(), [3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_batches_go_straight_to_the_join_and_reduce() {
    let h = harness(Options::default()).await;
    let execution = h.executor.execute("empty", input(0, 2, 5.0)).await;
    assert!(execution.output().is_some(), "{:?}", execution.status);
    assert!(!entered(&execution.history, "Convert"));
    assert!(h.converter_calls().is_empty());
    let reduced = h.reduced();
    assert_eq!(reduced.plan.batches, 0);
    assert!(reduced.convert.is_none() && reduced.convert_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_manifest_is_caught_as_item_reader_failed_and_ends_in_map_failed() {
    // The reducer's verdict on the tolerance does not decide a run whose Map failed.
    let h = harness(Options { write_manifest: false, exceeded: true, ..Options::default() }).await;
    let execution = h.executor.execute("unreadable", input(3, 2, 5.0)).await;
    assert!(h.converter_calls().is_empty());
    let error = h.reduced().convert_error.unwrap();
    assert_eq!(error.error, "States.ItemReaderFailed");
    assert!(error.cause.contains("out/_runs/unreadable/manifest.json"), "{}", error.cause);
    assert_eq!(execution.status, ExecutionStatus::Failed(TaskError::new("csvlake.MapFailed", error.cause)));
    assert!(entered(&execution.history, "Reduce") && entered(&execution.history, "MapFailed"));
    assert!(!entered(&execution.history, "WithinTolerance"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_tolerance_aborts_the_running_batches_and_writes_them_as_aborted() {
    // Three at a time: batch 0 fails at once while 1 and 2 take a minute; 3..5 never start.
    let h = harness(Options { failing: vec![0], slow: vec![1, 2], ..Options::default() }).await;
    let started = std::time::Instant::now();
    let execution = h.executor.execute("aborted", input(6, 3, 0.0)).await;
    assert!(started.elapsed() < Duration::from_secs(20), "the running batches were not aborted");
    assert_eq!(
        execution.error().map(|e| e.error.as_str()),
        Some("csvlake.ToleranceExceeded"),
        "{:?}",
        execution.status
    );
    assert_eq!(h.converter_calls().len(), 3, "no batch starts after the Map Run failed");
    assert_eq!(h.converter.dropped.load(Ordering::SeqCst), 2, "the running calls were dropped");
    let h_ = &execution.history;
    assert!(
        h_.iter().any(|e| matches!(
            e,
            HistoryEvent::MapRunEnded { succeeded: 0, failed: 1, aborted: 2, not_started: 3, .. }
        ))
    );
    for index in [1, 2] {
        assert!(h_.contains(&HistoryEvent::MapItemAborted { state: "Convert".into(), index }));
    }

    let error = h.reduced().convert_error.unwrap();
    assert_eq!(error.error, "States.ExceededToleratedFailureThreshold");
    assert!(error.cause.contains("2 running were aborted and 3 never started"), "{}", error.cause);
    // FAILED_n.json holds the failed batch and the aborted ones (status ABORTED, no error);
    // the batches never started have no entry.
    let results = h.results(&h.only_manifest("aborted"));
    assert!(results.succeeded.is_empty());
    let failed = results.failed.concat();
    let statuses: Vec<(u64, &str)> = failed.iter().map(|e| (batch_of(e), e.status.as_str())).collect();
    assert_eq!(statuses, [(0, "FAILED"), (1, "ABORTED"), (2, "ABORTED")]);
    for aborted in &failed[1..] {
        assert!(aborted.error.is_none() && aborted.cause.is_none() && aborted.output.is_none(), "{aborted:?}");
        assert!(aborted.stop_date.is_some() && aborted.execution_arn.ends_with(&aborted.name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_and_lambda_throttling_are_retried_within_the_child() {
    let raising = vec![(0, "csvlake.Deadline", 3), (1, "Lambda.TooManyRequestsException", 5)];
    let h = harness(Options { raising, ..Options::default() }).await;
    let execution = h.executor.execute("retried", input(2, 2, 0.0)).await;
    assert!(execution.output().is_some(), "{:?}", execution.status);
    let mut retries: Vec<(u64, u32)> = execution
        .history
        .iter()
        .filter_map(|e| match e {
            HistoryEvent::MapItem { index, event, .. } => match event.as_ref() {
                HistoryEvent::RetryScheduled { state, attempt, .. } if state == "ConvertBatch" => {
                    Some((*index, *attempt))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    retries.sort_unstable();
    assert_eq!(retries, [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]);
    // Each retry tells the converter its count, so that it converts only the files left.
    let counts: Vec<(u64, u64)> = h
        .converter_calls()
        .iter()
        .map(|c| (c["batch"].as_u64().unwrap(), c["retry_count"].as_u64().unwrap()))
        .collect();
    for batch in [0, 1] {
        let mine: Vec<u64> = counts.iter().filter(|(b, _)| *b == batch).map(|(_, n)| *n).collect();
        let expected: Vec<u64> = (0..=[3, 5][batch as usize]).collect();
        assert_eq!(mine, expected, "batch {batch}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converter_past_its_timeout_is_stopped_and_fails_its_batch_as_sandbox_timedout() {
    let timeout = Duration::from_millis(800);
    let options = Options { slow: vec![1], converter_timeout: Some(timeout), ..Options::default() };
    let h = harness(options).await;
    let before = std::time::SystemTime::now();
    let execution = h.executor.execute("timeout", input(2, 2, 50.0)).await;
    assert!(execution.output().is_some(), "within the tolerance: {:?}", execution.status);
    assert_eq!(h.converter.dropped.load(Ordering::SeqCst), 1, "the slow call was dropped");
    // The handlers were told the deadline: the invocation's start plus the timeout.
    let since = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for deadline in h.converter.deadlines.lock().unwrap().iter() {
        let (low, high) = (since(before) + 800, since(std::time::SystemTime::now()) + 800);
        assert!((low..=high).contains(deadline), "{low} <= {deadline} <= {high}");
    }
    let results = h.results(&h.reduced().convert.unwrap().result_writer_details.key);
    assert_eq!(results.succeeded.concat().iter().map(batch_of).collect::<Vec<_>>(), [0]);
    let failed = results.failed.concat();
    assert_eq!((batch_of(&failed[0]), failed[0].status.as_str()), (1, "FAILED"));
    assert_eq!(failed[0].error.as_deref(), Some("Sandbox.Timedout"));
    let cause: Value = serde_json::from_str(failed[0].cause.as_deref().unwrap()).unwrap();
    assert_eq!(cause["errorType"], "Sandbox.Timedout");
    let message = cause["errorMessage"].as_str().unwrap();
    assert!(message.starts_with("RequestId: ") && message.ends_with(" Error: Task timed out after 0.80 seconds"));
}
