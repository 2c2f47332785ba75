//! Reliability against an independent S3 server with injected faults: moto's server, the
//! fault-injecting proxy of [`csvlake_tests::faults`] in front of it, and `csvlake run` as a
//! process, as a person runs it. 200 files, four of them large enough that both their outputs
//! are written by multipart upload.
//!
//! - A fault-free run straight to moto is the reference.
//! - A run through the proxy with faults in one request in ten of every kind (GetObject,
//!   PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//!   AbortMultipartUpload, ListObjectsV2, ListMultipartUploads, HeadObject…), of every kind of
//!   fault (503 SlowDown, 500, a reset before the request reaches moto, a reset after moto
//!   handled it, a truncated body, a slow answer), and a run whose CreateMultipartUpload,
//!   CompleteMultipartUpload and conditional PutObject answers are lost and whose reads of a
//!   lease and of the report are cut short (on top of the same faults): each exits 0,
//!   reports 200 files converted and none failed, leaves outputs byte-identical to the
//!   reference's, and leaves no multipart upload in progress.
//! - Runs killed with SIGKILL at several points, then a run without faults: no object that is
//!   not the reference's was ever visible under the outputs, the last run's outputs are the
//!   reference's, and no multipart upload is left.
//! - GETs that are never answered, or answered with half a body, are retried: the run converts
//!   every file.
//!
//! Product properties are soft checks: each prints `ok:` or `FAILED:` with its evidence, and the
//! test fails at the end naming every failed check, so that one failure does not hide the others.
//!
//! moto's server is needed: `CSVLAKE_MOTO_SERVER` names its executable (`bash scripts/test`
//! installs it into a virtualenv and sets the variable). Without it the tests say they were
//! skipped, and pass. The seed of the faults is printed; `CSVLAKE_FAULT_SEED` replays them (which
//! requests get a fault also depends on the order in which the requests of one operation
//! arrive).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use csvlake_contract::errors::RUN_IN_PROGRESS;
use csvlake_contract::run::Report;
use csvlake_tests::faults::{Fault, FaultProxy, Stall, fault_seed};
use csvlake_tests::moto::Moto;
use csvlake_tests::{Cell, Rng, csvlake_bin, gzip, large_csv, read_avro, read_parquet};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The input bucket; inputs lie under [`LANDING`].
const IN: &str = "raw";
/// The output bucket; each run writes under a prefix of its own.
const LAKE: &str = "lake";
/// The input prefix.
const LANDING: &str = "landing/";
/// The files of the corpus.
const FILES: u64 = 200;
/// How long a run may take before the test kills it and says so.
const RUN_LIMIT: Duration = Duration::from_secs(180);
/// How long the run with stalled GETs may take.
const STALL_LIMIT: Duration = Duration::from_secs(120);
/// The share of the requests of each operation that get a fault.
const RATE: f64 = 0.10;
/// Lost answers of the run that loses them: of each operation, this many.
const LOST_ANSWERS: u64 = 3;

/// moto's server executable, or `None` (after saying so) when the variable is not set.
fn moto_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CSVLAKE_MOTO_SERVER").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    // Written to the process's own stderr, past the test harness's capture, so that a plain
    // `cargo test` shows it.
    let _ = writeln!(
        std::io::stderr(),
        "faults: skipped: CSVLAKE_MOTO_SERVER is not set (it names moto's server executable; bash scripts/test \
         installs moto and sets it)"
    );
    None
}

