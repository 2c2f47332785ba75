//! Reliability against an independent S3 server with injected faults: moto's server, the
//! fault-injecting proxy of [`csvlake_tests::faults`] in front of it, and `csvlake run` as a
//! process, as a person runs it.
//!
//! - A fault-free run straight to moto is the reference.
//! - Runs through the proxy, with 10% of requests faulted (every kind) and with 10% of GETs cut
//!   short, exit 0, report every file converted, leave outputs whose decoded content equals the
//!   reference's and no multipart upload in progress; the proxy's counters show that every kind
//!   of fault was injected.
//! - A GET that is accepted and never answered does not hang the run, and the report tells the
//!   truth about that file (failed ⇔ no output).
//! - Runs killed with SIGKILL, then a run without faults: it exits 0, its outputs equal the
//!   reference's, and no multipart upload is left behind.
//!
//! Product properties are soft checks: each prints `ok:` or `FAILED:` with its evidence, and the
//! test fails at the end naming every failed check, so that one failure does not hide the others.
//!
//! moto's server is needed: `CSVLAKE_MOTO_SERVER` names its executable (`bash scripts/test`
//! installs it into a virtualenv and sets the variable). Without it the tests say they were
//! skipped, and pass. `CSVLAKE_FAULT_SEED` replays the faults of an earlier run (the seed is
//! printed; the faults drawn also depend on the order in which requests arrive).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use csvlake_contract::errors::{RUN_IN_PROGRESS, TRANSIENT};
use csvlake_contract::run::Report;
use csvlake_tests::faults::{Fault, FaultProxy, Moto, fault_seed};
use csvlake_tests::{Cell, Rng, csvlake_bin, gzip, large_csv, read_avro, read_parquet};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The input bucket; inputs lie under [`LANDING`].
const IN: &str = "raw";
/// The output bucket; each run writes under a prefix of its own.
const LAKE: &str = "lake";
/// The input prefix.
const LANDING: &str = "landing/";
/// How long a run may take before the test kills it and says so.
const RUN_LIMIT: Duration = Duration::from_secs(240);
/// How long the run with a stalled GET may take.
const STALL_LIMIT: Duration = Duration::from_secs(360);
/// The share of requests faulted.
const RATE: f64 = 0.10;

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

