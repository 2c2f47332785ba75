//! `csvlake start` as a process, against a fake AWS Step Functions endpoint on loopback that
//! speaks the awsJson1_0 protocol of aws-sdk-sfn: what the command sends (StartExecution, then
//! DescribeExecution until the execution ends) and what it prints and exits with for each end.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use csvlake_contract::payload::{InputLocation, OutputLocation, default_suffixes};
use csvlake_contract::run::{Mode, ObjectLocation, RunInput, RunStatus, RunSummary, Totals};
use csvlake_engine::options::Format;
use csvlake_tests::csvlake_bin;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const STATE_MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:csvlake";
const EXECUTION_PREFIX: &str = "arn:aws:states:us-east-1:123456789012:execution:csvlake:";
const START: &str = "AWSStepFunctions.StartExecution";
const DESCRIBE: &str = "AWSStepFunctions.DescribeExecution";
/// Longest a `csvlake start` may take before the test kills it.
const PROCESS_LIMIT: Duration = Duration::from_secs(120);

/// How the fake execution ends, after one DescribeExecution that finds it RUNNING.
#[derive(Clone)]
enum End {
    Succeeded(Box<RunSummary>),
    Failed { error: &'static str, cause: &'static str },
}

/// One request the fake endpoint received.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    content_type: String,
    target: String,
    body: Value,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// ARN of the started execution.
    execution: Option<String>,
    describes: usize,
}

/// A Step Functions endpoint on 127.0.0.1 with one state machine. Its runtime, and so the
/// listener and every connection, ends when it is dropped.
struct FakeSfn {
    url: String,
    state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

impl FakeSfn {
    fn start(end: End) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let state = Arc::new(Mutex::new(State::default()));
        let (s, end) = (state.clone(), Arc::new(end));
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, s.clone(), end.clone()));
            }
        });
        Self { url, state, _rt: rt }
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The execution input StartExecution carried (the request must have been made once).
    fn started_input(&self) -> RunInput {
        let calls = self.calls();
        let starts: Vec<_> = calls.iter().filter(|c| c.target == START).collect();
        assert_eq!(starts.len(), 1, "one StartExecution: {calls:?}");
        let input = starts[0].body["input"].as_str().expect("input is a JSON string");
        serde_json::from_str(input).unwrap_or_else(|e| panic!("{input} is not an execution input: {e}"))
    }

    /// Runs `csvlake start` against this endpoint, with credentials and region from the
    /// environment only.
    fn csvlake_start(&self, args: &[&str]) -> Finished {
        let mut child = Command::new(csvlake_bin())
            .arg("start")
            .args(["--state-machine-arn", STATE_MACHINE, "--sfn-endpoint-url", &self.url])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_SFN")
            .env_remove("CSVLAKE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run csvlake");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                pipe.read_to_string(&mut text).expect("read the output of csvlake");
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + PROCESS_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for csvlake") {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().expect("kill csvlake");
                child.wait().expect("reap csvlake");
                panic!("csvlake start {args:?} did not end within {PROCESS_LIMIT:?}; requests: {:?}", self.calls());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = Finished {
            code: status.code(),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        };
        eprintln!("csvlake start {args:?}: {status}\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        for c in self.calls() {
            assert_eq!((c.method.as_str(), c.path.as_str()), ("POST", "/"), "{c:?}");
            assert_eq!(c.content_type, "application/x-amz-json-1.0", "{c:?}");
        }
        out
    }
}

struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Serves the requests of one connection, kept alive until the client closes it.
async fn serve(stream: TcpStream, state: Arc<Mutex<State>>, end: Arc<End>) {
    let mut conn = BufReader::new(stream);
    loop {
        let request = match read_request(&mut conn).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let (status, body) = respond(&request, &state, &end);
        let body = body.to_string();
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\
             x-amzn-requestid: 00000000-0000-0000-0000-000000000000\r\nconnection: {}\r\n\r\n",
            body.len(),
            if request.close { "close" } else { "keep-alive" },
        );
        let stream = conn.get_mut();
        if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(body.as_bytes()).await.is_err() {
            return;
        }
        if stream.flush().await.is_err() || request.close {
            return;
        }
    }
}

