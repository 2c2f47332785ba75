//! Tables end to end, through the state machine and the embedded S3 endpoint: an input is
//! converted again exactly when its content or the options change, deleted inputs are reported
//! as orphaned (and their outputs removed on request), one run at a time writes a table, runs
//! stay within the deployment's roots, and a retried batch converts only what it had not
//! finished.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use csvlake_contract::deployment::{CONVERTER_SUBSTITUTION, REDUCER_SUBSTITUTION};
use csvlake_contract::payload::{ConvertBatch, FileStatus};
use csvlake_contract::run::Report;
use csvlake_contract::tables::{Current, Lease, Root, Roots};
use csvlake_converter::Converter;
use csvlake_planner::PlannerConfig;
use csvlake_statemachine::{Execution, ExecutionStatus};
use csvlake_tests::{Harness, INPUT_BUCKET, OUTPUT_BUCKET};
use serde_json::{Value, json};

fn input(extra: Value) -> Value {
    let mut input = json!({
        "input": {"bucket": INPUT_BUCKET, "prefix": "landing/"},
        "output": {"bucket": OUTPUT_BUCKET, "prefix": "lake/"},
    });
    if let (Some(i), Value::Object(extra)) = (input.as_object_mut(), extra) {
        i.extend(extra);
    }
    input
}

async fn execute_with(client: &Client, config: PlannerConfig, run_id: &str, input: Value) -> Execution {
    let converter = Arc::new(Converter::new(client.clone()));
    let executor = csvlake_cli::local::pipeline::observed_executor(client.clone(), converter, config, None)
        .expect("definition")
        .with_delay_scale(0.0);
    executor.execute(run_id, input).await
}

async fn execute(h: &Harness, run_id: &str, input: Value) -> Execution {
    execute_with(h.converter.client(), PlannerConfig::default(), run_id, input).await
}

fn report(h: &Harness, run_id: &str) -> Report {
    let path = h.output.join("lake/_runs").join(run_id).join("report.json");
    serde_json::from_slice(&std::fs::read(&path).expect("report.json")).expect("a report")
}

/// Runs and returns (converted, skipped) of its report.
async fn counts(h: &Harness, run_id: &str, extra: Value) -> (u64, u64) {
    let run = execute(h, run_id, input(extra)).await;
    assert!(matches!(run.status, ExecutionStatus::Succeeded(_)), "{run_id}: {:?}", run.status);
    let t = report(h, run_id).totals;
    (t.converted, t.skipped)
}

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    std::fs::File::options().write(true).open(path).expect("open").set_modified(t).expect("set mtime");
}

