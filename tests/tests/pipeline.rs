//! The whole pipeline end to end: statemachine/pipeline.asl.json executed by the local
//! executor, with the planner, converter and reducer handlers, through the embedded S3
//! endpoint. Every check reads the objects the run wrote, from the output directory.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::retry::RetryConfig;
use aws_sdk_s3::Client;
use csvlake_cli::local::{LocalBucket, LocalS3};
use csvlake_contract::payload::{FileResult, FileStatus};
use csvlake_contract::run::{Mode, Report, RunInput, RunStatus};
use csvlake_converter::Converter;
use csvlake_statemachine::{Execution, ExecutionStatus, HistoryEvent};
use csvlake_tests::{FaultyGets, Harness, INPUT_BUCKET, OUTPUT_BUCKET};
use s3s::s3_error;
use serde_json::{Value, json};

fn scan_input(extra: Value) -> Value {
    let mut input = json!({
        "input": {"bucket": INPUT_BUCKET, "prefix": "landing/"},
        "output": {"bucket": OUTPUT_BUCKET, "prefix": "converted/"},
    });
    if let (Some(i), Value::Object(extra)) = (input.as_object_mut(), extra) {
        i.extend(extra);
    }
    input
}

async fn execute(client: &Client, run_id: &str, input: Value) -> Execution {
    let converter = Arc::new(Converter::new(client.clone()));
    let executor =
        csvlake_cli::local::pipeline::executor(client.clone(), converter).expect("definition").with_delay_scale(0.0);
    executor.execute(run_id, input).await
}

/// What a run left under `_runs/<run_id>/` of the output directory.
struct RunObjects {
    report: Report,
    lines: Vec<FileResult>,
    failed_keys: Option<RunInput>,
}

fn run_objects(output: &std::path::Path, run_id: &str) -> RunObjects {
    let dir = output.join("converted/_runs").join(run_id);
    let read = |name: &str| std::fs::read_to_string(dir.join(name));
    let report = serde_json::from_str(&read("report.json").expect("report.json")).expect("a report");
    let lines = read("files.jsonl")
        .expect("files.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a result line"))
        .collect();
    let failed_keys = read("failed-keys.json").ok().map(|t| serde_json::from_str(&t).expect("an execution input"));
    RunObjects { report, lines, failed_keys }
}

/// Output files (not the run's own objects), relative to the output directory.
fn outputs(h: &Harness) -> Vec<String> {
    h.output_files().into_iter().filter(|f| !f.starts_with("converted/_runs/")).collect()
}

