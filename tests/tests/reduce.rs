//! The reducer over the embedded S3 endpoint: ResultWriter files in AWS's shapes go in, and the
//! report, `files.jsonl` and `failed-keys.json` come out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use csvlake_cli::local::{LocalBucket, LocalS3};
use csvlake_contract::ErrorNames;
use csvlake_contract::errors::NOT_RUN;
use csvlake_contract::payload::{
    BatchResult, ConvertBatch, FileRef, FileResult, FileStatus, InputLocation, Job, OutputLocation, OutputRef,
    default_suffixes,
};
use csvlake_contract::run::{
    ChildExecution, Included, ManifestBatch, MapOutput, Mode, ObjectLocation, Plan, ReduceRequest, Report, ResultFile,
    ResultFiles, ResultManifest, ResultWriterDetails, ResultsLocation, RunInput, RunStatus, RunSummary, StatesError,
};
use csvlake_engine::{Error, Format};
use lambda_runtime::{Context, LambdaEvent};

const BUCKET: &str = "lake";
const RESULTS: &str = "out/_runs/r1/results";
const MAP_RUN: &str = "0b7d1a52-4b8e-3a53-9d3e-6a5c0e6f1c2a";
const TRANSIENT_MESSAGE: &str =
    "transient: GetObject s3://lake/in/e.csv: dispatch failure: io error: connection reset by peer";

struct Env {
    client: Client,
    _s3: LocalS3,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let s3 = LocalS3::start(&[LocalBucket { name: BUCKET.into(), dir: dir.path().join(BUCKET) }]).await.unwrap();
    Env { client: s3.client(), _s3: s3, _dir: dir }
}

async fn put(client: &Client, key: &str, body: impl Into<Vec<u8>>) {
    let body: Vec<u8> = body.into();
    client.put_object().bucket(BUCKET).key(key).body(ByteStream::from(body)).send().await.unwrap();
}

async fn get(client: &Client, key: &str) -> Option<Vec<u8>> {
    match client.get_object().bucket(BUCKET).key(key).send().await {
        Ok(r) => Some(r.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
        Err(e) => panic!("GetObject {key}: {e:?}"),
    }
}

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/reducer").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn job() -> Job {
    Job::new(
        InputLocation { bucket: BUCKET.into(), prefix: "in/".into(), scan: Vec::new(), suffixes: default_suffixes() },
        OutputLocation { bucket: BUCKET.into(), prefix: "out/".into() },
    )
}

fn plan(batches: u64, files: u64) -> Plan {
    Plan {
        run_id: "r1".into(),
        job: job(),
        mode: Mode::Scan,
        incremental: false,
        files,
        bytes: 0,
        batches,
        skipped: 0,
        rejected: 0,
        orphaned: 0,
        delete_orphans: false,
        tables: None,
        orphans: None,
        manifest: ObjectLocation { bucket: BUCKET.into(), key: "out/_runs/r1/manifest.json".into() },
        rejected_results: None,
        results: ResultsLocation { bucket: BUCKET.into(), prefix: RESULTS.into() },
        batch: csvlake_contract::run::BatchLimits::default(),
        max_concurrency: 10,
        requested_max_concurrency: None,
        tolerated_failure_percentage: 5.0,
        conform_limit: csvlake_contract::run::DEFAULT_CONFORM_LIMIT,
        catalog: None,
    }
}

fn map_output() -> MapOutput {
    MapOutput {
        map_run_arn: format!("arn:aws:states:us-east-1:123456789012:mapRun:csvlake-pipeline/Convert:{MAP_RUN}"),
        result_writer_details: ResultWriterDetails {
            bucket: BUCKET.into(),
            key: format!("{RESULTS}/{MAP_RUN}/manifest.json"),
        },
    }
}

fn refs(keys: &[&str]) -> Vec<FileRef> {
    keys.iter().map(|k| FileRef { key: (*k).into(), size: 1, etag: None }).collect()
}

/// The batches behind the fixtures, plus a fourth that has no result in them.
fn fixture_batches() -> Vec<ManifestBatch> {
    [&["in/a.csv", "in/b.csv"][..], &["in/c.csv", "in/d.csv"], &["in/e.csv", "in/f.csv"], &["in/g.csv", "in/h.csv"]]
        .iter()
        .enumerate()
        .map(|(i, keys)| ManifestBatch { batch: i as u64, files: refs(keys) })
        .collect()
}