fn put_tables(h: &Harness) {
    h.put("landing/sales/2026/a.csv", "id,amount\n1,10.5\n2,20.25\n");
    h.put("landing/sales/2026/b.csv", "id,amount\n3,30\n");
    h.put("landing/events/c.csv", "id,kind\n1,click\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_is_converted_again_exactly_when_its_content_or_the_options_change() {
    let h = Harness::start().await;
    put_tables(&h);
    assert_eq!(counts(&h, "first", json!({})).await, (3, 0));
    assert_eq!(counts(&h, "same", json!({})).await, (0, 3), "nothing changed");

    // New content with an older modification time (an older file copied over it with `cp -p`).
    let a = h.input.join("landing/sales/2026/a.csv");
    h.put("landing/sales/2026/a.csv", "id,amount\n1,10.5\n2,99\n");
    set_mtime(&a, SystemTime::UNIX_EPOCH + Duration::from_secs(86_400));
    assert_eq!(counts(&h, "older", json!({})).await, (1, 2), "new content, older time");
    let pq = csvlake_tests::read_parquet(&h.output.join("lake/parquet/sales/2026/a.parquet"));
    assert_eq!(pq.rows.len(), 2);

    // The same bytes written again, with a new time.
    let b = h.input.join("landing/sales/2026/b.csv");
    let bytes = std::fs::read(&b).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&b, bytes).unwrap();
    assert_eq!(counts(&h, "rewritten", json!({})).await, (0, 3), "byte-identical content is not converted again");

    // Other options convert everything again, once.
    let zstd = json!({"parquet": {"compression": "zstd"}});
    assert_eq!(counts(&h, "zstd", zstd.clone()).await, (3, 0));
    assert_eq!(counts(&h, "zstd-again", zstd.clone()).await, (0, 3));
    let schema = json!({"parquet": {"compression": "zstd"}, "csv": {"schema": {"id": "utf8"}}});
    assert_eq!(counts(&h, "schema", schema.clone()).await, (3, 0));
    assert_eq!(counts(&h, "schema-again", schema).await, (0, 3));
    // incremental: false converts everything whatever the index says.
    assert_eq!(counts(&h, "forced", json!({"incremental": false})).await, (3, 0));

    // Each table has its index and no lease left behind.
    let r = report(&h, "forced");
    let mut names: Vec<(&str, u64)> = r.tables.iter().map(|t| (t.name.as_str(), t.entries)).collect();
    names.sort_unstable();
    assert_eq!(names, [("events", 1), ("sales", 2)]);
    for table in ["sales", "events"] {
        let dir = h.output.join("lake/_tables").join(table);
        assert!(!dir.join("lease.json").exists(), "{table}: the lease was released");
        let current: Current = serde_json::from_slice(&std::fs::read(dir.join("current.json")).unwrap()).unwrap();
        assert!(h.output.join(&current.index).exists(), "{table}: {}", current.index);
        let generations = std::fs::read_dir(dir.join("index")).unwrap().count();
        assert!(generations <= 2, "{table}: {generations} generations kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_ways_to_start_a_run_agree() {
    let h = Harness::start().await;
    put_tables(&h);
    assert_eq!(counts(&h, "scheduled", json!({})).await, (3, 0));
    // A backfill of a sub-folder, and explicit keys, find the same files up to date.
    let backfill = json!({"input": {"bucket": INPUT_BUCKET, "prefix": "landing/", "scan": ["sales/2026/"]}});
    assert_eq!(counts(&h, "backfill", backfill).await, (0, 2));
    let keys = json!({"mode": "keys", "keys": ["landing/sales/2026/a.csv", "landing/events/c.csv"]});
    assert_eq!(counts(&h, "keys", keys).await, (0, 2));
    // A changed file is converted by any of them.
    h.put("landing/sales/2026/a.csv", "id,amount\n7,1\n");
    let keys = json!({"mode": "keys", "keys": ["landing/sales/2026/a.csv"]});
    assert_eq!(counts(&h, "keys-changed", keys).await, (1, 0));
    assert_eq!(counts(&h, "after", json!({})).await, (0, 3), "the keys run updated the index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_input_is_orphaned_and_delete_orphans_removes_its_outputs() {
    let h = Harness::start().await;
    put_tables(&h);
    assert_eq!(counts(&h, "first", json!({})).await, (3, 0));
    std::fs::remove_file(h.input.join("landing/sales/2026/b.csv")).unwrap();

    assert_eq!(counts(&h, "kept", json!({})).await, (0, 2));
    let r = report(&h, "kept");
    assert_eq!(r.totals.orphaned, 1);
    let orphan = &r.orphaned[0];
    assert_eq!((orphan.key.as_str(), orphan.deleted), ("landing/sales/2026/b.csv", false));
    assert_eq!(orphan.outputs.len(), 2);
    for key in &orphan.outputs {
        assert!(h.output.join(key).exists(), "{key} is kept without delete_orphans");
    }
    // A backfill of another folder does not judge what it did not list.
    let other = json!({"input": {"bucket": INPUT_BUCKET, "prefix": "landing/", "scan": ["events/"]}});
    assert_eq!(counts(&h, "events-only", other).await, (0, 1));
    assert_eq!(report(&h, "events-only").totals.orphaned, 0);

    assert_eq!(counts(&h, "deleted", json!({"delete_orphans": true})).await, (0, 2));
    let r = report(&h, "deleted");
    assert_eq!(
        r.orphaned.iter().map(|o| (o.key.as_str(), o.deleted)).collect::<Vec<_>>(),
        [("landing/sales/2026/b.csv", true)]
    );
    for key in &r.orphaned[0].outputs {
        assert!(!h.output.join(key).exists(), "{key} was removed");
    }
    assert!(h.output.join("lake/parquet/sales/2026/a.parquet").exists(), "other outputs stay");
    // Gone from the index: not reported again.
    assert_eq!(counts(&h, "after", json!({})).await, (0, 2));
    assert_eq!(report(&h, "after").totals.orphaned, 0);

    // A table whose every input is gone is not met by the listing, and still found.
    std::fs::remove_file(h.input.join("landing/events/c.csv")).unwrap();
    assert_eq!(counts(&h, "table-gone", json!({})).await, (0, 1));
    let r = report(&h, "table-gone");
    assert_eq!(r.orphaned.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["landing/events/c.csv"]);
    assert!(r.tables.iter().any(|t| t.name == "events"), "{:?}", r.tables);
}

fn write_lease(h: &Harness, table: &str, run_id: &str, expires: chrono::DateTime<chrono::Utc>) {
    let lease = Lease { run_id: run_id.into(), expires: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) };
    let path = h.output.join("lake/_tables").join(table).join("lease.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec(&lease).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_lease_fails_the_run_and_an_expired_one_is_taken_over() {
    let h = Harness::start().await;
    put_tables(&h);
    write_lease(&h, "sales", "run-elsewhere", chrono::Utc::now() + chrono::Duration::hours(1));
    let run = execute(&h, "blocked", input(json!({}))).await;
    let ExecutionStatus::Failed(e) = &run.status else { panic!("expected a failure: {:?}", run.status) };
    assert_eq!(e.error, "csvlake.RunInProgress");
    assert!(e.cause.contains("run-elsewhere") && e.cause.contains("sales"), "{}", e.cause);
    assert!(h.output_files().iter().all(|f| !f.starts_with("lake/parquet/")), "nothing was converted");
    assert!(
        !h.output.join("lake/_tables/events/lease.json").exists(),
        "the lease taken before the refusal is released"
    );
    let held: Lease =
        serde_json::from_slice(&std::fs::read(h.output.join("lake/_tables/sales/lease.json")).unwrap()).unwrap();
    assert_eq!(held.run_id, "run-elsewhere", "the other run's lease is untouched");

    write_lease(&h, "sales", "run-dead", chrono::Utc::now() - chrono::Duration::minutes(1));
    assert_eq!(counts(&h, "takeover", json!({})).await, (3, 0));
    let r = report(&h, "takeover");
    let sales = r.tables.iter().find(|t| t.name == "sales").expect("sales");
    assert_eq!(sales.taken_over_from.as_deref(), Some("run-dead"));
    assert!(!h.output.join("lake/_tables/sales/lease.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_runs_of_one_table_one_converts_and_the_other_is_refused() {
    let h = Harness::start().await;
    for i in 0..4 {
        h.put(&format!("landing/sales/{i:03}.csv"), format!("id,v\n{i},{}\n", i * 3));
    }
    let client = h.converter.client().clone();
    // Run A's converter waits at a gate, so that A holds its lease while B starts.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let converter = Arc::new(Converter::new(client.clone()));
    let held = {
        let (gate, converter) = (gate.clone(), converter.clone());
        csvlake_statemachine::lambda(move |event| {
            let (gate, converter) = (gate.clone(), converter.clone());
            async move {
                let _open = gate.acquire().await;
                csvlake_converter::handle(event, &converter).await
            }
        })
    };
    let executor_a =
        csvlake_cli::local::pipeline::observed_executor(client.clone(), converter, PlannerConfig::default(), None)
            .expect("definition")
            .with_function(csvlake_statemachine::local_function_arn(CONVERTER_SUBSTITUTION), held)
            .with_delay_scale(0.0);
    let a = tokio::spawn(async move { executor_a.execute("run-a", input(json!({}))).await });
    let lease = h.output.join("lake/_tables/sales/lease.json");
    while !lease.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let b = execute(&h, "run-b", input(json!({}))).await;
    let ExecutionStatus::Failed(e) = &b.status else { panic!("run B was not refused: {:?}", b.status) };
    assert_eq!(e.error, "csvlake.RunInProgress");
    assert!(e.cause.contains("run-a"), "{}", e.cause);
    gate.add_permits(100);
    let a = a.await.unwrap();
    assert!(matches!(a.status, ExecutionStatus::Succeeded(_)), "{:?}", a.status);
    assert_eq!(report(&h, "run-a").totals.converted, 4);
    assert!(!h.output.join("lake/_runs/run-b/manifest.json").exists(), "run B planned nothing");
    assert!(!lease.exists(), "run A released its lease");
    // Now B may run, and finds everything up to date.
    assert_eq!(counts(&h, "run-b-again", json!({})).await, (0, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_stay_within_the_roots_and_a_narrower_input_is_re_rooted() {
    let h = Harness::start().await;
    put_tables(&h);
    h.put("other/x.csv", "a\n1\n");
    let roots = Roots {
        input: Some(Root::parse(&format!("s3://{INPUT_BUCKET}/landing")).unwrap()),
        output: Some(Root::parse(&format!("s3://{OUTPUT_BUCKET}/lake/")).unwrap()),
    };
    let config = PlannerConfig { roots, ..PlannerConfig::default() };
    let client = h.converter.client().clone();
    for (run_id, bad) in [
        ("outside-in", json!({"input": {"bucket": INPUT_BUCKET, "prefix": "other/"}})),
        ("outside-out", json!({"output": {"bucket": OUTPUT_BUCKET, "prefix": "elsewhere/"}})),
    ] {
        h.calls.clear();
        let run = execute_with(&client, config.clone(), run_id, input(bad)).await;
        let ExecutionStatus::Failed(e) = &run.status else { panic!("{run_id}: {:?}", run.status) };
        assert!(e.cause.contains("outside") && e.cause.contains("root"), "{run_id}: {}", e.cause);
        assert_eq!(h.calls.count("ListObjectsV2"), 0, "{run_id}: nothing was listed");
        assert_eq!(h.calls.count("PutObject"), 0, "{run_id}: nothing was written");
    }
    // An input inside the root is read as a scan of that folder of the root.
    let narrow = json!({"input": {"bucket": INPUT_BUCKET, "prefix": "landing/sales/"}});
    let run = execute_with(&client, config, "narrow", input(narrow)).await;
    assert!(matches!(run.status, ExecutionStatus::Succeeded(_)), "{:?}", run.status);
    assert!(h.output.join("lake/parquet/sales/2026/a.parquet").exists(), "keys relative to the root");
    assert_eq!(report(&h, "narrow").input.scan, ["sales/"]);

    let typo = json!({"input": {"bucket": INPUT_BUCKET, "prefx": "landing/"}, "output": {"bucket": OUTPUT_BUCKET}});
    let run = execute(&h, "typo", typo).await;
    let ExecutionStatus::Failed(e) = &run.status else { panic!("{:?}", run.status) };
    assert!(e.cause.contains("prefx"), "{}", e.cause);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_converts_only_the_files_it_had_not_finished() {
    let h = Harness::start().await;
    for name in ["a", "b", "c"] {
        h.put(&format!("in/{name}.csv"), format!("id,name\n1,{name}\n2,{name}{name}\n"));
    }
    let job = h.job("in/", "out/");
    let files = csvlake_planner::plan::list_inputs(h.converter.client(), &job.input).await.unwrap();
    assert!(files.iter().all(|f| f.etag.is_some()), "the listing gives ETags");
    let batch = |retry_count| ConvertBatch {
        job: job.clone(),
        batch: Some(0),
        files: files.clone(),
        retry_count,
        redrive_count: 0,
        schema: None,
    };
    let first = h.converter.convert_batch(&batch(0)).await.unwrap();
    assert!(first.files.iter().all(|f| f.status == FileStatus::Converted));

    // The first attempt died before c's outputs were committed.
    for out in ["out/parquet/c.parquet", "out/avro/c.avro"] {
        std::fs::remove_file(h.output.join(out)).unwrap();
    }
    h.calls.clear();
    let retried = h.converter.convert_batch(&batch(1)).await.unwrap();
    assert_eq!(h.calls.count("GetObject"), 1, "only c was read again: {:?}", h.calls.all());
    assert_eq!(h.calls.count("HeadObject"), 5, "a and b: two outputs each; c: its first output is missing");
    for (before, after) in first.files.iter().zip(&retried.files) {
        assert_eq!(after.status, FileStatus::Converted, "{}", after.key);
        assert_eq!(
            (after.rows, &after.etag, &after.schema),
            (before.rows, &before.etag, &before.schema),
            "{}",
            after.key
        );
        assert_eq!(after.outputs, before.outputs, "{}", after.key);
    }
    assert!(h.output.join("out/parquet/c.parquet").exists());

    // A first attempt never looks: it converts everything.
    h.calls.clear();
    h.converter.convert_batch(&batch(0)).await.unwrap();
    assert_eq!((h.calls.count("HeadObject"), h.calls.count("GetObject")), (0, 3));
}

/// An executor whose reducer fails to report, but releases the leases when asked to (the
/// ReleaseLeases state): a run that dies after converting, before its index is written.
fn executor_whose_reduce_fails(client: &Client) -> csvlake_statemachine::Executor {
    let reducer = {
        let client = client.clone();
        csvlake_statemachine::lambda(move |event: lambda_runtime::LambdaEvent<csvlake_contract::run::ReduceRequest>| {
            let client = client.clone();
            async move {
                if event.payload.reduce_error.is_none() {
                    return Err(csvlake_contract::BatchError::Engine(csvlake_engine::Error::Internal(
                        "the report could not be written".into(),
                    )));
                }
                csvlake_reducer::handle(event, &client).await
            }
        })
    };
    let converter = Arc::new(Converter::new(client.clone()));
    csvlake_cli::local::pipeline::observed_executor(client.clone(), converter, PlannerConfig::default(), None)
        .expect("definition")
        .with_function(csvlake_statemachine::local_function_arn(REDUCER_SUBSTITUTION), reducer)
        .with_delay_scale(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_reduce_fails_still_releases_its_leases() {
    let h = Harness::start().await;
    put_tables(&h);
    let executor = executor_whose_reduce_fails(h.converter.client());
    let run = executor.execute("doomed", input(json!({}))).await;
    let ExecutionStatus::Failed(e) = &run.status else { panic!("{:?}", run.status) };
    assert_eq!(e.error, "csvlake.Internal", "ReduceFailed carries Reduce's own error");
    assert!(e.cause.contains("could not be written"), "{}", e.cause);
    for table in ["sales", "events"] {
        assert!(!h.output.join("lake/_tables").join(table).join("lease.json").exists(), "{table}");
    }
    // The next run is not blocked, and converts what the failed run left out of the index.
    assert_eq!(counts(&h, "next", json!({})).await, (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_left_with_one_format_by_a_dead_run_is_converted_again_by_the_next_incremental_run() {
    let h = Harness::start().await;
    put_tables(&h);
    assert_eq!(counts(&h, "first", json!({})).await, (3, 0));

    // a.csv changes; a run converts it, then dies before its index is written, and its avro
    // output is lost with it: a is left with one format of the new content.
    h.put("landing/sales/2026/a.csv", "id,amount\n1,10.5\n2,20.25\n3,7\n");
    let run = executor_whose_reduce_fails(h.converter.client()).execute("died", input(json!({}))).await;
    assert!(matches!(run.status, ExecutionStatus::Failed(_)), "{:?}", run.status);
    let avro = h.output.join("lake/avro/sales/2026/a.avro");
    std::fs::remove_file(&avro).expect("the dead run's avro output");

    // The next incremental run converts a again, and only a.
    assert_eq!(counts(&h, "next", json!({})).await, (1, 2));
    let out = csvlake_tests::read_avro(&avro);
    assert_eq!(out.rows.len(), 3, "the avro output holds the new content");
    let pq = csvlake_tests::read_parquet(&h.output.join("lake/parquet/sales/2026/a.parquet"));
    assert_eq!(pq.rows.len(), 3);
    // And a further run finds nothing to do.
    assert_eq!(counts(&h, "after", json!({})).await, (0, 3));
}
