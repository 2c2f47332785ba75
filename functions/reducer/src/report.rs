//! The reducer's work: the per-file results of a run, aggregated into `report.json`,
//! `files.jsonl` and `failed-keys.json` under `<out>/_runs/<run_id>/`.
//!
//! The results come from the Distributed Map's ResultWriter: a `manifest.json` that lists
//! `SUCCEEDED_n.json`, `FAILED_n.json` and `PENDING_n.json` files, each a JSON array of
//! [`ChildExecution`]s. In AWS a results file can reach gigabytes, so nothing here holds a whole
//! file or every file result: each body is parsed element by element as it streams in, every
//! result goes straight to the `files.jsonl` upload, and failed files are spooled to temporary
//! files until the report's header is known. What stays in memory grows with the number of
//! batches by one bit each (which batches have a result), and with nothing else of the run.
//!
//! Files count once, whatever happened to them:
//! - a file of a succeeded batch counts as its converter result says, or as failed
//!   (`csvlake.Internal`) when the converter returned no result for it;
//! - a file of a failed batch counts as failed with the batch's error (`csvlake.Transient`,
//!   `States.Timeout`…), and one of a batch still pending with `csvlake.NotRun`;
//! - a file of a batch that has no result at all (the Map stopped early, or failed before writing
//!   results) counts as failed with `csvlake.NotRun`;
//! - files the planner rejected count as the planner's results say.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::marker::PhantomData;
use std::pin::Pin;

use aws_sdk_s3::Client;
use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer as _};
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;

use csvlake_contract::BatchError;
use csvlake_contract::deployment::{
    BYTES_IN_METRIC, BYTES_OUT_METRIC, FILES_CONVERTED_METRIC, FILES_FAILED_METRIC, FILES_SKIPPED_METRIC,
    METRICS_NAMESPACE, PIPELINE_DIMENSION, ROWS_METRIC,
};
use csvlake_contract::errors::{self, FileError, shortened};
use csvlake_contract::payload::{BatchResult, FileRef, FileResult, FileStatus};
use csvlake_contract::run::{
    ChildExecution, DialectCount, FailedFile, ManifestBatch, MapOutput, Mode, ObjectLocation, ReduceRequest, Report,
    ResultManifest, ResultsLocation, RunInput, RunStatus, RunSummary, StatesError, Totals, names, run_key,
};
use csvlake_engine::decode::Dialect;
use csvlake_engine::{Error, Result};
use csvlake_s3::sdk_error;
use csvlake_s3::upload::{DEFAULT_PART_SIZE, PartSink, Staged, abort_in_progress, stage};

/// Error messages taken from a child execution's cause are cut to about this many bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Bytes read from S3 at a time by the streaming parsers.
const READ_BUFFER: usize = 256 << 10;