struct Request {
    call: Call,
    close: bool,
}

/// Reads one HTTP/1.1 request; `None` when the client closed the connection between requests.
async fn read_request(conn: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned());
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
    if header("expect").eq_ignore_ascii_case("100-continue") {
        conn.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let mut body = Vec::new();
    if header("transfer-encoding").eq_ignore_ascii_case("chunked") {
        loop {
            line.clear();
            conn.read_line(&mut line).await?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16).map_err(|_| std::io::Error::other("bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if conn.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            conn.read_exact(&mut chunk).await?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let length: usize = header("content-length").parse().unwrap_or(0);
        body.resize(length, 0);
        conn.read_exact(&mut body).await?;
    }
    let call = Call {
        method,
        path,
        content_type: header("content-type"),
        target: header("x-amz-target"),
        body: serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into())),
    };
    Ok(Some(Request { call, close: header("connection").eq_ignore_ascii_case("close") }))
}

fn client_error(kind: &str, message: String) -> (&'static str, Value) {
    ("400 Bad Request", json!({"__type": kind, "message": message}))
}

/// Answers one request: records it, then plays the execution's part.
fn respond(request: &Request, state: &Mutex<State>, end: &End) -> (&'static str, Value) {
    const START_DATE: f64 = 1_767_225_600.0;
    let mut state = state.lock().unwrap();
    state.calls.push(request.call.clone());
    let body = &request.call.body;
    match request.call.target.as_str() {
        START => {
            if body["stateMachineArn"] != STATE_MACHINE {
                return client_error(
                    "StateMachineDoesNotExist",
                    format!("no state machine {}", body["stateMachineArn"]),
                );
            }
            if state.execution.is_some() {
                return client_error("ExecutionAlreadyExists", "started twice".into());
            }
            let name = body["name"].as_str().unwrap_or("6f1c2b9e-0d5a-4c1e-9a7b-3e2f1d0c9b8a");
            let arn = format!("{EXECUTION_PREFIX}{name}");
            state.execution = Some(arn.clone());
            ("200 OK", json!({"executionArn": arn, "startDate": START_DATE}))
        }
        DESCRIBE => {
            let arn = match &state.execution {
                Some(arn) if body["executionArn"] == arn.as_str() => arn.clone(),
                _ => return client_error("ExecutionDoesNotExist", format!("no execution {}", body["executionArn"])),
            };
            state.describes += 1;
            let mut d = json!({
                "executionArn": arn,
                "stateMachineArn": STATE_MACHINE,
                "name": arn.rsplit(':').next(),
                "status": "RUNNING",
                "startDate": START_DATE,
                "input": "{}",
            });
            if state.describes > 1 {
                d["stopDate"] = json!(START_DATE + 42.5);
                match end {
                    End::Succeeded(summary) => {
                        d["status"] = json!("SUCCEEDED");
                        d["output"] = json!(serde_json::to_string(summary).unwrap());
                    }
                    End::Failed { error, cause } => {
                        d["status"] = json!("FAILED");
                        d["error"] = json!(error);
                        d["cause"] = json!(cause);
                    }
                }
            }
            ("200 OK", d)
        }
        other => client_error("UnknownOperationException", format!("unknown operation {other:?}")),
    }
}

fn at(bucket: &str, key: &str) -> ObjectLocation {
    ObjectLocation { bucket: bucket.into(), key: key.into() }
}