/// Product properties, checked without stopping at the first failure.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str, evidence: impl FnOnce() -> String) {
        if ok {
            eprintln!("ok: {what}");
        } else {
            let evidence = evidence();
            eprintln!("FAILED: {what}: {evidence}");
            self.failed.push(format!("{what}: {evidence}"));
        }
    }

    fn finish(self) {
        assert!(self.failed.is_empty(), "{} check(s) failed:\n- {}", self.failed.len(), self.failed.join("\n- "));
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus

/// Latin-1 bytes of text whose every character is below U+0100.
fn latin1(text: &str) -> Vec<u8> {
    text.chars().map(|c| u8::try_from(u32::from(c)).expect("a latin-1 character")).collect()
}

/// Large inputs: name, seed and size. Their text barely compresses, so that both outputs of
/// each pass the 8 MiB part size and are written by multipart upload (two parts each).
const LARGE: [(&str, u64, usize); 4] =
    [("a", 7, 10 << 20), ("b", 8, 11 << 20), ("c", 9, 10 << 20), ("d", 10, 12 << 20)];

/// 196 files of a few KB in three tables (UTF-8 with `,`; Latin-1 with `;`; gzip), and the
/// [`LARGE`] files in a fourth: 200 files.
fn corpus() -> Vec<(String, Vec<u8>)> {
    const NAMES: [&str; 6] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken"];
    const LEGACY: [&str; 7] = ["Müller", "Jörg Straße", "Café Noël", "Søren Ærø", "Zoë", "Ångström", "Façade"];
    const TOWNS: [&str; 4] = ["Köln", "Zürich", "Malmö", "Besançon"];
    let mut files = Vec::new();
    for i in 0..66u64 {
        let mut rng = Rng::new(1_000 + i);
        let mut s = String::from("id,customer,amount,day,paid\n");
        for r in 0..40 + rng.below(40) {
            let name = NAMES[rng.below(6) as usize];
            s.push_str(&format!(
                "{r},\"{name}, {}.\",{}.{:02},2026-01-{:02},{}\n",
                char::from(b'A' + rng.below(26) as u8),
                rng.below(10_000),
                rng.below(100),
                1 + rng.below(28),
                rng.below(2) == 0
            ));
        }
        files.push((format!("{LANDING}sales/2026-01-{i:03}.csv"), s.into_bytes()));
    }
    for i in 0..65u64 {
        let mut rng = Rng::new(2_000 + i);
        let mut s = String::from("nummer;name;stadt;menge\n");
        for r in 0..40 + rng.below(40) {
            let name = LEGACY[rng.below(7) as usize];
            let town = TOWNS[rng.below(4) as usize];
            s.push_str(&format!("{r};{name};{town};{}\n", rng.below(500)));
        }
        files.push((format!("{LANDING}legacy/export-{i:03}.csv"), latin1(&s)));
    }
    for i in 0..65u64 {
        let mut rng = Rng::new(3_000 + i);
        let mut s = String::from("ts,event,user,value\n");
        for _ in 0..60 + rng.below(40) {
            let event = ["click", "view", "buy"][rng.below(3) as usize];
            s.push_str(&format!(
                "2026-03-{:02}T{:02}:{:02}:00Z,{event},u{},{}.{}\n",
                1 + rng.below(28),
                rng.below(24),
                rng.below(60),
                rng.below(1_000),
                rng.below(100),
                rng.below(10)
            ));
        }
        files.push((format!("{LANDING}events/day-{i:03}.csv.gz"), gzip(s.as_bytes())));
    }
    for (name, seed, size) in LARGE {
        files.push((format!("{LANDING}big/{name}.csv"), large_csv(seed, size).0.into_bytes()));
    }
    assert_eq!(files.len(), FILES as usize);
    files
}

/// Creates the buckets and uploads the inputs, straight to moto.
async fn set_up(s3: &Client, inputs: &[(String, Vec<u8>)]) {
    for bucket in [IN, LAKE] {
        s3.create_bucket().bucket(bucket).send().await.unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    }
    for (key, bytes) in inputs {
        s3.put_object()
            .bucket(IN)
            .key(key)
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload {key}: {e:?}"));
    }
}

/// An input key's output path relative to the output prefix, without the format's extension
/// (`sales/2026-01-000`).
fn rel_of(key: &str) -> String {
    let rel = key.strip_prefix(LANDING).expect("under the landing prefix");
    rel.strip_suffix(".csv.gz").or_else(|| rel.strip_suffix(".csv")).expect("a .csv or .csv.gz key").to_owned()
}

// ---------------------------------------------------------------------------------------------
// Running csvlake

/// A finished (or killed) `csvlake run`.
struct Run {
    label: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    /// The test killed it: at the time it was to be killed, or when it overran its limit.
    killed: bool,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The run as evidence: status, time and the end of its output.
    fn evidence(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n  ")
        };
        format!(
            "{} after {:.1} s{}\n  stdout:\n  {}\n  stderr:\n  {}",
            self.status,
            self.elapsed.as_secs_f64(),
            if self.killed { " (killed by the test)" } else { "" },
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }

    /// Whether the run was refused because a table's lease is held.
    fn refused_by_a_lease(&self) -> bool {
        self.code() == Some(1) && self.stderr.contains(RUN_IN_PROGRESS)
    }
}

/// `csvlake run` from the landing prefix to `s3://lake/<prefix>` at `endpoint`, run id `run_id`.
fn csvlake(endpoint: &str, prefix: &str, run_id: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(csvlake_bin());
    c.arg("run")
        .args(["--input", &format!("s3://{IN}/{LANDING}"), "--output", &format!("s3://{LAKE}/{prefix}")])
        .args(["--endpoint-url", endpoint, "--quiet", "--run-id", run_id])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        // Warnings, and what the runs abort and why.
        .env("CSVLAKE_LOG", "warn,csvlake_s3::upload=info,csvlake_reducer=info,csvlake_planner=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Runs `cmd` until it exits, or kills it (SIGKILL) after `kill_after`.
async fn run(label: &str, mut cmd: Command, kill_after: Duration) -> Run {
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start csvlake");
    let read = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf).await;
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let (status, killed) = match tokio::time::timeout(kill_after, child.wait()).await {
        Ok(status) => (status.expect("wait for csvlake"), false),
        Err(_) => {
            child.kill().await.expect("kill csvlake");
            (child.wait().await.expect("wait for csvlake"), true)
        }
    };
    let run = Run {
        label: label.to_owned(),
        status,
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
        elapsed: started.elapsed(),
        killed,
    };
    // The whole output, for a failure that its end does not explain.
    let log = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("faults")
        .join(format!("{}.log", run.label.replace(['/', ' '], "_")));
    let _ = std::fs::create_dir_all(log.parent().expect("a directory"));
    let _ = std::fs::write(&log, format!("{}\n--- stderr\n{}", run.stdout, run.stderr));
    eprintln!("--- {} (whole output: {}): {}", run.label, log.display(), run.evidence());
    run
}

// ---------------------------------------------------------------------------------------------
// Reading what a run left, straight from moto

async fn get(s3: &Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Some(o.body.collect().await.expect("read an object").into_bytes().to_vec()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
        Err(e) => panic!("GetObject s3://{bucket}/{key}: {e:?}"),
    }
}

async fn list(s3: &Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListObjectsV2 s3://{bucket}/{prefix}: {e:?}"));
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return keys;
        }
    }
}