async fn put_fixtures(client: &Client, batches: usize) {
    for name in ["manifest.json", "SUCCEEDED_0.json", "FAILED_0.json"] {
        put(client, &format!("{RESULTS}/{MAP_RUN}/{name}"), fixture(name)).await;
    }
    let manifest = &fixture_batches()[..batches];
    put(client, "out/_runs/r1/manifest.json", serde_json::to_vec(manifest).unwrap()).await;
}

async fn put_rejected(client: &Client, plan: &mut Plan) {
    let error =
        Error::bad(csvlake_engine::BadInputKind::OutputCollision, "in/a.tsv would write the same outputs as in/a.csv");
    let line = serde_json::to_string(&FileResult::failed("in/a.tsv", 42, 0, error.to_file_error())).unwrap();
    put(client, "out/_runs/r1/rejected.jsonl", format!("{line}\n")).await;
    plan.rejected = 1;
    plan.rejected_results = Some(ObjectLocation { bucket: BUCKET.into(), key: "out/_runs/r1/rejected.jsonl".into() });
}

async fn run(client: &Client, request: ReduceRequest) -> RunSummary {
    csvlake_reducer::handle(LambdaEvent::new(request, Context::default()), client).await.unwrap()
}

struct Written {
    report: Report,
    files: Vec<FileResult>,
    failed_keys: Option<RunInput>,
}

async fn written(client: &Client) -> Written {
    let report = serde_json::from_slice(&get(client, "out/_runs/r1/report.json").await.expect("report.json")).unwrap();
    let files = get(client, "out/_runs/r1/files.jsonl").await.expect("files.jsonl");
    let files = String::from_utf8(files).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed_keys =
        get(client, "out/_runs/r1/failed-keys.json").await.map(|b| serde_json::from_slice::<RunInput>(&b).unwrap());
    Written { report, files, failed_keys }
}

fn kinds(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

#[test]
fn the_fixtures_have_the_shapes_aws_writes_and_round_trip() {
    let text = fixture("manifest.json");
    let manifest: ResultManifest = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest.destination_bucket, BUCKET);
    assert_eq!(manifest.result_files.succeeded.len(), 1);
    assert_eq!(manifest.result_files.failed[0].key, format!("{RESULTS}/{MAP_RUN}/FAILED_0.json"));
    assert_eq!(manifest.result_files.failed[0].size, fixture("FAILED_0.json").len() as u64);
    let back = serde_json::to_value(&manifest).unwrap();
    assert_eq!(back, serde_json::from_str::<serde_json::Value>(&text).unwrap());

    for (name, status, batches) in [("SUCCEEDED_0.json", "SUCCEEDED", vec![0, 1]), ("FAILED_0.json", "FAILED", vec![2])]
    {
        let text = fixture(name);
        let entries: Vec<ChildExecution> = serde_json::from_str(&text).unwrap();
        let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&entries).unwrap(), raw, "{name} round trips");
        let mut seen = Vec::new();
        for e in &entries {
            assert_eq!(e.status, status);
            assert_eq!(e.input_details, Some(Included { included: true }));
            let input: ConvertBatch = serde_json::from_str(&e.input).unwrap();
            assert_eq!(input.job, job());
            seen.push(input.batch.unwrap());
            match status {
                "SUCCEEDED" => {
                    let output: BatchResult = serde_json::from_str(e.output.as_deref().unwrap()).unwrap();
                    assert!(!output.files.is_empty());
                    assert_eq!(e.error, None);
                }
                _ => {
                    assert_eq!(e.output, None);
                    assert_eq!(e.error.as_deref(), Some("csvlake.Transient"));
                    let cause: serde_json::Value = serde_json::from_str(e.cause.as_deref().unwrap()).unwrap();
                    assert_eq!(cause["errorType"], "csvlake.Transient");
                    assert_eq!(cause["errorMessage"], TRANSIENT_MESSAGE);
                }
            }
        }
        assert_eq!(seen, batches);
    }
}