/// 120 files of a few KB in three tables (UTF-8 with `,`; Latin-1 with `;`; gzip), and two
/// files of 16 and 18 MiB, whose outputs are written by multipart upload (parts are at least
/// 8 MiB).
fn corpus() -> Vec<(String, Vec<u8>)> {
    const NAMES: [&str; 6] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken"];
    const LEGACY: [&str; 7] = ["Müller", "Jörg Straße", "Café Noël", "Søren Ærø", "Zoë", "Ångström", "Façade"];
    const TOWNS: [&str; 4] = ["Köln", "Zürich", "Malmö", "Besançon"];
    let mut files = Vec::new();
    for i in 0..40u64 {
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
    for i in 0..40u64 {
        let mut rng = Rng::new(2_000 + i);
        let mut s = String::from("nummer;name;stadt;menge\n");
        for r in 0..40 + rng.below(40) {
            let name = LEGACY[rng.below(7) as usize];
            let town = TOWNS[rng.below(4) as usize];
            s.push_str(&format!("{r};{name};{town};{}\n", rng.below(500)));
        }
        files.push((format!("{LANDING}legacy/export-{i:03}.csv"), latin1(&s)));
    }
    for i in 0..40u64 {
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
    for (name, seed, mib) in [("a", 7, 16), ("b", 8, 18)] {
        files.push((format!("{LANDING}big/{name}.csv"), large_csv(seed, mib << 20).0.into_bytes()));
    }
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
        .env_remove("CSVLAKE_LOG")
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
    eprintln!("--- {}: {}", run.label, run.evidence());
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

/// The fault-free run's outputs: bytes and decoded content, by path relative to its prefix.
struct Reference {
    outputs: BTreeMap<String, (Vec<u8>, Table)>,
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
            let table = Table::read(&path).unwrap_or_else(|e| panic!("reference output {rel}: {e}"));
            outputs.insert(rel, (bytes, table));
        }
        Self { outputs, dir }
    }

    /// Checks that the outputs under `prefix` are the reference's: the same objects, each with
    /// the same decoded content (Parquet files with the same bytes are equal without decoding;
    /// Avro files differ in their random sync marker, so they are always decoded).
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
            let (ref_bytes, ref_table) = &self.outputs[rel];
            let bytes = get(s3, LAKE, &format!("{prefix}{rel}")).await.expect("a listed output");
            if rel.ends_with(".parquet") && bytes == *ref_bytes {
                continue;
            }
            let path = self.dir.path().join(format!("candidate-{}", rel.replace('/', "__")));
            std::fs::write(&path, &bytes).expect("write an output");
            match Table::read(&path) {
                Ok(table) => differ.extend(table.difference(ref_table).map(|d| format!("{rel}: {d}"))),
                Err(e) => differ.push(format!("{rel}: {e}")),
            }
            let _ = std::fs::remove_file(&path);
        }
        checks.check(
            differ.is_empty(),
            &format!("{label}: every output's decoded content equals the clean run's ({} outputs)", want.len()),
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

/// Checks a run that should have converted everything: exit status 0, a report with every file
/// converted and none failed, and no multipart upload left in progress.
async fn check_clean_run(checks: &mut Checks, s3: &Client, run: &Run, prefix: &str, run_id: &str, files: u64) {
    let label = &run.label;
    checks.check(run.code() == Some(0), &format!("{label}: exit status 0"), || run.evidence());
    match report(s3, prefix, run_id).await {
        Some(r) => checks.check(
            r.totals.failed == 0 && r.failed.is_empty() && r.totals.converted + r.totals.skipped == files,
            &format!("{label}: the report says all {files} files converted, 0 failed"),
            || failures(&r),
        ),
        None => checks
            .check(false, &format!("{label}: report.json exists"), || format!("no {prefix}_runs/{run_id}/report.json")),
    }
    let left = uploads_in_progress(s3, prefix).await;
    checks.check(left.is_empty(), &format!("{label}: no multipart upload left in progress under {prefix}"), || {
        left.join("\n  ")
    });
}

// ---------------------------------------------------------------------------------------------
// The tests

/// A fault-free reference run, runs through the proxy with mixed faults and with truncated
/// GET bodies, and runs killed with SIGKILL followed by a run without faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_kills_leave_the_outputs_of_a_clean_run() {
    let Some(bin) = moto_server() else { return };
    let started = Instant::now();
    let moto = Moto::start(&bin);
    let s3 = moto.client();
    let inputs = corpus();
    let files = inputs.len() as u64;
    set_up(&s3, &inputs).await;
    eprintln!(
        "corpus: {files} files, {} bytes, uploaded in {:.1?}",
        inputs.iter().map(|f| f.1.len()).sum::<usize>(),
        started.elapsed()
    );
    let mut checks = Checks::default();

    // a. The reference: a fault-free run straight to moto.
    let clean = run("clean run", csvlake(&moto.url(), "clean/", "clean", &[]), RUN_LIMIT).await;
    assert_eq!(clean.code(), Some(0), "the fault-free run succeeds: {}", clean.evidence());
    let r = report(&s3, "clean/", "clean").await.expect("the fault-free run's report");
    assert_eq!((r.totals.converted, r.totals.failed), (files, 0), "{}", failures(&r));
    // The large files' outputs were written by multipart upload: their ETags say so.
    for rel in ["parquet/big/a.parquet", "avro/big/b.avro"] {
        let head = s3.head_object().bucket(LAKE).key(format!("clean/{rel}")).send().await.expect("a large output");
        let etag = head.e_tag().unwrap_or_default();
        assert!(
            etag.contains('-'),
            "clean/{rel} ({:?} bytes) was written by multipart upload: ETag {etag}",
            head.content_length()
        );
    }
    let reference = Reference::load(&s3, "clean/").await;
    assert_eq!(reference.outputs.len(), 2 * inputs.len(), "two outputs per input");
    eprintln!("reference loaded after {:.1?}", started.elapsed());

    // b. Through the proxy, with faults.
    let seed = fault_seed();
    eprintln!("fault proxy seed: {seed} (replay with CSVLAKE_FAULT_SEED={seed})");
    let proxy = FaultProxy::start(moto.addr(), seed).await.expect("start the fault proxy");
    let phases: [(&str, &str, &[Fault]); 2] =
        [("mixed faults", "mixed/", &Fault::ALL), ("truncated GET bodies", "truncated/", &[Fault::TruncatedBody])];
    for (name, prefix, kinds) in phases {
        proxy.reset_counts();
        proxy.inject(RATE, kinds);
        let run_id = prefix.trim_end_matches('/');
        let label = format!("{}% {name}", RATE * 100.0);
        let faulted = run(&label, csvlake(&proxy.url(), prefix, run_id, &[]), RUN_LIMIT).await;
        proxy.inject(0.0, &[]);
        let injected = proxy.injected();
        eprintln!("{label}: requests {:?}; injected {injected:?}", proxy.requests());
        check_clean_run(&mut checks, &s3, &faulted, prefix, run_id, files).await;
        reference.compare(&mut checks, &s3, prefix, &label).await;
        for kind in kinds {
            checks.check(injected[kind] > 0, &format!("{label}: the proxy injected {kind:?} faults"), || {
                format!("injected {injected:?}, requests {:?}", proxy.requests())
            });
        }
        checks.check(proxy.upstream_errors() == 0, &format!("{label}: moto answered every request passed on"), || {
            format!("{} requests failed upstream", proxy.upstream_errors())
        });
    }
    drop(proxy);
    eprintln!("fault runs done after {:.1?}", started.elapsed());

    // d. SIGKILL twice, then a run without faults.
    let prefix = "killed/";
    for (n, after) in [(1, Duration::from_millis(1500)), (2, Duration::from_secs(4))] {
        let label = format!("run {n} killed after {:.1} s", after.as_secs_f64());
        let run_id = format!("killed-{n}");
        let mut killed = run(&label, csvlake(&moto.url(), prefix, &run_id, &[]), after).await;
        if n > 1 && killed.refused_by_a_lease() {
            checks.check(false, &format!("{label}: a run after a SIGKILLed run is not refused by its lease"), || {
                killed.evidence()
            });
            // README (Tables, Leases): "If a local run was killed, delete the lease object it
            // names to start again". Done here so that the checks after this one still tell.
            eprintln!("deleted the killed run's leases: {:?}", delete_leases(&s3, prefix).await);
            killed = run(&label, csvlake(&moto.url(), prefix, &format!("{run_id}b"), &[]), after).await;
        }
        assert!(killed.killed, "{label}: the run was still going when killed: {}", killed.evidence());
        eprintln!("{label}: multipart uploads in progress: {:?}", uploads_in_progress(&s3, prefix).await);
    }
    let mut last = run("run after the kills", csvlake(&moto.url(), prefix, "after-kills", &[]), RUN_LIMIT).await;
    let mut last_id = "after-kills";
    if last.refused_by_a_lease() {
        checks.check(false, "run after the kills: not refused by the killed run's lease", || last.evidence());
        eprintln!("deleted the killed run's leases: {:?}", delete_leases(&s3, prefix).await);
        last_id = "after-kills-b";
        last = run("run after the kills (leases deleted)", csvlake(&moto.url(), prefix, last_id, &[]), RUN_LIMIT).await;
    }
    check_clean_run(&mut checks, &s3, &last, prefix, last_id, files).await;
    reference.compare(&mut checks, &s3, prefix, &last.label).await;

    eprintln!("took {:.1?}", started.elapsed());
    checks.finish();
}

/// GETs of one input are accepted and never answered: the run ends by itself, and its report is
/// true about that file (failed, with no output; or converted, with its outputs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_get_does_not_hang_the_run() {
    let Some(bin) = moto_server() else { return };
    let started = Instant::now();
    let moto = Moto::start(&bin);
    let s3 = moto.client();
    let mut inputs: Vec<(String, Vec<u8>)> =
        corpus().into_iter().filter(|(k, _)| k.contains("/sales/")).take(20).collect();
    let stuck = format!("{LANDING}sales/stuck.csv");
    inputs.push((stuck.clone(), b"id,name\n1,stuck\n2,still stuck\n".to_vec()));
    set_up(&s3, &inputs).await;
    let mut checks = Checks::default();

    let proxy = FaultProxy::start(moto.addr(), fault_seed()).await.expect("start the fault proxy");
    proxy.stall_gets_of(Some(&format!("/{IN}/{stuck}")));
    let label = "run with a stalled GET";
    // The tolerance is lifted so that the exit status speaks of this file alone.
    let extra = ["--tolerated-failure-percentage", "100"];
    let stalled = run(label, csvlake(&proxy.url(), "stall/", "stall", &extra), STALL_LIMIT).await;
    let stalls = proxy.stalled();
    eprintln!("{label}: {stalls} GETs of {stuck} accepted and never answered; requests {:?}", proxy.requests());
    checks.check(!stalled.killed, &format!("{label}: the run ends by itself within {} s", STALL_LIMIT.as_secs()), || {
        format!(
            "still running after {:.0} s, when the test killed it; {stalls} GETs of {stuck} were accepted and never \
             answered by then. {}",
            stalled.elapsed.as_secs_f64(),
            stalled.evidence()
        )
    });
    checks.check(stalls > 0, &format!("{label}: the proxy stalled GETs of {stuck}"), || "none".into());

    if !stalled.killed {
        match report(&s3, "stall/", "stall").await {
            None => checks.check(false, &format!("{label}: report.json exists"), || stalled.evidence()),
            Some(r) => {
                let failed: HashMap<&str, &str> =
                    r.failed.iter().map(|f| (f.key.as_str(), f.error.kind.as_str())).collect();
                let stuck_failed = failed.contains_key(stuck.as_str());
                let want_code = if stuck_failed { 2 } else { 0 };
                checks.check(stalled.code() == Some(want_code), &format!("{label}: exit status {want_code}"), || {
                    stalled.evidence()
                });
                if stuck_failed {
                    checks.check(
                        failed[stuck.as_str()] == TRANSIENT,
                        &format!("{label}: {stuck} is reported failed as {TRANSIENT}"),
                        || failures(&r),
                    );
                }
                checks.check(
                    failed.keys().all(|k| *k == stuck) && r.totals.converted + r.totals.failed == inputs.len() as u64,
                    &format!("{label}: every other file is reported converted"),
                    || failures(&r),
                );
                // The report is true: a failed file has no output, a converted one has both.
                let mut untrue = Vec::new();
                for (key, _) in &inputs {
                    let rel = rel_of(key);
                    let mut present = Vec::new();
                    for out in [format!("stall/parquet/{rel}.parquet"), format!("stall/avro/{rel}.avro")] {
                        if s3.head_object().bucket(LAKE).key(&out).send().await.is_ok() {
                            present.push(out);
                        }
                    }
                    let is_failed = failed.contains_key(key.as_str());
                    if (is_failed && !present.is_empty()) || (!is_failed && present.len() != 2) {
                        untrue.push(format!(
                            "{key}: reported {}, outputs {present:?}",
                            if is_failed { "failed" } else { "converted" }
                        ));
                    }
                }
                checks.check(untrue.is_empty(), &format!("{label}: failed ⇔ no output, for every file"), || {
                    untrue.join("\n  ")
                });
            }
        }
    }
    let left = uploads_in_progress(&s3, "stall/").await;
    checks.check(left.is_empty(), &format!("{label}: no multipart upload left in progress"), || left.join("\n  "));
    eprintln!("took {:.1?}", started.elapsed());
    checks.finish();
}