async fn report(s3: &Client, prefix: &str, run_id: &str) -> Option<Report> {
    let bytes = get(s3, LAKE, &format!("{prefix}_runs/{run_id}/report.json")).await?;
    Some(serde_json::from_slice(&bytes).expect("report.json parses"))
}

/// The failed files of a report, one per line.
fn failures(report: &Report) -> String {
    let lines: Vec<String> =
        report.failed.iter().map(|f| format!("{}: {}: {}", f.key, f.error.kind, f.error.message)).collect();
    format!("totals {:?}; failed:\n  {}", report.totals, lines.join("\n  "))
}

/// Multipart uploads in progress under `prefix` of the output bucket, as listed by moto itself.
async fn uploads_in_progress(s3: &Client, prefix: &str) -> Vec<String> {
    let out = s3
        .list_multipart_uploads()
        .bucket(LAKE)
        .prefix(prefix)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListMultipartUploads: {e:?}"));
    out.uploads()
        .iter()
        .filter(|u| u.key().is_some_and(|k| k.starts_with(prefix)))
        .map(|u| {
            format!(
                "{} (upload {}, initiated {})",
                u.key().unwrap_or_default(),
                u.upload_id().unwrap_or_default(),
                u.initiated().map(|t| t.to_string()).unwrap_or_default()
            )
        })
        .collect()
}

/// Deletes the table leases under `prefix`, as the README says to do after a local run was
/// killed. Returns the keys deleted.
async fn delete_leases(s3: &Client, prefix: &str) -> Vec<String> {
    let leases: Vec<String> =
        list(s3, LAKE, &format!("{prefix}_tables/")).await.into_iter().filter(|k| k.ends_with("/lease.json")).collect();
    for key in &leases {
        s3.delete_object().bucket(LAKE).key(key).send().await.unwrap_or_else(|e| panic!("delete {key}: {e:?}"));
    }
    leases
}

// ---------------------------------------------------------------------------------------------
// Comparing outputs with the reference's

