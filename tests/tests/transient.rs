//! The file is the unit of failure: an S3 error that outlives the SDK's retries is retried for
//! its file, from the start; a file that still fails is a per-file result, and the batch fails
//! (`csvlake.Transient`, which the state machine retries) only when every file failed
//! transiently. A denied object fails its file alone, at once; a fault the SDK's own retries
//! absorb is invisible.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_s3::Client;
use csvlake_cli::local::{LocalBucket, LocalS3};
use csvlake_contract::payload::{ConvertBatch, FileRef, FileStatus, InputLocation, Job, OutputLocation};
use csvlake_converter::Converter;
use csvlake_tests::FaultyGets;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use s3s::s3_error;

struct Setup {
    _root: tempfile::TempDir,
    _server: LocalS3,
    output: std::path::PathBuf,
    converter: Converter,
    gets_left: Arc<AtomicUsize>,
}

async fn setup(failures: usize, denied: bool) -> Setup {
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.csv"), "x,y\n1,2\n").unwrap();
    let gets_left = Arc::new(AtomicUsize::new(failures));
    let counter = gets_left.clone();
    let server = LocalS3::start_with(
        &[LocalBucket { name: "input".into(), dir: input }, LocalBucket { name: "output".into(), dir: output.clone() }],
        move |inner| FaultyGets {
            inner,
            // GetObject fails `failures` times (then works), with SlowDown or AccessDenied.
            fault: Box::new(move |_key| {
                let hit = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                hit.then(|| if denied { s3_error!(AccessDenied) } else { s3_error!(SlowDown) })
            }),
        },
    )
    .await
    .unwrap();
    // Three attempts with short backoff: the SDK's standard retry, quicker for the test.
    let retry = RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(5));
    let client = Client::from_conf(server.client().config().to_builder().retry_config(retry).build());
    Setup { _root: root, _server: server, output, converter: Converter::new(client), gets_left }
}

fn batch() -> LambdaEvent<ConvertBatch> {
    let job = Job::new(
        InputLocation {
            bucket: "input".into(),
            prefix: String::new(),
            scan: Vec::new(),
            suffixes: vec![".csv".into()],
        },
        OutputLocation { bucket: "output".into(), prefix: String::new() },
    );
    LambdaEvent::new(
        ConvertBatch {
            job,
            batch: None,
            files: vec![FileRef { key: "a.csv".into(), size: 8, etag: None }],
            retry_count: 0,
            redrive_count: 0,
            schema: None,
        },
        Context::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_beyond_the_sdk_retries_fails_the_batch_as_transient() {
    let s = setup(usize::MAX, false).await;
    let err = csvlake_converter::handle(batch(), &s.converter).await.expect_err("the batch fails");
    let d = Diagnostic::from(err);
    assert_eq!(d.error_type, "csvlake.Transient", "{}", d.error_message);
    assert!(d.error_message.contains("every file of the batch failed transiently"), "{}", d.error_message);
    assert!(d.error_message.contains("a.csv") && d.error_message.contains("SlowDown"), "{}", d.error_message);
    assert!(!d.error_message.contains("transient: transient"), "{}", d.error_message);
    let tries = 3 * csvlake_converter::convert::FILE_ATTEMPTS as usize;
    assert_eq!(usize::MAX - s.gets_left.load(Ordering::SeqCst), tries, "three SDK attempts per attempt of the file");
    assert!(!s.output.join("parquet").exists() && !s.output.join("avro").exists(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_the_sdk_retries_absorb_is_invisible() {
    let s = setup(2, false).await;
    let result = csvlake_converter::handle(batch(), &s.converter).await.expect("the third attempt succeeds");
    assert_eq!(result.files[0].status, FileStatus::Converted);
    assert_eq!(result.files[0].rows, 1);
    assert!(s.output.join("parquet/a.parquet").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_object_fails_its_file_and_not_the_batch() {
    let s = setup(usize::MAX, true).await;
    let result = csvlake_converter::handle(batch(), &s.converter).await.expect("the batch succeeds");
    let f = &result.files[0];
    assert_eq!(f.status, FileStatus::Failed);
    let e = f.error.as_ref().unwrap();
    assert_eq!(e.kind, "access_denied", "{e:?}");
    assert!(e.message.starts_with("GetObject s3://input/a.csv: AccessDenied"), "{}", e.message);
    assert_eq!(usize::MAX - s.gets_left.load(Ordering::SeqCst), 1, "a denied request is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_beyond_the_sdk_retries_is_retried_for_its_file() {
    // Four faults: the SDK's three attempts, and the first of the file's second attempt.
    let s = setup(4, false).await;
    let result = csvlake_converter::handle(batch(), &s.converter).await.expect("the batch succeeds");
    assert_eq!(result.files[0].status, FileStatus::Converted, "{:?}", result.files[0].error);
    assert_eq!(s.gets_left.load(Ordering::SeqCst), 0);
    assert!(s.output.join("parquet/a.parquet").is_file());
}