/// Reads the results of a run and writes its report, `files.jsonl` and, when a file failed,
/// `failed-keys.json`. Returns the summary that the state machine's last states read.
///
/// S3 failures are [`Error::Transient`] or [`Error::Internal`] as [`sdk_error`] classifies them;
/// a results file that does not parse is internal. No object becomes visible unless every result
/// was read: `files.jsonl` streams into a staged upload that is committed only then.
///
/// With a catalog database, the tables are registered after their indexes are written and before
/// the report, which records the outcome; a registration that failed is returned beside the
/// summary (the handler then fails with `csvlake.CatalogError`).
pub async fn reduce(client: &Client, request: &ReduceRequest) -> Result<(RunSummary, Option<BatchError>)> {
    let plan = &request.plan;
    let out = &plan.job.output;
    let location =
        |name: &str| ObjectLocation { bucket: out.bucket.clone(), key: run_key(&out.prefix, &plan.run_id, name) };
    let (files_loc, report_loc, failed_keys_loc) =
        (location(names::FILES), location(names::REPORT), location(names::FAILED_KEYS));

    let conformed = Box::pin(crate::join::Conformed::read(client, request)).await?;
    let (sink, files_upload) = Upload::start(client, &files_loc);
    let tally =
        Tally::new(sink, plan, conformed).map_err(|e| Error::Internal(format!("creating a temporary file: {e}")))?;
    let tally = match tally_run(client, request, tally).await {
        Ok(t) => t,
        Err(e) => return Err(files_upload.abandon(client, e).await),
    };
    let Tally { mut totals, by_kind, by_dialect, files, failed, keys, mut entries, mut conform, .. } = tally;
    // Earlier files the `Conform` Map converted again count in their tables' indexes only.
    for result in conform.earlier() {
        entries.add(&result)?;
    }
    let mut dialects: Vec<DialectCount> =
        by_dialect.into_iter().map(|(dialect, files)| DialectCount { dialect, files }).collect();
    dialects.sort_by(|a, b| b.files.cmp(&a.files).then_with(|| a.dialect.cmp(&b.dialect)));
    let uri = files_loc.uri();
    let finished = blocking(move || files.finish().map(drop).map_err(|e| write_error(&uri, e))).await;
    files_upload.complete(client, finished).await?;

    // The tables' indexes before the report: a report names what the index holds.
    let (tables, orphaned) = crate::tables::update(client, plan, entries, &conform.counts).await?;
    // Then the catalog, whose outcome (or failure) the report records.
    let catalog = match &plan.catalog {
        Some(c) => {
            let glue = crate::catalog::client().await;
            Some(crate::catalog::register_run(&glue, &c.database, plan, &tables).await)
        }
        None => None,
    };
    totals.orphaned = plan.orphaned;
    totals.skipped += plan.skipped;
    totals.files = totals.converted + totals.failed + totals.skipped;
    let expected = plan.files + plan.rejected + plan.skipped;
    if totals.files != expected {
        tracing::warn!(counted = totals.files, planned = expected, "the results do not account for the planned files");
    }
    let exceeded_tolerance = exceeds(request, &totals);
    let conform_error = request.join.as_ref().and_then(|j| j.limited.clone());
    let status = if exceeded_tolerance || conform_error.is_some() { RunStatus::Failed } else { RunStatus::Succeeded };

    let report = Report {
        run_id: plan.run_id.clone(),
        status,
        input: plan.job.input.clone(),
        output: plan.job.output.clone(),
        totals: totals.clone(),
        failures_by_kind: by_kind.clone(),
        dialects,
        max_concurrency: plan.max_concurrency,
        requested_max_concurrency: plan.requested_max_concurrency,
        tables,
        orphaned,
        map_error: request.convert_error.clone(),
        conform_error: conform_error.clone(),
        catalog: catalog.clone(),
        failed: Vec::new(),
    };
    write_report(client, &report_loc, &report, failed).await?;

    let failed_keys = if totals.failed > 0 {
        let job = &plan.job;
        let retry = RunInput {
            input: Some(job.input.clone()),
            output: Some(job.output.clone()),
            mode: Mode::Keys,
            formats: Some(job.formats.clone()),
            csv: Some(job.csv.clone()),
            parquet: Some(job.parquet.clone()),
            avro: Some(job.avro.clone()),
            table_depth: Some(job.table_depth),
            batch: Some(request.plan.batch),
            max_concurrency: Some(request.plan.max_concurrency),
            tolerated_failure_percentage: Some(request.plan.tolerated_failure_percentage),
            ..RunInput::default()
        };
        write_failed_keys(client, &failed_keys_loc, &retry, keys).await?;
        Some(failed_keys_loc)
    } else {
        None
    };
    // The run's own objects are written: an upload left under them is one whose
    // CreateMultipartUpload answer was lost. (The planner of a later run aborts what is left.)
    let runs_prefix = run_key(&out.prefix, &plan.run_id, "");
    match abort_in_progress(client, &out.bucket, &runs_prefix, None).await {
        Ok(0) => {}
        Ok(aborted) => {
            tracing::info!(prefix = %runs_prefix, aborted, "aborted multipart uploads the run left in progress")
        }
        Err(e) => tracing::warn!(prefix = %runs_prefix, error = %e, "could not abort the run's uploads"),
    }

    tracing::info!(
        run_id = %plan.run_id,
        converted = totals.converted,
        failed = totals.failed,
        skipped = totals.skipped,
        exceeded_tolerance,
        "run reduced"
    );
    let summary = RunSummary {
        run_id: plan.run_id.clone(),
        status,
        exceeded_tolerance,
        totals,
        failures_by_kind: by_kind,
        map_error: request.convert_error.clone(),
        report: report_loc,
        files: files_loc,
        failed_keys,
    };
    // A run over conform_limit fails, and so does one whose catalog could not be written.
    let failure =
        conform_error.map(BatchError::ConformLimit).or_else(|| catalog.and_then(|c| c.error).map(BatchError::Catalog));
    Ok((summary, failure))
}

/// The summary of a run whose Reduce failed and whose leases were released: nothing was
/// reported, so nothing is counted.
pub fn released(request: &ReduceRequest) -> RunSummary {
    let plan = &request.plan;
    let out = &plan.job.output;
    let at = |name: &str| ObjectLocation { bucket: out.bucket.clone(), key: run_key(&out.prefix, &plan.run_id, name) };
    RunSummary {
        run_id: plan.run_id.clone(),
        status: RunStatus::Failed,
        exceeded_tolerance: true,
        totals: Totals::default(),
        failures_by_kind: BTreeMap::new(),
        map_error: request.reduce_error.clone(),
        report: at(names::REPORT),
        files: at(names::FILES),
        failed_keys: None,
    }
}

/// Whether the run failed: the Map itself failed, or more files failed than tolerated.
fn exceeds(request: &ReduceRequest, totals: &Totals) -> bool {
    let processed = (totals.converted + totals.failed) as f64;
    request.convert_error.is_some()
        || totals.failed as f64 * 100.0 > request.plan.tolerated_failure_percentage * processed
}