/// An output's columns (name and type) and rows, as read by the harness's readers.
#[derive(PartialEq)]
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Reads a Parquet or Avro file; an unreadable file is an error, not a panic.
    fn read(path: &Path) -> Result<Self, String> {
        let parquet = path.extension().is_some_and(|e| e == "parquet");
        std::panic::catch_unwind(|| {
            if parquet {
                let p = read_parquet(path);
                let columns = p.schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect();
                Self { columns, rows: p.rows }
            } else {
                let a = read_avro(path);
                Self { columns: a.fields.iter().map(|(n, s)| format!("{n}: {s:?}")).collect(), rows: a.rows }
            }
        })
        .map_err(|e| {
            let message =
                e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()));
            format!("unreadable: {}", message.unwrap_or_default())
        })
    }

    /// Where `self` differs from `want`, if it does.
    fn difference(&self, want: &Self) -> Option<String> {
        if self.columns != want.columns {
            return Some(format!("columns {:?}, expected {:?}", self.columns, want.columns));
        }
        if self.rows.len() != want.rows.len() {
            return Some(format!("{} rows, expected {}", self.rows.len(), want.rows.len()));
        }
        let (i, (got, expected)) = self.rows.iter().zip(&want.rows).enumerate().find(|(_, (g, w))| g != w)?;
        Some(format!("row {i} is {got:?}, expected {expected:?}"))
    }
}

/// The fault-free run's outputs: their bytes, by path relative to its prefix. Every one of them
/// was read back by the harness's Parquet and Avro readers when it was loaded.
struct Reference {
    outputs: BTreeMap<String, Vec<u8>>,
    dir: tempfile::TempDir,
}

impl Reference {
    async fn load(s3: &Client, prefix: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outputs = BTreeMap::new();
        for rel in output_rels(s3, prefix).await {
            let bytes = get(s3, LAKE, &format!("{prefix}{rel}")).await.expect("a listed output");
            let path = dir.path().join(rel.replace('/', "__"));
            std::fs::write(&path, &bytes).expect("write an output");
            Table::read(&path).unwrap_or_else(|e| panic!("reference output {rel}: {e}"));
            let _ = std::fs::remove_file(&path);
            outputs.insert(rel, bytes);
        }
        Self { outputs, dir }
    }

    /// Why `bytes`, found at `rel`, are not the reference's output there, if they are not: no
    /// such output, or other bytes (then, whether they parse and what their content is).
    fn mismatch(&self, rel: &str, bytes: &[u8]) -> Option<String> {
        let Some(want) = self.outputs.get(rel) else { return Some(format!("{rel}: not an output of the clean run")) };
        if bytes == want.as_slice() {
            return None;
        }
        let at = bytes.iter().zip(want).position(|(a, b)| a != b).unwrap_or(bytes.len().min(want.len()));
        let name = rel.replace('/', "__");
        let (got_path, want_path) = (self.dir.path().join(format!("got-{name}")), self.dir.path().join(&name));
        std::fs::write(&got_path, bytes).expect("write an output");
        std::fs::write(&want_path, want).expect("write an output");
        let content = match (Table::read(&got_path), Table::read(&want_path)) {
            (Err(e), _) => e,
            (Ok(got), Ok(want)) => got.difference(&want).unwrap_or_else(|| "the same decoded content".into()),
            (Ok(_), Err(e)) => format!("the reference is {e}"),
        };
        let _ = std::fs::remove_file(&got_path);
        let _ = std::fs::remove_file(&want_path);
        Some(format!("{rel}: {} bytes, expected {}; first difference at byte {at}; {content}", bytes.len(), want.len()))
    }

    /// Checks that the outputs under `prefix` are the reference's, byte for byte.
    async fn compare(&self, checks: &mut Checks, s3: &Client, prefix: &str, label: &str) {
        let got: BTreeSet<String> = output_rels(s3, prefix).await.into_iter().collect();
        let want: BTreeSet<String> = self.outputs.keys().cloned().collect();
        checks.check(got == want, &format!("{label}: the same output objects as the clean run"), || {
            format!(
                "missing {:?}; extra {:?}",
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>()
            )
        });
        let mut differ = Vec::new();
        for rel in want.intersection(&got) {
            let bytes = get(s3, LAKE, &format!("{prefix}{rel}")).await.expect("a listed output");
            differ.extend(self.mismatch(rel, &bytes));
        }
        checks.check(
            differ.is_empty(),
            &format!("{label}: every output is byte-identical to the clean run's ({} outputs)", want.len()),
            || differ.join("\n  "),
        );
    }
}