/// The summary the reducer of run `run-1` would return: 3 of 4 files converted.
fn summary_with_a_failure() -> RunSummary {
    RunSummary {
        run_id: "run-1".into(),
        status: RunStatus::Succeeded,
        exceeded_tolerance: false,
        totals: Totals {
            files: 4,
            converted: 3,
            failed: 1,
            skipped: 0,
            orphaned: 0,
            rows: 1200,
            bytes_in: 2_500_000,
            bytes_out: 800_000,
            millis: 900,
        },
        failures_by_kind: BTreeMap::from([("bad_input.ragged_row".to_owned(), 1)]),
        map_error: None,
        report: at("lake", "converted/_runs/run-1/report.json"),
        files: at("lake", "converted/_runs/run-1/files.jsonl"),
        failed_keys: Some(at("lake", "converted/_runs/run-1/failed-keys.json")),
    }
}

/// The DescribeExecution requests, each of which must name the started execution.
fn describes(fake: &FakeSfn, arn: &str) -> usize {
    let calls = fake.calls();
    assert_eq!(calls.first().map(|c| c.target.as_str()), Some(START), "StartExecution comes first: {calls:?}");
    let d: Vec<_> = calls.iter().filter(|c| c.target == DESCRIBE).collect();
    assert_eq!(d.len() + 1, calls.len(), "only StartExecution and DescribeExecution: {calls:?}");
    for c in &d {
        assert_eq!(c.body, json!({"executionArn": arn}), "{c:?}");
    }
    d.len()
}

#[test]
fn a_scan_waits_for_the_summary_and_exits_2_when_a_file_failed() {
    let fake = FakeSfn::start(End::Succeeded(Box::new(summary_with_a_failure())));
    let out = fake.csvlake_start(&[
        "--prefix",
        "s3://raw/landing/",
        "--output",
        "s3://lake/converted/",
        "--formats",
        "parquet",
        "--force",
        "--name",
        "run-1",
        "--wait",
        "--poll-seconds",
        "0",
    ]);
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);

    let start = &fake.calls()[0];
    assert_eq!(start.body["stateMachineArn"], STATE_MACHINE);
    assert_eq!(start.body["name"], "run-1");
    assert_eq!(
        fake.started_input(),
        RunInput {
            input: Some(InputLocation {
                bucket: "raw".into(),
                prefix: "landing/".into(),
                scan: Vec::new(),
                suffixes: default_suffixes()
            }),
            output: Some(OutputLocation { bucket: "lake".into(), prefix: "converted/".into() }),
            mode: Mode::Scan,
            formats: Some(vec![Format::Parquet]),
            incremental: Some(false),
            ..RunInput::default()
        }
    );
    let arn = format!("{EXECUTION_PREFIX}run-1");
    assert!(describes(&fake, &arn) >= 2, "polled past RUNNING: {:?}", fake.calls());

    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some(format!("started {arn}").as_str()), "{}", out.stdout);
    let totals = lines.get(1).copied().unwrap_or_default();
    assert!(
        totals.starts_with("4 files: 3 converted, 1 failed, 0 up to date · 1200 rows · 2.5 MB in, 0.8 MB out"),
        "{totals}"
    );
    // The time is the execution's own, from its start and stop dates, not the time polled.
    assert!(totals.contains(" · 42.50 s · 6 files/min · "), "{totals}");
    assert!(totals.ends_with(" · run run-1"), "{totals}");
    for expected in [
        "failed: bad_input.ragged_row: 1 files",
        "report: s3://lake/converted/_runs/run-1/report.json",
        "failed keys: s3://lake/converted/_runs/run-1/failed-keys.json",
        &format!(
            "after fixing them: csvlake start --state-machine-arn {STATE_MACHINE} \
             --reprocess s3://lake/converted/_runs/run-1/failed-keys.json"
        ),
    ] {
        assert!(lines.contains(&expected), "no line {expected:?} in:\n{}", out.stdout);
    }
}