fn keys_with(lines: &[FileResult], status: FileStatus) -> BTreeSet<&str> {
    lines.iter().filter(|r| r.status == status).map(|r| r.key.as_str()).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

fn put_mixed_prefix(h: &Harness) {
    h.put("landing/2026/01/a.csv", "id,name\n1,ann\n2,bob\n");
    h.put("landing/2026/02/b.csv.gz", gzip(b"id,v\n1,1.5\n2,2.5\n3,3.5\n"));
    h.put("landing/2026/c.tsv", "x\ty\ntrue\t2026-01-02\n");
    h.put("landing/bad/ragged.csv", "a,b\n1,2\n3\n");
    h.put("landing/bad/empty.csv", "");
    h.put("landing/notes.txt", "not an input");
    h.put("landing/2026/data.json", "{}");
    h.put("other/x.csv", "outside,the prefix\n1,2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_then_an_incremental_run_then_a_reprocess_of_the_fixed_files() {
    let h = Harness::start().await;
    put_mixed_prefix(&h);
    let client = h.converter.client().clone();

    // 1. A scan: good, bad, gzip, nested; non-CSV keys and other prefixes ignored. Two of five
    // files fail, more than the default 5% tolerance: the execution fails, after reporting.
    let first = execute(&client, "first", scan_input(json!({}))).await;
    match &first.status {
        ExecutionStatus::Failed(e) => assert_eq!(e.error, "csvlake.ToleranceExceeded", "{e:?}"),
        other => panic!("expected the tolerance to fail the run: {other:?}"),
    }
    let run = run_objects(&h.output, "first");
    let t = &run.report.totals;
    assert_eq!((t.files, t.converted, t.failed, t.skipped), (5, 3, 2, 0), "{t:?}");
    assert_eq!(t.rows, 2 + 3 + 1);
    assert_eq!(run.report.status, RunStatus::Failed);
    let by_kind: Vec<(&str, u64)> = run.report.failures_by_kind.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(by_kind, [("bad_input.empty", 1), ("bad_input.ragged_row", 1)]);
    // Files by dialect: the empty file has none; the ragged one was read as CSV before it failed.
    let dialects: Vec<(char, &str, bool, u64)> = run
        .report
        .dialects
        .iter()
        .map(|d| (d.dialect.delimiter, d.dialect.compression.as_str(), d.dialect.header, d.files))
        .collect();
    assert_eq!(dialects, [(',', "none", true, 2), ('\t', "none", true, 1), (',', "gzip", true, 1)]);
    let ragged = run.report.failed.iter().find(|f| f.key == "landing/bad/ragged.csv").expect("ragged.csv reported");
    assert_eq!(ragged.error.line, Some(3), "{:?}", ragged.error);
    assert_eq!(run.lines.len(), 5);
    assert_eq!(
        keys_with(&run.lines, FileStatus::Converted),
        BTreeSet::from(["landing/2026/01/a.csv", "landing/2026/02/b.csv.gz", "landing/2026/c.tsv"])
    );
    let failed_keys = run.failed_keys.expect("failed-keys.json");
    assert_eq!(failed_keys.mode, Mode::Keys);
    assert_eq!(failed_keys.keys, ["landing/bad/empty.csv", "landing/bad/ragged.csv"]);
    assert_eq!(
        outputs(&h),
        [
            "converted/avro/2026/01/a.avro",
            "converted/avro/2026/02/b.avro",
            "converted/avro/2026/c.avro",
            "converted/parquet/2026/01/a.parquet",
            "converted/parquet/2026/02/b.parquet",
            "converted/parquet/2026/c.parquet",
        ],
        "outputs for the good files only"
    );
    let results: Vec<String> = h.output_files().into_iter().filter(|f| f.contains("/results/")).collect();
    assert!(results.iter().any(|f| f.ends_with("/manifest.json")), "{results:?}");
    assert!(results.iter().any(|f| f.contains("/SUCCEEDED_0.json")), "{results:?}");

    // 2. Incremental: the converted files are up to date, nothing is converted again.
    let modified = |h: &Harness| {
        outputs(h)
            .iter()
            .map(|f| std::fs::metadata(h.output.join(f)).and_then(|m| m.modified()).ok())
            .collect::<Vec<_>>()
    };
    let before = modified(&h);
    let second =
        execute(&client, "second", scan_input(json!({"incremental": true, "tolerated_failure_percentage": 100}))).await;
    assert!(matches!(second.status, ExecutionStatus::Succeeded(_)), "{:?}", second.status);
    let run = run_objects(&h.output, "second");
    let t = &run.report.totals;
    assert_eq!((t.converted, t.skipped, t.failed), (0, 3, 2), "{t:?}");
    assert_eq!(modified(&h), before, "no output was written again");

    // 3. The bad files are fixed; reprocessing the first run's failed keys converts exactly them.
    h.put("landing/bad/ragged.csv", "a,b\n1,2\n3,4\n");
    h.put("landing/bad/empty.csv", "a\n1\n");
    let report =
        json!({"mode": "report", "report": {"bucket": OUTPUT_BUCKET, "key": "converted/_runs/first/failed-keys.json"}});
    let third = execute(&client, "third", report).await;
    let summary = match &third.status {
        ExecutionStatus::Succeeded(summary) => summary.clone(),
        other => panic!("the reprocess run fails: {other:?}"),
    };
    assert_eq!(summary["totals"]["converted"], 2, "{summary}");
    let run = run_objects(&h.output, "third");
    assert_eq!(
        keys_with(&run.lines, FileStatus::Converted),
        BTreeSet::from(["landing/bad/empty.csv", "landing/bad/ragged.csv"])
    );
    assert_eq!(run.lines.len(), 2, "exactly the failed keys");
    assert!(run.failed_keys.is_none(), "nothing failed");
    assert!(outputs(&h).contains(&"converted/parquet/bad/ragged.parquet".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_keys_keep_the_outputs_where_a_scan_would() {
    let h = Harness::start().await;
    h.put("landing/dup.csv", "a\n1\n");
    h.put("landing/dup.tsv", "a\n2\n");
    let client = h.converter.client().clone();
    let scan = execute(&client, "scan", scan_input(json!({"tolerated_failure_percentage": 100}))).await;
    assert!(matches!(scan.status, ExecutionStatus::Succeeded(_)), "{:?}", scan.status);
    let run = run_objects(&h.output, "scan");
    assert_eq!(keys_with(&run.lines, FileStatus::Converted), BTreeSet::from(["landing/dup.csv"]));
    let before = std::fs::read(h.output.join("converted/parquet/dup.parquet")).expect("dup.parquet");

    let keys =
        json!({"mode": "keys", "keys": ["landing/dup.tsv", "landing/gone.csv"], "tolerated_failure_percentage": 100});
    let run_keys = execute(&client, "keys", scan_input(keys)).await;
    assert!(matches!(run_keys.status, ExecutionStatus::Succeeded(_)), "{:?}", run_keys.status);
    let run = run_objects(&h.output, "keys");
    let kinds: BTreeSet<(&str, &str)> =
        run.report.failed.iter().map(|f| (f.key.as_str(), f.error.kind.as_str())).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            ("landing/dup.tsv", "bad_input.output_collision"),
            ("landing/gone.csv", "bad_input.not_found")
        ])
    );
    let collision = run.report.failed.iter().find(|f| f.key == "landing/dup.tsv").expect("dup.tsv");
    assert!(collision.error.message.contains("landing/dup.csv"), "{}", collision.error.message);
    assert_eq!(std::fs::read(h.output.join("converted/parquet/dup.parquet")).expect("dup.parquet"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_a_sub_folder_writes_the_keys_a_scan_of_the_root_writes() {
    let h = Harness::start().await;
    h.put("landing/2026/a.csv", "v\n1\n");
    h.put("landing/2026/01/b.csv", "v\n2\n");
    h.put("landing/2026-old/c.csv", "v\n3\n");
    h.put("landing/2025/d.csv", "v\n4\n");
    let client = h.converter.client().clone();
    let output = |prefix: &str| json!({"bucket": OUTPUT_BUCKET, "prefix": prefix});
    let root = execute(&client, "root", scan_input(json!({"output": output("root/")}))).await;
    assert!(matches!(root.status, ExecutionStatus::Succeeded(_)), "{:?}", root.status);
    let input = json!({"bucket": INPUT_BUCKET, "prefix": "landing/", "scan": ["2026", "2026/01/"]});
    let backfill = execute(&client, "backfill", json!({"input": input, "output": output("backfill/")})).await;
    assert!(matches!(backfill.status, ExecutionStatus::Succeeded(_)), "{:?}", backfill.status);

    let under = |prefix: &str| -> BTreeSet<String> {
        h.output_files()
            .into_iter()
            .filter_map(|f| f.strip_prefix(prefix).map(str::to_owned))
            .filter(|f| !f.starts_with("_runs/") && !f.starts_with("_tables/"))
            .collect()
    };
    let from_root: BTreeSet<String> = under("root/").into_iter().filter(|f| f.contains("/2026/")).collect();
    assert_eq!(under("backfill/"), from_root, "the same keys, relative to the root");
    assert_eq!(from_root.len(), 4, "{from_root:?}: a and b, in two formats; 2026-old is not under 2026/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_without_its_slash_is_a_folder() {
    let h = Harness::start().await;
    h.put("landing/a.csv", "v\n1\n");
    h.put("landingzone/x.csv", "v\n2\n");
    let client = h.converter.client().clone();
    let input = json!({
        "input": {"bucket": INPUT_BUCKET, "prefix": "landing"},
        "output": {"bucket": OUTPUT_BUCKET, "prefix": "converted"},
    });
    let run = execute(&client, "folders", input).await;
    assert!(matches!(run.status, ExecutionStatus::Succeeded(_)), "{:?}", run.status);
    let run = run_objects(&h.output, "folders");
    assert_eq!(
        keys_with(&run.lines, FileStatus::Converted),
        BTreeSet::from(["landing/a.csv"]),
        "landingzone/ is not read"
    );
    assert_eq!(outputs(&h), ["converted/avro/a.avro", "converted/parquet/a.parquet"]);
}

/// The history with the Map's child events in place.
fn flattened(history: &[HistoryEvent]) -> Vec<&HistoryEvent> {
    history
        .iter()
        .map(|e| match e {
            HistoryEvent::MapItem { event, .. } => event.as_ref(),
            e => e,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_every_file_fails_transiently_is_retried_by_the_state_machine() {
    let root = tempfile::tempdir().expect("tempdir");
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    for i in 0..3 {
        let path = input.join(format!("landing/f{i}.csv"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, format!("n\n{i}\n")).expect("write");
    }
    // Every GET of the batch's first attempt fails: each of the three files, on each of its own
    // attempts.
    let failures = Arc::new(AtomicUsize::new(3 * csvlake_converter::convert::FILE_ATTEMPTS as usize));
    let counter = failures.clone();
    let server = LocalS3::start_with(
        &[
            LocalBucket { name: INPUT_BUCKET.into(), dir: input },
            LocalBucket { name: OUTPUT_BUCKET.into(), dir: output.clone() },
        ],
        move |inner| FaultyGets {
            inner,
            fault: Box::new(move |key| {
                let hit = key.ends_with(".csv")
                    && counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                hit.then(|| s3_error!(SlowDown))
            }),
        },
    )
    .await
    .expect("endpoint");
    // No SDK retries: each SlowDown fails an attempt of its file.
    let retry = RetryConfig::standard().with_max_attempts(1);
    let client = Client::from_conf(server.client().config().to_builder().retry_config(retry).build());

    let run = execute(&client, "retried", scan_input(json!({"batch": {"max_files": 10}}))).await;
    assert!(matches!(run.status, ExecutionStatus::Succeeded(_)), "{:?}", run.status);
    assert_eq!(failures.load(Ordering::SeqCst), 0, "the faults were hit");
    let events = flattened(&run.history);
    let retries: Vec<&&HistoryEvent> = events
        .iter()
        .filter(|e| matches!(e, HistoryEvent::RetryScheduled { state, .. } if state == "ConvertBatch"))
        .collect();
    assert!(!retries.is_empty(), "the state machine retried the batch: {:?}", run.history);
    let failed_attempts = events
        .iter()
        .filter(|e| matches!(e, HistoryEvent::TaskFailed { error, .. } if error == "csvlake.Transient"))
        .count();
    assert!(failed_attempts >= 1, "{:?}", run.history);
    let report = run_objects(&output, "retried").report;
    assert_eq!((report.totals.converted, report.totals.failed), (3, 0), "{:?}", report.totals);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_keys_page_the_listing_and_split_into_batches() {
    let h = Harness::start().await;
    for i in 0..5_000 {
        h.put(&format!("landing/k/{:02}/{i:05}.csv", i % 50), format!("i,s\n{i},x{i}\n"));
    }
    h.calls.clear();
    let client = h.converter.client().clone();
    let run = execute(&client, "many", scan_input(json!({"batch": {"max_files": 256}, "max_concurrency": 8}))).await;
    assert!(matches!(run.status, ExecutionStatus::Succeeded(_)), "{:?}", run.status);
    assert!(h.calls.count("ListObjectsV2") >= 5, "the listing paged: {} requests", h.calls.count("ListObjectsV2"));
    let manifest: Vec<csvlake_contract::run::ManifestBatch> = serde_json::from_slice(
        &std::fs::read(h.output.join("converted/_runs/many/manifest.json")).expect("manifest.json"),
    )
    .expect("a manifest");
    assert_eq!(manifest.len(), 20, "5,000 files in batches of at most 256");
    assert!(manifest.iter().all(|b| b.files.len() <= 256));
    let run = run_objects(&h.output, "many");
    assert_eq!((run.report.totals.converted, run.report.totals.failed), (5_000, 0));
    assert_eq!(run.lines.len(), 5_000);
    assert_eq!(keys_with(&run.lines, FileStatus::Converted).len(), 5_000);
    assert_eq!(outputs(&h).len(), 10_000);
}

#[test]
fn the_error_names_of_the_definition_are_the_handlers_error_types() {
    use csvlake_contract::errors;

    let definition: Value = serde_json::from_str(csvlake_statemachine::DEFINITION).expect("JSON");
    let (mut matched, mut raised) = (BTreeSet::new(), BTreeSet::new());
    collect_error_names(&definition, &mut matched, &mut raised);
    let handlers: BTreeSet<String> =
        [csvlake_engine::Error::Transient(String::new()), csvlake_engine::Error::Internal(String::new())]
            .into_iter()
            .map(|e| lambda_runtime::Diagnostic::from(csvlake_contract::BatchError::Engine(e)).error_type)
            .collect();
    // The csvlake names that Retry and Catch match are the handlers' error types, or the
    // converter's csvlake.Deadline (a batch stopped before the Lambda deadline with files left).
    let ours: BTreeSet<&String> = matched.iter().filter(|n| n.starts_with("csvlake.")).collect();
    assert!(ours.contains(&errors::TRANSIENT.to_string()), "the definition retries csvlake.Transient: {matched:?}");
    assert!(ours.contains(&errors::DEADLINE.to_string()), "the definition retries csvlake.Deadline: {matched:?}");
    for name in &ours {
        assert!(
            handlers.contains(*name) || *name == errors::DEADLINE,
            "{name} is matched in pipeline.asl.json but no handler raises it ({handlers:?})"
        );
    }
    // The other names matched are Step Functions' and Lambda's own, as they spell them.
    for name in matched.iter().filter(|n| !n.starts_with("csvlake.")) {
        assert!(
            name.starts_with("States.") || name.starts_with("Lambda.") || name == "Sandbox.Timedout",
            "{name} is matched in pipeline.asl.json but neither Step Functions nor Lambda raises it"
        );
    }
    // The Fail states raise the contract's names (ReduceFailed passes Reduce's own on).
    let expected: BTreeSet<String> =
        [errors::TOLERANCE_EXCEEDED, errors::MAP_FAILED].into_iter().map(String::from).collect();
    assert_eq!(raised, expected);
    // Every Task retries the transient error type its handler raises.
    let mut tasks = 0;
    for_each_state(&definition, &mut |name, state| {
        if state["Type"] == "Task" {
            tasks += 1;
            let retried: Vec<&str> = state["Retry"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["ErrorEquals"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            assert!(retried.contains(&errors::TRANSIENT), "{name} does not retry: {retried:?}");
        }
    });
    assert_eq!(tasks, 6, "Plan, ConvertBatch, Join, ConformBatch, Reduce and ReleaseLeases");
}

/// The error names of ErrorEquals (`matched`) and of the Fail states' Error (`raised`).
fn collect_error_names(v: &Value, matched: &mut BTreeSet<String>, raised: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("ErrorEquals", Value::Array(names)) => {
                        matched.extend(names.iter().filter_map(Value::as_str).map(String::from));
                    }
                    ("Error", Value::String(name)) => {
                        raised.insert(name.clone());
                    }
                    _ => collect_error_names(v, matched, raised),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_error_names(v, matched, raised)),
        _ => {}
    }
}

fn for_each_state(v: &Value, f: &mut impl FnMut(&str, &Value)) {
    if let Some(states) = v["States"].as_object() {
        for (name, state) in states {
            f(name, state);
            for_each_state(&state["ItemProcessor"], f);
        }
    }
}

#[test]
fn the_example_execution_inputs_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../statemachine/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples") {
        let path = entry.expect("entry").path();
        let input: RunInput = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match input.mode {
            Mode::Report => assert!(input.report.is_some(), "{}", path.display()),
            _ => {
                input.job().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_prefix_reports_at_once() {
    let h = Harness::start().await;
    h.put("landing/readme.txt", "no csv here");
    let run = execute(h.converter.client(), "empty", scan_input(json!({}))).await;
    assert!(matches!(run.status, ExecutionStatus::Succeeded(_)), "{:?}", run.status);
    let entered: Vec<&str> = run
        .history
        .iter()
        .filter_map(|e| match e {
            HistoryEvent::StateEntered { state } => Some(state.as_str()),
            _ => None,
        })
        .collect();
    assert!(!entered.contains(&"Convert"), "no Map for no batch: {entered:?}");
    let run = run_objects(&h.output, "empty");
    assert_eq!(run.report.totals.files, 0);
    assert!(run.lines.is_empty());
}