/// One CloudWatch Embedded Metric Format record of the run's counts. Its one dimension is the
/// pipeline (the deployment) when there is one, never the run id (run ids are too many to be
/// dimensions); the run id and status ride along as plain properties. Print it as one line to
/// stdout and CloudWatch Logs extracts the metrics.
pub fn emf(summary: &RunSummary, pipeline: Option<&str>, timestamp_ms: u64) -> serde_json::Value {
    let t = &summary.totals;
    let metrics = [
        (FILES_CONVERTED_METRIC, "Count", t.converted),
        (FILES_FAILED_METRIC, "Count", t.failed),
        (FILES_SKIPPED_METRIC, "Count", t.skipped),
        (ROWS_METRIC, "Count", t.rows),
        (BYTES_IN_METRIC, "Bytes", t.bytes_in),
        (BYTES_OUT_METRIC, "Bytes", t.bytes_out),
    ];
    let mut record = serde_json::Map::new();
    record.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [pipeline.map_or(vec![], |_| vec![PIPELINE_DIMENSION])],
                "Metrics": metrics.iter().map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, _, value) in metrics {
        record.insert(name.into(), value.into());
    }
    if let Some(pipeline) = pipeline {
        record.insert(PIPELINE_DIMENSION.into(), pipeline.into());
    }
    record.insert("run_id".into(), summary.run_id.clone().into());
    record.insert("status".into(), serde_json::json!(summary.status));
    serde_json::Value::Object(record)
}

/// What the reducer needs of a batch's input; the job is not read.
#[derive(Deserialize)]
struct BatchInput {
    #[serde(default)]
    batch: Option<u64>,
    files: Vec<FileRef>,
}

/// Which kind of results file an entry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Succeeded,
    Failed,
    Pending,
}

/// Reads every result of the run into the tally: the planner's rejections, then the `Convert`
/// Map's results.
async fn tally_run(client: &Client, request: &ReduceRequest, mut tally: Tally) -> Result<Tally> {
    let plan = &request.plan;
    if let Some(loc) = &plan.rejected_results {
        let body = open(client, &loc.bucket, &loc.key).await?;
        let uri = loc.uri();
        tally = blocking(move || {
            each_line::<FileResult>(body, &uri, |r| tally.add(&r))?;
            Ok(tally)
        })
        .await?;
    }
    Box::pin(walk(client, &MapResults::convert(request), tally)).await
}

/// Receives each file result of a Map's run once.
pub(crate) trait Sink: Send + 'static {
    /// One file's result.
    fn add(&mut self, result: &FileResult) -> Result<()>;
}

/// Where one Distributed Map's results are, and how it ended.
pub(crate) struct MapResults<'a> {
    /// The Map's output, when it succeeded.
    output: Option<&'a MapOutput>,
    /// Its error, when its Catch recorded one.
    error: Option<&'a StatesError>,
    /// Its ResultWriter's prefix.
    results: &'a ResultsLocation,
    /// Its items.
    manifest: &'a ObjectLocation,
    batches: u64,
    /// Where its failed batches recorded their results (`<n>.json`).
    recorded: String,
}

impl<'a> MapResults<'a> {
    /// The `Convert` Map of the run.
    pub(crate) fn convert(request: &'a ReduceRequest) -> Self {
        let plan = &request.plan;
        let out = &plan.job.output;
        Self {
            output: request.convert.as_ref(),
            error: request.convert_error.as_ref(),
            results: &plan.results,
            manifest: &plan.manifest,
            batches: plan.batches,
            recorded: format!("{}/", run_key(&out.prefix, &plan.run_id, names::BATCHES)),
        }
    }

    /// The `Conform` Map of the run, when the `Join` phase planned one.
    pub(crate) fn conform(request: &'a ReduceRequest) -> Option<Self> {
        let plan = &request.plan;
        let out = &plan.job.output;
        let join = request.join.as_ref().filter(|j| j.batches > 0)?;
        Some(Self {
            output: request.conform.as_ref(),
            error: request.conform_error.as_ref(),
            results: &join.results,
            manifest: &join.manifest,
            batches: join.batches,
            recorded: format!("{}/", run_key(&out.prefix, &plan.run_id, names::CONFORM_BATCHES)),
        })
    }
}