/// Output objects under `prefix` (Parquet and Avro), relative to it.
async fn output_rels(s3: &Client, prefix: &str) -> Vec<String> {
    let mut rels = Vec::new();
    for format in ["parquet/", "avro/"] {
        let under = format!("{prefix}{format}");
        rels.extend(list(s3, LAKE, &under).await.into_iter().map(|k| k[prefix.len()..].to_owned()));
    }
    rels
}

/// Watches the outputs under a prefix while runs write there: every object that appears, and
/// every new version of one (by ETag), is read and compared with the reference's.
struct Watcher {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// What was not the reference's, and how many object versions were read.
    seen: Arc<Mutex<(Vec<String>, u64)>>,
}

impl Watcher {
    fn start(s3: Client, prefix: &'static str, reference: Arc<Reference>) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let seen = Arc::new(Mutex::new((Vec::new(), 0)));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut read: HashMap<String, String> = HashMap::new();
            loop {
                let last = *stopped.borrow();
                for format in ["parquet/", "avro/"] {
                    let under = format!("{prefix}{format}");
                    let Ok(objects) = list_etags(&s3, &under).await else { continue };
                    for (key, etag) in objects {
                        if read.get(&key) == Some(&etag) {
                            continue;
                        }
                        // Gone since it was listed (or replaced): the next pass reads it again.
                        let Ok(o) = s3.get_object().bucket(LAKE).key(&key).send().await else { continue };
                        let etag_now = o.e_tag().unwrap_or_default().to_owned();
                        let Ok(body) = o.body.collect().await else { continue };
                        let mismatch = reference.mismatch(&key[prefix.len()..], &body.into_bytes());
                        let mut r = record.lock().expect("the watcher's record");
                        r.0.extend(mismatch);
                        r.1 += 1;
                        read.insert(key, etag_now);
                    }
                }
                if last {
                    return;
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
        });
        Self { stop, task, seen }
    }