#[tokio::test]
async fn a_run_with_failed_files_writes_the_report_the_lines_and_the_failed_keys() {
    let env = env().await;
    let client = &env.client;
    put_fixtures(client, 3).await;
    let mut plan = plan(3, 6);
    plan.skipped = 1;
    put_rejected(client, &mut plan).await;
    let summary = run(client, ReduceRequest { convert: Some(map_output()), ..ReduceRequest::new(plan) }).await;

    // a and c converted; b bad input, d missing from its batch's output, e and f in a failed
    // batch, a.tsv rejected by the planner.
    let t = &summary.totals;
    assert_eq!((t.files, t.converted, t.failed, t.skipped), (8, 2, 5, 1));
    assert_eq!((t.rows, t.bytes_in, t.bytes_out, t.millis), (30, 3542, 2100, 35));
    let expected_kinds = kinds(&[
        ("bad_input.output_collision", 1),
        ("bad_input.ragged_row", 1),
        ("csvlake.Internal", 1),
        ("csvlake.Transient", 2),
    ]);
    assert_eq!(summary.failures_by_kind, expected_kinds);
    assert!(summary.exceeded_tolerance, "5 of 7 failed, 5% tolerated");
    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(summary.map_error, None);
    assert_eq!(summary.report.key, "out/_runs/r1/report.json");
    assert_eq!(summary.files.key, "out/_runs/r1/files.jsonl");
    assert_eq!(summary.failed_keys.as_ref().map(|l| l.key.as_str()), Some("out/_runs/r1/failed-keys.json"));

    let w = written(client).await;
    let report = &w.report;
    assert_eq!(report.run_id, "r1");
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(&report.totals, t);
    assert_eq!(report.failures_by_kind, expected_kinds);
    assert_eq!(report.input, job().input);
    assert_eq!(report.output, job().output);
    let failed: BTreeMap<&str, &csvlake_contract::FileError> =
        report.failed.iter().map(|f| (f.key.as_str(), &f.error)).collect();
    assert_eq!(
        failed.keys().copied().collect::<Vec<_>>(),
        ["in/a.tsv", "in/b.csv", "in/d.csv", "in/e.csv", "in/f.csv"]
    );
    assert_eq!(failed["in/b.csv"].line, Some(3));
    assert_eq!(failed["in/d.csv"].kind, "csvlake.Internal");
    assert!(failed["in/d.csv"].message.contains("no result"), "{}", failed["in/d.csv"].message);
    for key in ["in/e.csv", "in/f.csv"] {
        assert_eq!(failed[key].kind, "csvlake.Transient");
        assert_eq!(failed[key].message, TRANSIENT_MESSAGE, "the errorMessage of the Lambda error, not the whole cause");
    }

    assert_eq!(w.files.len(), 7, "one line per converted or failed file");
    let converted: BTreeSet<&str> =
        w.files.iter().filter(|f| f.status == FileStatus::Converted).map(|f| f.key.as_str()).collect();
    assert_eq!(converted, BTreeSet::from(["in/a.csv", "in/c.csv"]));
    assert_eq!(w.files.iter().filter(|f| f.status == FileStatus::Failed).count(), 5);
    let a = w.files.iter().find(|f| f.key == "in/a.csv").unwrap();
    assert_eq!(a.outputs[0], OutputRef { format: Format::Parquet, key: "out/parquet/a.parquet".into(), bytes: 400 });

    let retry = w.failed_keys.expect("failed-keys.json");
    assert_eq!(retry.mode, Mode::Keys);
    let keys: BTreeSet<&str> = retry.keys.iter().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["in/a.tsv", "in/b.csv", "in/d.csv", "in/e.csv", "in/f.csv"]));
    assert_eq!(retry.keys.len(), 5);
    assert_eq!(retry.job().unwrap(), job(), "a valid execution input with the run's options");
    assert_eq!(
        (retry.batch, retry.max_concurrency, retry.tolerated_failure_percentage),
        (Some(csvlake_contract::run::BatchLimits::default()), Some(10), Some(5.0)),
        "and its batch, concurrency and tolerance"
    );
    // And valid input for mode `report`: the new execution input laid over it.
    let again = RunInput {
        mode: Mode::Report,
        report: summary.failed_keys.clone(),
        formats: Some(vec![Format::Avro]),
        ..RunInput::default()
    };
    let merged = again.over(retry.clone());
    assert_eq!(merged.keys, retry.keys);
    assert_eq!(merged.job().unwrap().formats, [Format::Avro]);
}