/// Gives `sink` every file result of a Map: those of its ResultWriter files, then those of the
/// manifest's batches that no result covers.
pub(crate) async fn walk<S: Sink>(client: &Client, map: &MapResults<'_>, sink: S) -> Result<S> {
    let mut walker = Walker {
        seen: Seen::new(map.batches),
        recorded: read_recorded(client, &map.manifest.bucket, &map.recorded).await?,
        sink,
    };
    if let Some(manifest_loc) = find_result_manifest(client, map).await? {
        let manifest = read_result_manifest(client, &manifest_loc).await?;
        let bucket = if manifest.destination_bucket.is_empty() {
            manifest_loc.bucket.clone()
        } else {
            manifest.destination_bucket
        };
        let files = &manifest.result_files;
        // Succeeded results first: a batch that failed and then succeeded on a redrive counts
        // as the success.
        let sources = files.succeeded.iter().map(|f| (f, Source::Succeeded)).chain(
            files.failed.iter().map(|f| (f, Source::Failed)).chain(files.pending.iter().map(|f| (f, Source::Pending))),
        );
        for (file, source) in sources {
            let body = open(client, &bucket, &file.key).await?;
            let uri = format!("s3://{bucket}/{}", file.key);
            walker = blocking(move || {
                each_element::<ChildExecution, _>(body, &uri, |entry| walker.add_entry(entry, source))?;
                Ok(walker)
            })
            .await?;
        }
    }

    if walker.seen.any_unseen() {
        let loc = map.manifest;
        let body = open(client, &loc.bucket, &loc.key).await?;
        let uri = loc.uri();
        let message = match map.error {
            Some(e) => format!("the batch did not run: the Map failed with {}: {}", e.error, cause_message(&e.cause)),
            None => "the batch did not run: the Map wrote no result for it".to_owned(),
        };
        walker = blocking(move || {
            each_element::<ManifestBatch, _>(body, &uri, |batch| walker.add_not_run(batch, &message))?;
            Ok(walker)
        })
        .await?;
        if walker.seen.any_unseen() {
            tracing::warn!(manifest = %loc.uri(), "the batch manifest lacks some of the planned batches");
        }
    }
    Ok(walker.sink)
}

/// The per-file results that failed batches recorded before failing (`<prefix><n>.json`), by
/// batch: their converted files count as converted.
async fn read_recorded(client: &Client, bucket: &str, prefix: &str) -> Result<HashMap<u64, Vec<FileResult>>> {
    let mut recorded = HashMap::new();
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error("ListObjectsV2", bucket, prefix, e))?;
        for obj in page.contents() {
            let Some(key) = obj.key() else { continue };
            let Some(n) = key.strip_prefix(prefix).and_then(|k| k.strip_suffix(".json")).and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let result: BatchResult = csvlake_s3::get_json(client, bucket, key, "a batch's recorded results").await?;
            recorded.insert(n, result.files);
        }
    }
    Ok(recorded)
}

/// The ResultWriter manifest: from the Map's output, or else (the Map failed, and its Catch
/// recorded the error instead) the newest one under the results prefix. None when the Map
/// never ran or failed before writing results.
async fn find_result_manifest(client: &Client, map: &MapResults<'_>) -> Result<Option<ObjectLocation>> {
    if let Some(output) = map.output {
        let d = &output.result_writer_details;
        return Ok(Some(ObjectLocation { bucket: d.bucket.clone(), key: d.key.clone() }));
    }
    if map.batches == 0 {
        return Ok(None);
    }
    let bucket = &map.results.bucket;
    let prefix = match map.results.prefix.as_str() {
        "" => String::new(),
        p if p.ends_with('/') => p.to_owned(),
        p => format!("{p}/"),
    };
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(&prefix).into_paginator().send();
    let mut newest: Option<((i64, u32), String)> = None;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error("ListObjectsV2", bucket, &prefix, e))?;
        for obj in page.contents() {
            let Some(key) = obj.key().filter(|k| k.ends_with(&format!("/{}", names::MANIFEST))) else { continue };
            let when = obj.last_modified().map_or((i64::MIN, 0), |d| (d.secs(), d.subsec_nanos()));
            let candidate = (when, key.to_owned());
            if newest.as_ref().is_none_or(|n| candidate > *n) {
                newest = Some(candidate);
            }
        }
    }
    Ok(newest.map(|(_, key)| ObjectLocation { bucket: bucket.clone(), key }))
}

async fn read_result_manifest(client: &Client, loc: &ObjectLocation) -> Result<ResultManifest> {
    csvlake_s3::get_json(client, &loc.bucket, &loc.key, "a ResultWriter manifest").await
}

type Body = BufReader<SyncIoBridge<Pin<Box<dyn tokio::io::AsyncRead + Send>>>>;

/// A blocking reader over an object's body, to be read in [`blocking`].
async fn open(client: &Client, bucket: &str, key: &str) -> Result<Body> {
    let resp =
        client.get_object().bucket(bucket).key(key).send().await.map_err(|e| sdk_error("GetObject", bucket, key, e))?;
    let body: Pin<Box<dyn tokio::io::AsyncRead + Send>> = Box::pin(resp.body.into_async_read());
    Ok(BufReader::with_capacity(READ_BUFFER, SyncIoBridge::new(body)))
}

/// Runs blocking work (reading a body, writing into a [`PartSink`]) off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| Err(Error::Internal(format!("reducer task: {e}"))))
}

/// Calls `each` on every element of the JSON array `reader` holds, one element in memory at a
/// time. An error of `each` stops the reading and is returned as it is.
fn each_element<T, F>(reader: impl Read, what: &str, mut each: F) -> Result<()>
where
    T: DeserializeOwned,
    F: FnMut(T) -> Result<()>,
{
    let mut stopped = None;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let parsed = de
        .deserialize_seq(Elements { each: &mut each, stopped: &mut stopped, element: PhantomData })
        .and_then(|()| de.end());
    if let Some(e) = stopped {
        return Err(e);
    }
    parsed.map_err(|e| json_error(what, "a JSON array of the expected elements", e))
}

