//! Reliability: the deadline stops a batch in time, with its results recorded; a batch that
//! fails keeps what it converted in the report; a retry converts only what is left.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use csvlake_contract::deployment::CONVERTER_SUBSTITUTION;
use csvlake_contract::payload::{BatchResult, ConvertBatch, FileStatus};
use csvlake_contract::run::Report;
use csvlake_converter::Converter;
use csvlake_converter::convert::DEADLINE_MARGIN;
use csvlake_planner::PlannerConfig;
use csvlake_tests::{Harness, INPUT_BUCKET, OUTPUT_BUCKET};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_cannot_finish_before_the_deadline_are_left_for_the_retry() {
    let h = Harness::start().await;
    for name in ["a", "b", "huge"] {
        h.put(&format!("in/{name}.csv"), format!("id,name\n1,{name}\n"));
    }
    let mut job = h.job("in/", "out/");
    job.run_id = Some("r1".into());
    let mut files = csvlake_planner::plan::list_inputs(h.converter.client(), &job.input).await.unwrap();
    // As listed, `huge` is 50 GB: at the assumed rate it cannot finish in the time left.
    files.iter_mut().find(|f| f.key == "in/huge.csv").unwrap().size = 50 << 30;
    let batch = |retry_count| ConvertBatch {
        job: job.clone(),
        batch: Some(7),
        files: files.clone(),
        retry_count,
        redrive_count: 0,
        schema: None,
    };
    let deadline = SystemTime::now() + DEADLINE_MARGIN + Duration::from_secs(20);
    let e = h.converter.convert_batch_until(&batch(0), Some(deadline)).await.unwrap_err();
    let d = lambda_runtime::Diagnostic::from(e);
    assert_eq!(d.error_type, "csvlake.Deadline", "{}", d.error_message);
    assert!(d.error_message.contains("1 of 3 files"), "{}", d.error_message);
    assert!(!h.output.join("out/parquet/huge.parquet").exists(), "huge was not started");

    // What the batch did is recorded for the reducer.
    let recorded: BatchResult =
        serde_json::from_slice(&std::fs::read(h.output.join("out/_runs/r1/batches/7.json")).unwrap()).unwrap();
    let keys: Vec<(&str, FileStatus)> = recorded.files.iter().map(|f| (f.key.as_str(), f.status)).collect();
    assert_eq!(keys, [("in/a.csv", FileStatus::Converted), ("in/b.csv", FileStatus::Converted)]);

    // The retry reads only what was left.
    h.calls.clear();
    let done = h.converter.convert_batch(&batch(1)).await.expect("the retry finishes");
    assert!(done.files.iter().all(|f| f.status == FileStatus::Converted));
    assert_eq!(h.calls.count("GetObject"), 1, "{:?}", h.calls.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_reports_the_files_it_converted() {
    let h = Harness::start().await;
    for name in ["a", "b", "huge"] {
        h.put(&format!("landing/t/{name}.csv"), format!("id,name\n1,{name}\n"));
    }
    h.put("landing/t/huge.csv", "id,name\n".to_owned() + &"1,x\n".repeat(1_000_000));
    let client = h.converter.client().clone();
    // A converter whose every invocation has only the deadline margin and 0.3 s left: the 4 MB
    // file (0.5 s at the assumed rate) is never started, and the batch fails with
    // csvlake.Deadline each time.
    let converter = Arc::new(Converter::new(client.clone()));
    let hurried = csvlake_statemachine::lambda(move |mut event: lambda_runtime::LambdaEvent<ConvertBatch>| {
        let converter = converter.clone();
        async move {
            let deadline = SystemTime::now() + DEADLINE_MARGIN + Duration::from_millis(300);
            event.context.deadline =
                u64::try_from(deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()).unwrap();
            csvlake_converter::handle(event, &converter).await
        }
    });
    let executor = csvlake_cli::local::pipeline::observed_executor(
        client.clone(),
        Arc::new(Converter::new(client.clone())),
        PlannerConfig::default(),
        None,
    )
    .expect("definition")
    .with_function(csvlake_statemachine::local_function_arn(CONVERTER_SUBSTITUTION), hurried)
    .with_delay_scale(0.0);
    let input = json!({
        "input": {"bucket": INPUT_BUCKET, "prefix": "landing/"},
        "output": {"bucket": OUTPUT_BUCKET, "prefix": "lake/"},
        "tolerated_failure_percentage": 100,
    });
    let run = executor.execute("hurried", input).await;
    eprintln!("{:?}", run.status);
    let report: Report =
        serde_json::from_slice(&std::fs::read(h.output.join("lake/_runs/hurried/report.json")).unwrap()).unwrap();
    let t = &report.totals;
    assert_eq!((t.converted, t.failed), (2, 1), "{t:?}");
    assert_eq!(report.failed[0].key, "landing/t/huge.csv");
    assert_eq!(report.failed[0].error.kind, "csvlake.Deadline", "{:?}", report.failed[0].error);
    // The index holds the two converted files: the next run converts only the third.
    let sales = report.tables.iter().find(|t| t.name == "t").expect("table t");
    assert_eq!(sales.entries, 2);
}