#[tokio::test]
async fn the_tolerance_decides_the_status_both_ways() {
    let env = env().await;
    let client = &env.client;
    put_fixtures(client, 3).await;
    // 4 of 6 processed files failed: 66.7%.
    for (tolerated, exceeded) in [(70.0, false), (66.0, true), (100.0, false), (0.0, true)] {
        let mut plan = plan(3, 6);
        plan.tolerated_failure_percentage = tolerated;
        let summary = run(client, ReduceRequest { convert: Some(map_output()), ..ReduceRequest::new(plan) }).await;
        assert_eq!((summary.totals.converted, summary.totals.failed), (2, 4));
        assert_eq!(summary.exceeded_tolerance, exceeded, "{tolerated}% tolerated");
        let status = if exceeded { RunStatus::Failed } else { RunStatus::Succeeded };
        assert_eq!(summary.status, status);
        assert_eq!(written(client).await.report.status, status);
    }
}

#[tokio::test]
async fn a_failed_map_is_reported_from_the_newest_results_and_unrun_batches_count_as_not_run() {
    let env = env().await;
    let client = &env.client;
    // An earlier, empty Map Run under the same prefix: the newest manifest wins.
    let stale = ResultManifest {
        destination_bucket: BUCKET.into(),
        map_run_arn: "arn:stale".into(),
        result_files: ResultFiles::default(),
    };
    put(client, &format!("{RESULTS}/00000000-stale/manifest.json"), serde_json::to_vec(&stale).unwrap()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    put_fixtures(client, 4).await;

    let map_error = StatesError {
        error: "States.ExceededToleratedFailureThreshold".into(),
        cause: "The specified tolerated failure threshold was exceeded".into(),
    };
    let mut plan = plan(4, 8);
    plan.tolerated_failure_percentage = 100.0;
    let request = ReduceRequest { convert_error: Some(map_error.clone()), ..ReduceRequest::new(plan) };
    let summary = run(client, request).await;

    let t = &summary.totals;
    assert_eq!((t.files, t.converted, t.failed), (8, 2, 6), "the fixtures' results were found by listing");
    assert_eq!(summary.failures_by_kind[NOT_RUN], 2);
    assert_eq!(summary.failures_by_kind["csvlake.Transient"], 2);
    assert!(summary.exceeded_tolerance, "a failed Map fails the run, whatever the tolerance");
    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(summary.map_error.as_ref(), Some(&map_error));

    let w = written(client).await;
    assert_eq!(w.report.map_error, Some(map_error));
    let not_run: Vec<_> = w.report.failed.iter().filter(|f| f.error.kind == NOT_RUN).collect();
    assert_eq!(not_run.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(), ["in/g.csv", "in/h.csv"]);
    assert!(
        not_run[0].error.message.contains("States.ExceededToleratedFailureThreshold"),
        "{}",
        not_run[0].error.message
    );
    let keys = w.failed_keys.unwrap().keys;
    assert_eq!(keys.len(), 6);
    assert!(keys.contains(&"in/g.csv".to_owned()));
}

#[tokio::test]
async fn a_map_that_failed_before_writing_results_counts_every_batch_as_not_run() {
    let env = env().await;
    let client = &env.client;
    put(client, "out/_runs/r1/manifest.json", serde_json::to_vec(&fixture_batches()).unwrap()).await;
    let map_error = StatesError { error: "States.ItemReaderFailed".into(), cause: "access denied".into() };
    let request = ReduceRequest { convert_error: Some(map_error), ..ReduceRequest::new(plan(4, 8)) };
    let summary = run(client, request).await;
    assert_eq!((summary.totals.files, summary.totals.failed), (8, 8));
    assert_eq!(summary.failures_by_kind, kinds(&[(NOT_RUN, 8)]));
    let w = written(client).await;
    assert!(w.report.failed.iter().all(|f| f.error.message.contains("States.ItemReaderFailed: access denied")));
    assert_eq!(w.failed_keys.unwrap().keys.len(), 8);
}

#[tokio::test]
async fn zero_batches_count_only_the_skipped_files() {
    let env = env().await;
    let client = &env.client;
    let mut plan = plan(0, 0);
    plan.skipped = 5;
    let summary = run(client, ReduceRequest::new(plan)).await;
    assert_eq!(summary.totals, csvlake_contract::run::Totals { files: 5, skipped: 5, ..Default::default() });
    assert!(!summary.exceeded_tolerance);
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(summary.failed_keys, None);
    let w = written(client).await;
    assert_eq!(w.report.totals, summary.totals);
    assert!(w.report.failed.is_empty());
    assert!(w.files.is_empty());
    assert!(w.failed_keys.is_none(), "no failed-keys.json without a failed file");
}

fn execution(batch: &ManifestBatch, status: &str) -> ChildExecution {
    let name = format!("00000000-0000-4000-8000-{:012}", batch.batch);
    let input = ConvertBatch {
        job: job(),
        batch: Some(batch.batch),
        files: batch.files.clone(),
        retry_count: 0,
        redrive_count: 0,
        schema: None,
    };
    ChildExecution {
        execution_arn: format!("arn:aws:states:us-east-1:123456789012:execution:csvlake-pipeline/Convert:{name}"),
        input: serde_json::to_string(&input).unwrap(),
        input_details: Some(Included { included: true }),
        name,
        output: None,
        output_details: None,
        redrive_count: 0,
        redrive_status: "NOT_REDRIVABLE".into(),
        redrive_status_reason: None,
        start_date: "2026-03-02T10:15:04.112Z".into(),
        state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:csvlake-pipeline/Convert".into(),
        status: status.into(),
        stop_date: Some("2026-03-02T10:15:05.387Z".into()),
        error: None,
        cause: None,
    }
}

fn succeeded(batch: &ManifestBatch) -> ChildExecution {
    let files = batch
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if batch.batch.is_multiple_of(10) && i == 4 {
                let error = Error::bad_line(csvlake_engine::BadInputKind::RaggedRow, 7, "expected 3 fields, found 2");
                return FileResult::failed(&f.key, f.size, 1, error.to_file_error());
            }
            let rel = f.key.trim_start_matches("in/").trim_end_matches(".csv");
            FileResult {
                dialect: None,
                etag: None,
                schema: None,
                key: f.key.clone(),
                status: FileStatus::Converted,
                rows: 100,
                bytes_in: f.size,
                outputs: vec![
                    OutputRef { format: Format::Parquet, key: format!("out/parquet/{rel}.parquet"), bytes: 60 },
                    OutputRef { format: Format::Avro, key: format!("out/avro/{rel}.avro"), bytes: 40 },
                ],
                millis: 2,
                error: None,
            }
        })
        .collect();
    ChildExecution {
        output: Some(serde_json::to_string(&BatchResult { files }).unwrap()),
        output_details: Some(Included { included: true }),
        ..execution(batch, "SUCCEEDED")
    }
}