struct Elements<'a, T, F> {
    each: &'a mut F,
    stopped: &'a mut Option<Error>,
    element: PhantomData<fn() -> T>,
}

impl<'de, T, F> Visitor<'de> for Elements<'_, T, F>
where
    T: Deserialize<'de>,
    F: FnMut(T) -> Result<()>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(element) = seq.next_element::<T>()? {
            if let Err(e) = (self.each)(element) {
                *self.stopped = Some(e);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// Calls `each` on every value of the JSON lines `reader` holds.
fn each_line<T: DeserializeOwned>(reader: impl Read, what: &str, mut each: impl FnMut(T) -> Result<()>) -> Result<()> {
    for value in serde_json::Deserializer::from_reader(reader).into_iter::<T>() {
        each(value.map_err(|e| json_error(what, "JSON lines of per-file results", e))?)?;
    }
    Ok(())
}

/// A read failure mid-body is the network's (transient); anything else is a malformed file.
fn json_error(what: &str, expected: &str, e: serde_json::Error) -> Error {
    if e.is_io() {
        Error::Transient(format!("reading {what}: {e}"))
    } else {
        Error::Internal(format!("{what} is not {expected}: {e}"))
    }
}

fn write_error(what: &str, e: io::Error) -> Error {
    Error::Internal(format!("writing {what}: {e}"))
}

/// The message of a Step Functions cause: the `errorMessage` of a Lambda error object when it
/// is one, else the cause itself; cut to [`MAX_MESSAGE_BYTES`].
pub fn cause_message(cause: &str) -> String {
    #[derive(Deserialize)]
    struct LambdaError {
        #[serde(rename = "errorMessage")]
        error_message: String,
    }
    let trimmed = cause.trim();
    match serde_json::from_str::<LambdaError>(trimmed) {
        Ok(e) => shortened(&e.error_message, MAX_MESSAGE_BYTES),
        Err(_) => shortened(trimmed, MAX_MESSAGE_BYTES),
    }
}

/// The error of every file of a failed or pending child execution.
fn batch_error(entry: &ChildExecution, source: Source) -> FileError {
    let kind = match (entry.error.as_deref().filter(|e| !e.is_empty()), source) {
        (Some(error), _) => error.to_owned(),
        (None, Source::Pending) => errors::NOT_RUN.to_owned(),
        (None, _) => errors::BATCH_FAILED.to_owned(),
    };
    let cause = entry.cause.as_deref().map(cause_message).filter(|m| !m.is_empty());
    let message = cause.unwrap_or_else(|| match source {
        Source::Pending => format!("the batch had not finished when the Map ended (status {})", entry.status),
        _ => format!("the batch's child execution ended {}", entry.status),
    });
    FileError { kind, message, line: None }
}

/// Which batches have a result: one bit each.
#[derive(Debug)]
struct Seen {
    bits: Vec<u64>,
    len: u64,
}

impl Seen {
    fn new(len: u64) -> Self {
        Self { bits: vec![0; usize::try_from(len.div_ceil(64)).unwrap_or(usize::MAX)], len }
    }

    /// Marks a batch: `Some(true)` the first time, `Some(false)` after that, `None` when the
    /// index lies outside the plan.
    fn insert(&mut self, batch: u64) -> Option<bool> {
        if batch >= self.len {
            return None;
        }
        let (word, bit) = ((batch / 64) as usize, 1u64 << (batch % 64));
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        Some(fresh)
    }

    fn any_unseen(&self) -> bool {
        let full = (self.len / 64) as usize;
        let rest = self.len % 64;
        self.bits[..full].iter().any(|w| *w != u64::MAX) || (rest > 0 && self.bits[full] != (1u64 << rest) - 1)
    }
}

/// A JSON array body written one element at a time to a temporary file.
struct Spool {
    file: BufWriter<File>,
    empty: bool,
}

impl Spool {
    fn new() -> io::Result<Self> {
        Ok(Self { file: BufWriter::new(tempfile::tempfile()?), empty: true })
    }

    fn push(&mut self, value: &impl serde::Serialize) -> io::Result<()> {
        if !self.empty {
            self.file.write_all(b",")?;
        }
        self.empty = false;
        serde_json::to_writer(&mut self.file, value).map_err(io::Error::other)
    }

    /// The elements written, comma-separated, from the start.
    fn into_reader(self) -> io::Result<File> {
        let mut file = self.file.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.rewind()?;
        Ok(file)
    }
}

/// Counts, and the streams that receive each file result.
struct Tally {
    totals: Totals,
    by_kind: BTreeMap<String, u64>,
    by_dialect: BTreeMap<Dialect, u64>,
    /// `files.jsonl`, uploading as it is written.
    files: PartSink,
    /// The report's `failed` elements.
    failed: Spool,
    /// The failed keys.
    keys: Spool,
    /// The index entries of converted files.
    entries: crate::tables::NewEntries,
    /// What the `Join` phase and the `Conform` Map decided of files, by key.
    conform: crate::join::Conformed,
    line: Vec<u8>,
}

impl Tally {
    fn new(files: PartSink, plan: &csvlake_contract::run::Plan, conform: crate::join::Conformed) -> io::Result<Self> {
        Ok(Self {
            totals: Totals::default(),
            by_kind: BTreeMap::new(),
            by_dialect: BTreeMap::new(),
            entries: crate::tables::NewEntries::new(plan)?,
            conform,
            files,
            failed: Spool::new()?,
            keys: Spool::new()?,
            line: Vec::new(),
        })
    }

    /// Counts one file result and writes it out, as the `Conform` Map or the `Join` phase left
    /// it. Runs on a blocking thread: the `files.jsonl` sink blocks while a part uploads.
    fn add(&mut self, result: &FileResult) -> Result<()> {
        match self.conform.take(result) {
            Some(last) => self.count(&last),
            None => self.count(result),
        }
    }

    fn count(&mut self, result: &FileResult) -> Result<()> {
        let t = &mut self.totals;
        t.rows += result.rows;
        t.bytes_in += result.bytes_in;
        t.bytes_out += result.outputs.iter().map(|o| o.bytes).sum::<u64>();
        t.millis += result.millis;
        if let Some(d) = &result.dialect {
            *self.by_dialect.entry(d.clone()).or_default() += 1;
        }
        match result.status {
            FileStatus::Converted => {
                t.converted += 1;
                self.entries.add(result)?;
            }
            FileStatus::Skipped => t.skipped += 1,
            FileStatus::Failed => {
                t.failed += 1;
                let error = result.error.clone().unwrap_or_else(|| FileError {
                    kind: errors::INTERNAL.into(),
                    message: "the file failed without an error".into(),
                    line: None,
                });
                *self.by_kind.entry(error.kind.clone()).or_default() += 1;
                self.keys.push(&result.key).map_err(|e| write_error("the failed keys", e))?;
                self.failed
                    .push(&FailedFile { key: result.key.clone(), error })
                    .map_err(|e| write_error("the failed files", e))?;
            }
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, result)?;
        self.line.push(b'\n');
        self.files.write_all(&self.line).map_err(|e| write_error(names::FILES, e))
    }
}

impl Sink for Tally {
    fn add(&mut self, result: &FileResult) -> Result<()> {
        Tally::add(self, result)
    }
}

/// A Map's results as they are read: which batches have a result, what failed batches
/// recorded, and where each file's result goes.
struct Walker<S> {
    seen: Seen,
    /// What failed batches recorded, by batch.
    recorded: HashMap<u64, Vec<FileResult>>,
    sink: S,
}

impl<S: Sink> Walker<S> {
    fn add_failed(&mut self, files: Vec<FileRef>, error: &FileError) -> Result<()> {
        for f in files {
            self.sink.add(&FileResult::failed(f.key, 0, 0, error.clone()))?;
        }
        Ok(())
    }

    /// Counts the files of a batch that failed (or never finished): as the batch recorded them
    /// before failing where it did, else as failed with `error`.
    fn add_unfinished(&mut self, batch: Option<u64>, files: Vec<FileRef>, error: &FileError) -> Result<()> {
        let recorded: HashMap<String, FileResult> = batch
            .and_then(|b| self.recorded.remove(&b))
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect();
        for f in files {
            match recorded.get(&f.key) {
                Some(r) => self.sink.add(r)?,
                None => self.sink.add(&FileResult::failed(f.key, 0, 0, error.clone()))?,
            }
        }
        Ok(())
    }

    /// Counts the files of one child execution.
    fn add_entry(&mut self, entry: ChildExecution, source: Source) -> Result<()> {
        let input: BatchInput = match serde_json::from_str(&entry.input) {
            Ok(i) => i,
            Err(e) => {
                // Its batch then has no result and counts as not run, from the manifest.
                tracing::warn!(execution = %entry.execution_arn, error = %e, "a child execution's input does not parse");
                return Ok(());
            }
        };
        if let Some(batch) = input.batch {
            match self.seen.insert(batch) {
                Some(true) => {}
                Some(false) => {
                    tracing::warn!(batch, execution = %entry.execution_arn, "a second result for a batch is ignored");
                    return Ok(());
                }
                None => tracing::warn!(batch, "a result names a batch outside the plan"),
            }
        }
        if source != Source::Succeeded {
            return self.add_unfinished(input.batch, input.files, &batch_error(&entry, source));
        }
        let output = match entry.output.as_deref().map(serde_json::from_str::<BatchResult>) {
            Some(Ok(output)) => output,
            other => {
                let message = match other {
                    Some(Err(e)) => format!("the converter's output does not parse: {e}"),
                    _ => "the batch succeeded without an output".to_owned(),
                };
                let error = FileError { kind: errors::INTERNAL.into(), message, line: None };
                return self.add_failed(input.files, &error);
            }
        };
        for result in &output.files {
            self.sink.add(result)?;
        }
        let returned: HashSet<&str> = output.files.iter().map(|r| r.key.as_str()).collect();
        let missing: Vec<FileRef> = input.files.into_iter().filter(|f| !returned.contains(f.key.as_str())).collect();
        let error = FileError {
            kind: errors::INTERNAL.into(),
            message: "the converter returned no result for this file".into(),
            line: None,
        };
        self.add_failed(missing, &error)
    }

    /// Counts the files of a manifest batch that no result covers.
    fn add_not_run(&mut self, batch: ManifestBatch, message: &str) -> Result<()> {
        if self.seen.insert(batch.batch) != Some(true) {
            return Ok(());
        }
        let error = FileError { kind: errors::NOT_RUN.into(), message: message.to_owned(), line: None };
        self.add_unfinished(Some(batch.batch), batch.files, &error)
    }
}

/// An object being uploaded from a [`PartSink`].
struct Upload {
    task: JoinHandle<Result<Option<Staged>>>,
}

impl Upload {
    fn start(client: &Client, loc: &ObjectLocation) -> (PartSink, Upload) {
        let (sink, rx) = PartSink::new(DEFAULT_PART_SIZE);
        let task = tokio::spawn(stage(client.clone(), loc.bucket.clone(), loc.key.clone(), rx));
        (sink, Upload { task })
    }

    /// Commits the object when the writer finished it, discards it otherwise. An upload failure
    /// wins over the writer's error, which is then only a broken pipe.
    async fn complete(self, client: &Client, written: Result<()>) -> Result<()> {
        let staged = self.task.await.unwrap_or_else(|e| Err(Error::Internal(format!("upload task: {e}"))));
        match (written, staged) {
            (_, Err(e)) => Err(e),
            (Err(e), Ok(staged)) => {
                if let Some(s) = staged {
                    s.discard(client).await;
                }
                Err(e)
            }
            (Ok(()), Ok(Some(s))) => s.commit(client).await,
            (Ok(()), Ok(None)) => Err(Error::Internal("an upload ended without its last part".into())),
        }
    }

    /// Discards the object after the writer failed with `error`; returns the cause to report.
    async fn abandon(self, client: &Client, error: Error) -> Error {
        match self.complete(client, Err(error)).await {
            Err(e) => e,
            Ok(()) => Error::Internal("an abandoned upload was committed".into()),
        }
    }
}

/// Writes an object through a [`PartSink`] on a blocking thread, then commits it.
async fn put_streaming<F>(client: &Client, loc: &ObjectLocation, write: F) -> Result<()>
where
    F: FnOnce(&mut PartSink) -> io::Result<()> + Send + 'static,
{
    let (sink, upload) = Upload::start(client, loc);
    let uri = loc.uri();
    let written = blocking(move || {
        let mut sink = sink;
        write(&mut sink).and_then(|()| sink.finish()).map(drop).map_err(|e| write_error(&uri, e))
    })
    .await;
    upload.complete(client, written).await
}

/// `report.json`: the header fields of `report` (whose `failed` is empty), then the spooled
/// failed files as its `failed` array, so that only the header is ever in memory.
async fn write_report(client: &Client, loc: &ObjectLocation, report: &Report, failed: Spool) -> Result<()> {
    let mut head = serde_json::to_vec(report)?;
    // `failed` is the last field: reopen its empty array.
    if !head.ends_with(b"[]}") {
        return Err(Error::Internal("the report does not end with its failed files".into()));
    }
    head.truncate(head.len() - 2);
    put_streaming(client, loc, move |w| {
        w.write_all(&head)?;
        io::copy(&mut failed.into_reader()?, w)?;
        w.write_all(b"]}")
    })
    .await
}

/// `failed-keys.json`: `retry` (without keys), then the spooled keys as its `keys` array.
async fn write_failed_keys(client: &Client, loc: &ObjectLocation, retry: &RunInput, keys: Spool) -> Result<()> {
    let mut head = serde_json::to_vec(retry)?;
    // `keys` is left out when empty, and `input` is always there, so a field follows `{`.
    if head.pop() != Some(b'}') || head.len() < 2 {
        return Err(Error::Internal("the failed-keys input is not a JSON object".into()));
    }
    put_streaming(client, loc, move |w| {
        w.write_all(&head)?;
        w.write_all(b",\"keys\":[")?;
        io::copy(&mut keys.into_reader()?, w)?;
        w.write_all(b"]}")
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_cause_gives_its_error_message_and_long_causes_are_cut() {
        let cause = r#"{"errorMessage":"GetObject s3://raw/a.csv: dispatch failure","errorType":"csvlake.Transient","trace":[]}"#;
        assert_eq!(cause_message(cause), "GetObject s3://raw/a.csv: dispatch failure");
        assert_eq!(cause_message("  plain text  "), "plain text");
        assert_eq!(cause_message(r#"{"other": 1}"#), r#"{"other": 1}"#);
        let long = "é".repeat(1000);
        let cut = cause_message(&long);
        assert!(cut.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8(), "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
    }

    #[test]
    fn seen_tracks_each_batch_once() {
        for len in [0u64, 1, 63, 64, 65, 130] {
            let mut seen = Seen::new(len);
            assert_eq!(seen.any_unseen(), len > 0, "len {len}");
            for b in 0..len {
                assert_eq!(seen.insert(b), Some(true));
            }
            assert!(!seen.any_unseen(), "len {len}");
            if len > 0 {
                assert_eq!(seen.insert(len - 1), Some(false));
            }
            assert_eq!(seen.insert(len), None);
        }
        let mut seen = Seen::new(65);
        for b in 0..64 {
            assert_eq!(seen.insert(b), Some(true));
        }
        assert!(seen.any_unseen());
    }

    #[test]
    fn elements_stream_one_at_a_time_and_errors_are_classified() {
        let mut got = Vec::new();
        each_element::<u32, _>(&b" [1, 2 ,3] "[..], "x", |n| {
            got.push(n);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, [1, 2, 3]);

        let e = each_element::<u32, _>(&b"[1, \"a\"]"[..], "s3://b/k", |_| Ok(())).unwrap_err();
        assert!(matches!(&e, Error::Internal(m) if m.contains("s3://b/k")), "{e}");
        let e = each_element::<u32, _>(&b"{}"[..], "k", |_| Ok(())).unwrap_err();
        assert!(matches!(e, Error::Internal(_)), "{e}");

        // The callback's own error comes back as it is, and stops the reading.
        let mut calls = 0;
        let e = each_element::<u32, _>(&b"[1, 2, 3]"[..], "k", |_| {
            calls += 1;
            Err(Error::Transient("upload".into()))
        })
        .unwrap_err();
        assert!(matches!(e, Error::Transient(m) if m == "upload"));
        assert_eq!(calls, 1);

        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
            }
        }
        let e = each_element::<u32, _>(Broken, "k", |_| Ok(())).unwrap_err();
        assert!(matches!(e, Error::Transient(_)), "{e}");
    }

    #[test]
    fn json_lines_are_read_value_by_value() {
        let text = b"{\"key\":\"a\",\"status\":\"failed\",\"error\":{\"kind\":\"k\",\"message\":\"m\"}}\n\n{\"key\":\"b\",\"status\":\"converted\"}\n";
        let mut keys = Vec::new();
        each_line::<FileResult>(&text[..], "x", |r| {
            keys.push(r.key);
            Ok(())
        })
        .unwrap();
        assert_eq!(keys, ["a", "b"]);
        assert!(each_line::<FileResult>(&b"{\"key\":1}"[..], "x", |_| Ok(())).is_err());
    }

    #[test]
    fn the_emf_record_names_every_metric_without_dimensions() {
        let summary = RunSummary {
            run_id: "r1".into(),
            status: RunStatus::Succeeded,
            exceeded_tolerance: false,
            totals: Totals {
                converted: 3,
                failed: 1,
                skipped: 2,
                rows: 10,
                bytes_in: 100,
                bytes_out: 40,
                ..Totals::default()
            },
            failures_by_kind: BTreeMap::new(),
            map_error: None,
            report: ObjectLocation { bucket: "b".into(), key: "r".into() },
            files: ObjectLocation { bucket: "b".into(), key: "f".into() },
            failed_keys: None,
        };
        let v = emf(&summary, None, 1_700_000_000_000);
        let aws = &v["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_000u64);
        let m = &aws["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "csvlake");
        assert_eq!(m["Dimensions"], serde_json::json!([[]]));
        let names: Vec<&str> = m["Metrics"].as_array().unwrap().iter().map(|x| x["Name"].as_str().unwrap()).collect();
        assert_eq!(names, ["FilesConverted", "FilesFailed", "FilesSkipped", "Rows", "BytesIn", "BytesOut"]);
        for name in names {
            assert!(v[name].is_u64(), "{name} has a value");
        }
        assert_eq!(m["Metrics"][4]["Unit"], "Bytes");
        assert_eq!(m["Metrics"][0]["Unit"], "Count");
        assert_eq!(
            (v["FilesConverted"].as_u64(), v["FilesFailed"].as_u64(), v["BytesOut"].as_u64()),
            (Some(3), Some(1), Some(40))
        );
        assert_eq!(v["run_id"], "r1");
        assert_eq!(v["status"], "succeeded");
        assert!(v.get(PIPELINE_DIMENSION).is_none());

        // A deployment's name is the one dimension, with its value beside the metrics.
        let v = emf(&summary, Some("Csvlake"), 1_700_000_000_000);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Pipeline"]]));
        assert_eq!(v["Pipeline"], "Csvlake");
        assert_eq!(v["FilesFailed"].as_u64(), Some(1));
    }
}