    /// Stops after one last pass; returns what was not the reference's and how many object
    /// versions were read.
    async fn finish(self) -> (Vec<String>, u64) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.seen.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Keys and ETags under `prefix`.
async fn list_etags(s3: &Client, prefix: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(LAKE)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        out.extend(page.contents().iter().filter_map(|o| Some((o.key()?.to_owned(), o.e_tag()?.to_owned()))));
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Checks a run that should have converted every file: exit status 0, a report that counts
/// `converted` files converted (and the rest up to date) and none failed, and no multipart
/// upload left in progress. Returns the report.
async fn check_clean_run(
    checks: &mut Checks,
    s3: &Client,
    run: &Run,
    prefix: &str,
    run_id: &str,
    converted: Option<u64>,
) -> Option<Report> {
    let label = &run.label;
    checks.check(run.code() == Some(0), &format!("{label}: exit status 0"), || run.evidence());
    let report = report(s3, prefix, run_id).await;
    match &report {
        Some(r) => {
            let t = &r.totals;
            let exact = t.failed == 0
                && r.failed.is_empty()
                && t.files == FILES
                && converted.is_none_or(|c| t.converted == c)
                && t.converted + t.skipped == FILES;
            let what = match converted {
                Some(c) => format!("{label}: the report counts {FILES} files, {c} converted, 0 failed"),
                None => format!("{label}: the report counts {FILES} files converted or up to date, 0 failed"),
            };
            checks.check(exact, &what, || failures(r));
        }
        None => checks
            .check(false, &format!("{label}: report.json exists"), || format!("no {prefix}_runs/{run_id}/report.json")),
    }
    let left = uploads_in_progress(s3, prefix).await;
    checks.check(left.is_empty(), &format!("{label}: no multipart upload left in progress under {prefix}"), || {
        left.join("\n  ")
    });
    report
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Every operation that the runs with faults must have had faults injected into.
const OPERATIONS: [&str; 10] = [
    "GetObject",
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListObjectsV2",
    "ListMultipartUploads",
    "HeadObject",
    "DeleteObject",
];

/// A fault-free reference run; a run with faults in one request in ten of every operation; a run
/// whose CreateMultipartUpload and CompleteMultipartUpload answers are lost; runs killed with
/// SIGKILL followed by a run without faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_kills_leave_the_outputs_of_a_clean_run() {
    let Some(bin) = moto_server() else { return };
    let started = Instant::now();
    let moto = Moto::start(&bin);
    let s3 = moto.client();
    let inputs = corpus();
    set_up(&s3, &inputs).await;
    eprintln!(
        "corpus: {FILES} files, {} bytes, uploaded in {:.1?}",
        inputs.iter().map(|f| f.1.len()).sum::<usize>(),
        started.elapsed()
    );
    let mut checks = Checks::default();

    // The reference: a fault-free run straight to moto.
    let clean = run("clean run", csvlake(&moto.url(), "clean/", "clean", &[]), RUN_LIMIT).await;
    assert_eq!(clean.code(), Some(0), "the fault-free run succeeds: {}", clean.evidence());
    let r = report(&s3, "clean/", "clean").await.expect("the fault-free run's report");
    assert_eq!((r.totals.converted, r.totals.failed), (FILES, 0), "{}", failures(&r));
    // The large files' outputs were written by multipart upload: their ETags say so.
    for (name, _, _) in LARGE {
        for rel in [format!("parquet/big/{name}.parquet"), format!("avro/big/{name}.avro")] {
            let head = s3.head_object().bucket(LAKE).key(format!("clean/{rel}")).send().await.expect("a large output");
            let etag = head.e_tag().unwrap_or_default();
            assert!(
                etag.contains('-'),
                "clean/{rel} ({:?} bytes) was written by multipart upload: ETag {etag}",
                head.content_length()
            );
        }
    }
    let reference = Arc::new(Reference::load(&s3, "clean/").await);
    assert_eq!(reference.outputs.len(), 2 * inputs.len(), "two outputs per input");
    // Conversion is deterministic: a second fault-free run writes the same bytes.
    let again = run("second clean run", csvlake(&moto.url(), "again/", "again", &[]), RUN_LIMIT).await;
    check_clean_run(&mut checks, &s3, &again, "again/", "again", Some(FILES)).await;
    reference.compare(&mut checks, &s3, "again/", &again.label).await;
    eprintln!("reference loaded after {:.1?}", started.elapsed());

    // Through the proxy, with faults.
    let seed = fault_seed();
    eprintln!("fault proxy seed: {seed} (replay with CSVLAKE_FAULT_SEED={seed})");
    let proxy = FaultProxy::start(moto.addr(), seed).await.expect("start the fault proxy");
    let mut faulted_operations: BTreeMap<&str, u64> = BTreeMap::new();
    let mut faults_by_kind: BTreeMap<Fault, u64> = BTreeMap::new();
    for (name, prefix, lose_answers) in
        [("faults in 10% of every operation", "faults/", false), ("lost answers, and 10% faults", "acks/", true)]
    {
        proxy.reset_counts();
        proxy.inject(RATE, &Fault::ALL);
        if lose_answers {
            proxy.target("CreateMultipartUpload", Fault::ResetAfter, LOST_ANSWERS);
            proxy.target("CompleteMultipartUpload", Fault::LostCompletion, LOST_ANSWERS);
            // Conditional writes of a table's state whose answers are lost: the retry is refused.
            proxy.target_path("PutObject", "/lease.json", Fault::ResetAfter, 1);
            proxy.target_path("PutObject", "/current.json", Fault::ResetAfter, 1);
            // Small objects whose body breaks off: a lease the reducer reads, and the report
            // that `csvlake run` reads to print its summary.
            proxy.target_path("GetObject", "/lease.json", Fault::TruncatedBody, 1);
            proxy.target_path("GetObject", "/report.json", Fault::TruncatedBody, 1);
        }
        let run_id = prefix.trim_end_matches('/');
        let faulted = run(name, csvlake(&proxy.url(), prefix, run_id, &[]), RUN_LIMIT).await;
        proxy.inject(0.0, &[]);
        let by_operation = proxy.injected_by_operation();
        let (requests, answers) = (proxy.requests(), proxy.answers());
        eprintln!("{name}: requests {requests:?}");
        eprintln!("{name}: injected {:?}", proxy.injected());
        eprintln!("{name}: injected by operation {by_operation:?}");
        eprintln!("{name}: moto's answers {answers:?}");
        for ((op, fault), n) in &by_operation {
            *faulted_operations.entry(op).or_default() += n;
            *faults_by_kind.entry(*fault).or_default() += n;
        }
        let report = check_clean_run(&mut checks, &s3, &faulted, prefix, run_id, Some(FILES)).await;
        reference.compare(&mut checks, &s3, prefix, name).await;
        checks.check(proxy.upstream_errors() == 0, &format!("{name}: moto answered every request passed on"), || {
            format!("{} requests failed upstream", proxy.upstream_errors())
        });
        if lose_answers {
            let lost = |op: &'static str, fault: Fault| by_operation.get(&(op, fault)).copied().unwrap_or(0);
            checks.check(
                lost("CreateMultipartUpload", Fault::ResetAfter) >= LOST_ANSWERS
                    && lost("CompleteMultipartUpload", Fault::LostCompletion) == LOST_ANSWERS
                    && lost("PutObject", Fault::ResetAfter) >= 2
                    && lost("GetObject", Fault::TruncatedBody) >= 2,
                &format!("{name}: the answers were lost"),
                || format!("{by_operation:?}"),
            );
            // A completion applied whose answer was lost is answered NoSuchUpload when sent
            // again: the object's provenance shows it is in place.
            let no_such_upload = answers.get(&("CompleteMultipartUpload", 404)).copied().unwrap_or(0);
            checks.check(
                no_such_upload >= LOST_ANSWERS && requests.get("HeadObject").copied().unwrap_or(0) >= LOST_ANSWERS,
                &format!("{name}: completions sent again were answered NoSuchUpload, and the objects looked up"),
                || format!("requests {requests:?}, answers {answers:?}"),
            );
            // The index of every table was written, though one current.json's answer was lost.
            let tables: Vec<String> = report
                .iter()
                .flat_map(|r| &r.tables)
                .map(|t| format!("{}: generation {:?}, {} entries", t.name, t.generation, t.entries))
                .collect();
            let indexed = report.as_ref().is_some_and(|r| {
                r.tables.len() == 4
                    && r.tables.iter().all(|t| t.generation == Some(1))
                    && r.tables.iter().map(|t| t.entries).sum::<u64>() == FILES
            });
            checks.check(
                indexed,
                &format!("{name}: each of the 4 tables' index is at generation 1, {FILES} entries in all"),
                || format!("{tables:?}"),
            );
            // Each lost CreateMultipartUpload answer left an upload that the run aborted.
            let aborted: u64 = report.iter().flat_map(|r| &r.tables).map(|t| t.aborted_uploads).sum();
            checks.check(
                aborted >= LOST_ANSWERS,
                &format!(
                    "{name}: the report counts the {LOST_ANSWERS} uploads whose creation was not answered as aborted"
                ),
                || {
                    format!(
                        "{aborted} aborted uploads in the tables' reports: {:?}",
                        report.as_ref().map(|r| &r.tables)
                    )
                },
            );
        }
    }
    eprintln!("faults injected, by kind: {faults_by_kind:?}; by operation: {faulted_operations:?}");
    for fault in Fault::ALL {
        checks.check(
            faults_by_kind.get(&fault).is_some_and(|n| *n > 0),
            &format!("{fault:?} faults were injected"),
            || format!("{faults_by_kind:?}"),
        );
    }
    for op in OPERATIONS {
        checks.check(
            faulted_operations.get(op).is_some_and(|n| *n > 0),
            &format!("faults were injected into {op}"),
            || format!("{faulted_operations:?}"),
        );
    }
    drop(proxy);
    eprintln!("fault runs done after {:.1?}", started.elapsed());

    // SIGKILL at several points, then a run without faults. A killed run keeps its tables'
    // leases: as the README says, they are deleted before the next run.
    let prefix = "killed/";
    let watcher = Watcher::start(s3.clone(), prefix, reference.clone());
    // Points through a run: in its planning, its conversion and near its end.
    let takes = clean.elapsed.min(again.elapsed);
    for (n, share) in [(1, 0.15), (2, 0.45), (3, 0.75)] {
        let after = takes.mul_f64(share);
        let label = format!("run {n} killed after {:.1} s", after.as_secs_f64());
        let killed = run(&label, csvlake(&moto.url(), prefix, &format!("killed-{n}"), &[]), after).await;
        checks.check(killed.killed, &format!("{label}: still running when killed"), || killed.evidence());
        eprintln!("{label}: multipart uploads in progress: {:?}", uploads_in_progress(&s3, prefix).await);
        if n == 1 {
            let refused = run("run after a kill", csvlake(&moto.url(), prefix, "refused", &[]), RUN_LIMIT).await;
            checks.check(
                refused.refused_by_a_lease() && refused.stderr.contains("lease.json"),
                "a run after a killed run is refused, naming the lease to delete",
                || refused.evidence(),
            );
        }
        eprintln!("deleted the killed run's leases: {:?}", delete_leases(&s3, prefix).await);
    }
    let last = run("run after the kills", csvlake(&moto.url(), prefix, "after-kills", &[]), RUN_LIMIT).await;
    let (not_reference, read) = watcher.finish().await;
    checks.check(
        not_reference.is_empty(),
        &format!("killed runs: every output object ever seen is the clean run's ({read} object versions read)"),
        || not_reference.join("\n  "),
    );
    check_clean_run(&mut checks, &s3, &last, prefix, "after-kills", None).await;
    reference.compare(&mut checks, &s3, prefix, &last.label).await;

    let left = uploads_in_progress(&s3, "").await;
    checks.check(left.is_empty(), "no multipart upload in progress in the output bucket", || left.join("\n  "));
    eprintln!("took {:.1?}", started.elapsed());
    checks.finish();
}

/// The first GET of one input is never answered, the first of another is answered with half its
/// body and then nothing: both are retried, and the run converts every file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_gets_are_retried() {
    let Some(bin) = moto_server() else { return };
    let started = Instant::now();
    let moto = Moto::start(&bin);
    let s3 = moto.client();
    let mut inputs: Vec<(String, Vec<u8>)> =
        corpus().into_iter().filter(|(k, _)| k.contains("/sales/")).take(20).collect();
    let unanswered = format!("{LANDING}sales/unanswered.csv");
    let half = format!("{LANDING}sales/half.csv");
    inputs.push((unanswered.clone(), b"id,name\n1,unanswered\n2,at first\n".to_vec()));
    inputs.push((half.clone(), large_csv(11, 256 << 10).0.into_bytes()));
    set_up(&s3, &inputs).await;
    let mut checks = Checks::default();

    let proxy = FaultProxy::start(moto.addr(), fault_seed()).await.expect("start the fault proxy");
    proxy.stall(&format!("/{IN}/{unanswered}"), Stall::NoAnswer, 1);
    proxy.stall(&format!("/{IN}/{half}"), Stall::MidBody, 1);
    let label = "run with stalled GETs";
    let mut cmd = csvlake(&proxy.url(), "stall/", "stall", &[]);
    // The first-byte timeout is 120 s by default.
    cmd.env(csvlake_s3::READ_TIMEOUT_ENV, "5");
    let stalled = run(label, cmd, STALL_LIMIT).await;
    let requests = proxy.requests();
    eprintln!("{label}: {} GETs stalled; requests {requests:?}", proxy.stalled());
    checks.check(proxy.stalled() == 2, &format!("{label}: the proxy stalled two GETs"), || {
        format!("{} stalled", proxy.stalled())
    });
    checks.check(
        !stalled.killed,
        &format!("{label}: the run ends by itself within {} s", STALL_LIMIT.as_secs()),
        || stalled.evidence(),
    );
    checks.check(stalled.code() == Some(0), &format!("{label}: exit status 0"), || stalled.evidence());
    match report(&s3, "stall/", "stall").await {
        None => checks.check(false, &format!("{label}: report.json exists"), || stalled.evidence()),
        Some(r) => checks.check(
            r.totals.converted == inputs.len() as u64 && r.totals.failed == 0,
            &format!("{label}: every file is reported converted"),
            || failures(&r),
        ),
    }
    let mut missing = Vec::new();
    for key in [&unanswered, &half] {
        let rel = rel_of(key);
        for out in [format!("stall/parquet/{rel}.parquet"), format!("stall/avro/{rel}.avro")] {
            if get(&s3, LAKE, &out).await.is_none() {
                missing.push(out);
            }
        }
    }
    checks.check(missing.is_empty(), &format!("{label}: the stalled inputs have their outputs"), || {
        format!("missing {missing:?}")
    });
    let left = uploads_in_progress(&s3, "stall/").await;
    checks.check(left.is_empty(), &format!("{label}: no multipart upload left in progress"), || left.join("\n  "));
    eprintln!("took {:.1?}", started.elapsed());
    checks.finish();
}