#[tokio::test]
async fn a_large_run_split_over_many_results_files_is_reduced_in_full() {
    const BATCHES: u64 = 2_000;
    const PER_BATCH: u64 = 5;
    let env = env().await;
    let client = &env.client;
    // Long keys make files.jsonl larger than one upload part.
    let dir = "x".repeat(250);
    let batches: Vec<ManifestBatch> = (0..BATCHES)
        .map(|b| ManifestBatch {
            batch: b,
            files: (0..PER_BATCH)
                .map(|i| FileRef { key: format!("in/{dir}/{b:05}-{i}.csv"), size: 1000, etag: None })
                .collect(),
        })
        .collect();
    put(client, "out/_runs/r1/manifest.json", serde_json::to_vec(&batches).unwrap()).await;

    // 0..1900 succeeded, over four files; 1900..1950 timed out; 1950..1980 still pending;
    // 1980..2000 never ran. Batch 5 also failed once before, which must not count.
    let prefix = format!("{RESULTS}/{MAP_RUN}");
    let mut listing = ResultFiles::default();
    for (n, chunk) in batches[..1900].chunks(500).enumerate() {
        let key = format!("{prefix}/SUCCEEDED_{n}.json");
        let body = serde_json::to_vec(&chunk.iter().map(succeeded).collect::<Vec<_>>()).unwrap();
        listing.succeeded.push(ResultFile { key: key.clone(), size: body.len() as u64 });
        put(client, &key, body).await;
    }
    let mut failed: Vec<ChildExecution> = batches[1900..1950]
        .iter()
        .map(|b| ChildExecution {
            error: Some("States.Timeout".into()),
            cause: Some("The task timed out.".into()),
            ..execution(b, "TIMED_OUT")
        })
        .collect();
    failed.push(ChildExecution {
        error: Some("csvlake.Transient".into()),
        cause: Some("{\"errorMessage\":\"earlier attempt\",\"errorType\":\"csvlake.Transient\"}".into()),
        ..execution(&batches[5], "FAILED")
    });
    let pending: Vec<ChildExecution> = batches[1950..1980].iter().map(|b| execution(b, "PENDING_REDRIVE")).collect();
    for (name, entries, list) in
        [("FAILED_0.json", failed, &mut listing.failed), ("PENDING_0.json", pending, &mut listing.pending)]
    {
        let key = format!("{prefix}/{name}");
        let body = serde_json::to_vec(&entries).unwrap();
        list.push(ResultFile { key: key.clone(), size: body.len() as u64 });
        put(client, &key, body).await;
    }
    let manifest =
        ResultManifest { destination_bucket: BUCKET.into(), map_run_arn: "arn:run".into(), result_files: listing };
    put(client, &format!("{prefix}/manifest.json"), serde_json::to_vec(&manifest).unwrap()).await;

    let mut plan = plan(BATCHES, BATCHES * PER_BATCH);
    plan.tolerated_failure_percentage = 10.0;
    let summary = run(client, ReduceRequest { convert: Some(map_output()), ..ReduceRequest::new(plan) }).await;

    let ragged = 190; // one file of every tenth succeeded batch
    let converted = 1900 * PER_BATCH - ragged;
    let failed = ragged + 100 * PER_BATCH;
    let t = &summary.totals;
    assert_eq!((t.files, t.converted, t.failed, t.skipped), (BATCHES * PER_BATCH, converted, failed, 0));
    assert_eq!((t.rows, t.bytes_out, t.millis), (converted * 100, converted * 100, 1900 * PER_BATCH * 2 - ragged));
    assert_eq!(t.bytes_in, 1900 * PER_BATCH * 1000);
    assert_eq!(
        summary.failures_by_kind,
        kinds(&[("bad_input.ragged_row", ragged), ("States.Timeout", 250), (NOT_RUN, 250)])
    );
    assert!(!summary.exceeded_tolerance, "690 of 10,000 is within 10%");

    let files = get(client, "out/_runs/r1/files.jsonl").await.unwrap();
    assert!(
        files.len() > csvlake_s3::upload::DEFAULT_PART_SIZE,
        "files.jsonl took more than one part: {}",
        files.len()
    );
    let w = written(client).await;
    assert_eq!(w.files.len() as u64, BATCHES * PER_BATCH);
    assert_eq!(w.files.iter().map(|f| f.key.as_str()).collect::<BTreeSet<_>>().len() as u64, BATCHES * PER_BATCH);
    assert_eq!(w.report.failed.len() as u64, failed);
    let timed_out = w.report.failed.iter().find(|f| f.error.kind == "States.Timeout").unwrap();
    assert_eq!(timed_out.error.message, "The task timed out.");
    let keys = w.failed_keys.unwrap().keys;
    assert_eq!(keys.len() as u64, failed);
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len() as u64, failed);
    assert!(keys.iter().all(|k| k.starts_with("in/")));
    assert!(!keys.iter().any(|k| k.contains("/00005-")), "batch 5 succeeded after all");
}

#[tokio::test]
async fn unreadable_results_fail_the_reduce_and_leave_no_report() {
    let env = env().await;
    let client = &env.client;
    put_fixtures(client, 3).await;
    let key = format!("{RESULTS}/{MAP_RUN}/SUCCEEDED_0.json");
    put(client, &key, "[{\"ExecutionArn\": 1}]").await;
    let request = ReduceRequest { convert: Some(map_output()), ..ReduceRequest::new(plan(3, 6)) };
    let e = csvlake_reducer::handle(LambdaEvent::new(request.clone(), Context::default()), client).await.unwrap_err();
    assert!(matches!(&e, csvlake_contract::BatchError::Engine(Error::Internal(m)) if m.contains(&key)), "{e}");

    client.delete_object().bucket(BUCKET).key(&key).send().await.unwrap();
    let e = csvlake_reducer::handle(LambdaEvent::new(request, Context::default()), client).await.unwrap_err();
    assert!(matches!(&e, csvlake_contract::BatchError::Engine(Error::Internal(m)) if m.contains("GetObject")), "{e}");
    for name in ["report.json", "files.jsonl", "failed-keys.json"] {
        assert_eq!(get(client, &format!("out/_runs/r1/{name}")).await, None, "{name}");
    }
}