#[test]
fn a_run_without_failures_exits_0() {
    let summary = RunSummary {
        totals: Totals { files: 5, converted: 2, failed: 0, skipped: 3, rows: 10, ..Totals::default() },
        failures_by_kind: BTreeMap::new(),
        failed_keys: None,
        ..summary_with_a_failure()
    };
    let fake = FakeSfn::start(End::Succeeded(Box::new(summary)));
    let out = fake.csvlake_start(&[
        "--prefix",
        "s3://raw/landing/",
        "--output",
        "s3://lake/converted/",
        "--incremental",
        "--name",
        "run-1",
        "--wait",
        "--poll-seconds",
        "0",
    ]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(fake.started_input().incremental, Some(true));
    assert!(out.stdout.contains("\n2 files: 2 converted, 0 failed, 3 up to date · 10 rows · "), "{}", out.stdout);
    assert!(out.stdout.contains(" · 42.50 s · 3 files/min"), "{}", out.stdout);
    assert!(!out.stdout.contains("failed keys") && !out.stdout.contains("--reprocess"), "{}", out.stdout);
}

#[test]
fn reprocess_without_wait_starts_a_report_run_and_returns() {
    let fake = FakeSfn::start(End::Failed { error: "States.Runtime", cause: "must not be asked for" });
    let out = fake.csvlake_start(&["--reprocess", "s3://lake/converted/_runs/run-1/failed-keys.json"]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "StartExecution and no DescribeExecution: {calls:?}");
    assert_eq!(calls[0].target, START);
    assert!(calls[0].body.get("name").is_none(), "Step Functions names the execution: {:?}", calls[0].body);
    assert_eq!(
        fake.started_input(),
        RunInput {
            mode: Mode::Report,
            report: Some(at("lake", "converted/_runs/run-1/failed-keys.json")),
            ..RunInput::default()
        }
    );
    let arn = fake.state.lock().unwrap().execution.clone().expect("an execution");
    assert_eq!(out.stdout, format!("started {arn}\n"));
    assert!(arn.starts_with("arn:aws:states:"), "{arn}");
}

fn example_input() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../statemachine/examples/scheduled-incremental.json")
}

#[test]
fn a_failed_execution_exits_2_when_it_exceeded_the_tolerance_and_1_otherwise() {
    let example = example_input();
    let file_input: RunInput =
        serde_json::from_str(&std::fs::read_to_string(&example).expect("the example input")).expect("parses");
    let args = ["--input", example.to_str().unwrap(), "--name", "nightly-7", "--wait", "--poll-seconds", "0"];
    let arn = format!("{EXECUTION_PREFIX}nightly-7");

    let cause = r#"{"failed":3,"files":20,"tolerated_failure_percentage":5}"#;
    let fake = FakeSfn::start(End::Failed { error: "csvlake.ToleranceExceeded", cause });
    let out = fake.csvlake_start(&args);
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert_eq!(fake.started_input(), file_input);
    assert!(describes(&fake, &arn) >= 2, "polled past RUNNING: {:?}", fake.calls());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("started {arn}"),
            format!("execution FAILED: csvlake.ToleranceExceeded: {cause}"),
            "report: s3://csvlake-output/converted/_runs/nightly-7/report.json".to_owned(),
        ],
        "{}",
        out.stdout
    );

    let fake = FakeSfn::start(End::Failed {
        error: "States.Runtime",
        cause: "An error occurred while executing the state 'Plan'",
    });
    let out = fake.csvlake_start(&args);
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert!(describes(&fake, &arn) >= 2, "polled past RUNNING: {:?}", fake.calls());
    assert!(
        out.stdout.contains("execution FAILED: States.Runtime: An error occurred while executing the state 'Plan'\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn without_an_input_choice_nothing_starts_and_the_choices_are_named() {
    let fake = FakeSfn::start(End::Failed { error: "States.Runtime", cause: "must not be asked for" });
    let out = fake.csvlake_start(&["--wait", "--poll-seconds", "0"]);
    assert_eq!(out.code, Some(1), "stdout: {}", out.stdout);
    for flag in ["--input", "--prefix", "--reprocess"] {
        assert!(out.stderr.contains(flag), "{flag} not named in: {}", out.stderr);
    }
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}
