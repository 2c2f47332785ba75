//! Converting files: one S3 GET stream per pass, decoded once into Arrow batches that feed every
//! format sink, each sink streaming to a staged upload that is committed only when the whole
//! file succeeded.
//!
//! A pass runs the decoder on a blocking thread. For files above [`THREADED_MIN_BYTES`] each
//! format writer gets its own thread, so decoding, Parquet encoding and Avro encoding overlap;
//! small files are converted on one thread and get their parallelism from running many at once.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use aws_sdk_s3::Client;
use futures::StreamExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Semaphore;
use tokio_util::io::SyncIoBridge;

use csvlake_contract::keys;
use csvlake_contract::payload::{BatchResult, ConvertBatch, FileRef, FileResult, FileStatus, Job, OutputRef};
use csvlake_contract::run::{SchemaPolicy, names as run_names, run_key};
use csvlake_contract::tables::{self, Provenance, TableSchema};
use csvlake_contract::{BatchError, ErrorNames};
use csvlake_engine::decode::{CsvDecoder, DecodeOptions, Dialect, Interrupt};
use csvlake_engine::options::{AvroOptions, Format, ParquetOptions};
use csvlake_engine::sink::FormatWriter;
use csvlake_engine::{BadInputKind, Error, Result};
use csvlake_s3::upload::{Metadata, PartSink, Staged, part_size_for, stage};
use csvlake_s3::{error_code, sdk_error, status};

use csvlake_contract::tables::metadata::{ROWS as ROWS_METADATA, SCHEMA as SCHEMA_METADATA};

/// Files at least this large get a writer thread per format.
pub const THREADED_MIN_BYTES: u64 = 4 << 20;
/// Upper bound on passes over one file; each pass after the first widens at least one column.
const MAX_PASSES: usize = 8;
/// Attempts of one file against transient failures, the first included.
pub const FILE_ATTEMPTS: u32 = 4;
/// Kept back from the Lambda deadline, to record the batch's results and return them.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(15);
/// The per-file throughput assumed before a batch has measured its own.
const ASSUMED_BYTES_PER_SEC: f64 = 8e6;

/// What a converter reports as it goes, for a progress display. Both methods do nothing unless
/// implemented.
pub trait Progress: Send + Sync {
    /// `bytes` more of an input object were read (as stored: compressed bytes for `.gz`). Each
    /// file counts once, however many passes its conversion takes, and its size in all by the
    /// time [`Progress::file_done`] is called.
    fn read(&self, bytes: u64) {
        let _ = bytes;
    }

    /// A file's result, converted or failed.
    fn file_done(&self, result: &FileResult) {
        let _ = result;
    }
}

/// Converts files and batches of files with one S3 client.
///
/// The memory budget and the file limit hold for the converter as a whole (and its clones), not
/// per batch: when the local executor runs several batches in one process, together they stay
/// within the budget one Lambda would have.
#[derive(Clone)]
pub struct Converter {
    client: Client,
    memory_budget_mib: u32,
    max_files: usize,
    progress: Option<Arc<dyn Progress>>,
    /// Permits in MiB of the memory budget.
    budget: Arc<Semaphore>,
    /// Permits for files under way.
    files: Arc<Semaphore>,
    /// Schema objects known to exist, by key.
    schemas: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("memory_budget_mib", &self.memory_budget_mib)
            .field("max_files", &self.max_files)
            .finish_non_exhaustive()
    }
}

/// Memory a file's conversion may use, in MiB, from its size: a small file is held whole; a
/// large one needs per format one part being filled, one queued and two in flight (64 MiB for
/// two formats), plus the Parquet row group being built (`parquet.row_group_bytes`, 64 MiB by
/// default), plus the decoder's batches.
pub fn file_weight_mib(size: u64) -> u32 {
    let mib = u32::try_from(size >> 20).unwrap_or(u32::MAX);
    mib.saturating_mul(2).saturating_add(4).min(MAX_FILE_WEIGHT_MIB)
}

/// The weight of the largest files.
pub const MAX_FILE_WEIGHT_MIB: u32 = 160;

impl Converter {
    /// A converter with a 1 GiB memory budget and at most 64 files at once.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            memory_budget_mib: 1024,
            max_files: 64,
            progress: None,
            budget: Arc::new(Semaphore::new(1024)),
            files: Arc::new(Semaphore::new(64)),
            schemas: Arc::default(),
        }
    }

    /// Sets the memory budget that bounds how many files convert at once.
    pub fn with_memory_budget_mib(mut self, mib: u32) -> Self {
        self.memory_budget_mib = mib.max(MAX_FILE_WEIGHT_MIB);
        self.budget = Arc::new(Semaphore::new(self.memory_budget_mib as usize));
        self
    }

    /// Sets the maximum number of files converted at once.
    pub fn with_max_files(mut self, n: usize) -> Self {
        self.max_files = n.max(1);
        self.files = Arc::new(Semaphore::new(self.max_files));
        self
    }

    /// Sets what is told of bytes read and of every file result.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The S3 client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Converts every file of a batch concurrently, within the memory budget, with no deadline.
    pub async fn convert_batch(&self, batch: &ConvertBatch) -> Result<BatchResult, BatchError> {
        self.convert_batch_until(batch, None).await
    }

    /// Converts every file of a batch concurrently, within the memory budget, and stops in time
    /// for `deadline` (the Lambda's).
    ///
    /// The file is the unit of failure: a transient error is retried for that file, from the
    /// start, and a file that still fails is a per-file `failed` result. The batch fails only for
    /// its own trouble, after recording the results it has in `_runs/<run_id>/batches/<n>.json`:
    /// with `csvlake.Deadline` when files are left at the deadline (files that could not finish
    /// in time are not started), and with `csvlake.Transient` when every file failed transiently,
    /// or a file was left with only some of its new outputs. A retry skips the files done.
    pub async fn convert_batch_until(
        &self,
        batch: &ConvertBatch,
        deadline: Option<SystemTime>,
    ) -> Result<BatchResult, BatchError> {
        batch.job.validate()?;
        let repeat = batch.is_repeat();
        let stop = deadline.map(|d| {
            let left = d.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(DEADLINE_MARGIN);
            tokio::time::Instant::now() + left
        });
        let pace = Pace::default();
        let floors = self.table_schemas(batch).await?;
        let floor_of = |file: &FileRef| {
            let table = tables::table_of(&batch.job.input.prefix, &file.key, batch.job.table_depth);
            floors.get(table).cloned().flatten()
        };
        let conform = batch.schema.as_deref();
        // The futures are made before the stream, so that no closure over `&FileRef` lives across
        // an await: the batch future is then Send for any caller (rust#102211).
        let futures: Vec<_> = batch
            .files
            .iter()
            .map(|file| {
                let floor =
                    Floor { table: floor_of(file), conform, drift: batch.job.schema_policy == SchemaPolicy::Fail };
                self.convert_guarded(&batch.job, file, repeat, stop, &pace, floor)
            })
            .collect();
        let outcomes: Vec<FileOutcome> = futures::stream::iter(futures).buffered(self.max_files).collect().await;

        let mut files = Vec::new();
        let (mut left, mut partial) = (0usize, None);
        for outcome in outcomes {
            match outcome {
                FileOutcome::Done(r) => files.push(r),
                FileOutcome::Unfinished => left += 1,
                FileOutcome::Partial(e) => {
                    partial.get_or_insert(e);
                }
            }
        }
        let all_transient = !files.is_empty()
            && left == 0
            && files.iter().all(|r| r.error.as_ref().is_some_and(|e| e.kind == csvlake_contract::errors::TRANSIENT));
        let failure = if left > 0 {
            Some(BatchError::Deadline(format!(
                "{left} of {} files were left at the Lambda deadline; a retry converts them",
                batch.files.len()
            )))
        } else if let Some(e) = partial {
            Some(BatchError::Engine(Error::Transient(format!("a file was left with only some of its outputs: {e}"))))
        } else if all_transient {
            let first = files.iter().find_map(|r| r.error.as_ref()).map(|e| e.message.clone()).unwrap_or_default();
            Some(BatchError::Engine(Error::Transient(format!("every file of the batch failed transiently: {first}"))))
        } else {
            None
        };
        match failure {
            Some(e) => {
                self.record(batch, &files).await;
                Err(e)
            }
            None => Ok(BatchResult { files }),
        }
    }

    /// The schema each table of the batch is written with, by table: the `Conform` batch's
    /// own, or the one its `current.json` names; none under the policy `per_file`, or for a
    /// table without one yet. One or two GETs per table.
    async fn table_schemas(&self, batch: &ConvertBatch) -> Result<HashMap<String, Option<Arc<TableSchema>>>> {
        let job = &batch.job;
        let mut schemas = HashMap::new();
        if job.schema_policy == SchemaPolicy::PerFile {
            return Ok(schemas);
        }
        let out = &job.output;
        for file in &batch.files {
            let table = tables::table_of(&job.input.prefix, &file.key, job.table_depth);
            if schemas.contains_key(table) {
                continue;
            }
            let id = match &batch.schema {
                Some(id) => Some(id.clone()),
                None => csvlake_s3::tables::read_current(&self.client, &out.bucket, &out.prefix, table)
                    .await?
                    .and_then(|(current, _)| current.schema),
            };
            let schema = match id {
                Some(id) => {
                    let key = tables::schema_key(&out.prefix, table, &id);
                    let schema: TableSchema =
                        csvlake_s3::get_json(&self.client, &out.bucket, &key, "a table schema").await?;
                    Some(Arc::new(schema))
                }
                None => None,
            };
            schemas.insert(table.to_owned(), schema);
        }
        Ok(schemas)
    }

    /// Records the results of a batch that is about to fail, for the reducer. Best effort: the
    /// retry records its own, and a file not recorded counts as failed with the batch's error.
    async fn record(&self, batch: &ConvertBatch, files: &[FileResult]) {
        let (Some(run_id), Some(n)) = (&batch.job.run_id, batch.batch) else { return };
        let out = &batch.job.output;
        // A `Conform` batch's numbers are those of its own manifest.
        let folder = if batch.schema.is_some() { run_names::CONFORM_BATCHES } else { run_names::BATCHES };
        let key = run_key(&out.prefix, run_id, &format!("{folder}/{n}.json"));
        let body = match serde_json::to_vec(&BatchResult { files: files.to_vec() }) {
            Ok(b) => b,
            Err(e) => return tracing::error!(error = %e, "the batch's results do not serialize"),
        };
        let put =
            self.client.put_object().bucket(&out.bucket).key(&key).body(aws_sdk_s3::primitives::ByteStream::from(body));
        if let Err(e) = put.send().await {
            tracing::error!(key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "could not record the batch's results");
        }
    }

    /// One file, unless the deadline leaves no time for it: it is not started when the
    /// throughput measured so far says it cannot finish, and stopped (its uploads aborted) when
    /// the deadline comes.
    async fn convert_guarded(
        &self,
        job: &Job,
        file: &FileRef,
        repeat: bool,
        stop: Option<tokio::time::Instant>,
        pace: &Pace,
        floor: Floor<'_>,
    ) -> FileOutcome {
        let Some(stop) = stop else { return self.convert_within(job, file, repeat, None, pace, floor).await };
        let work = self.convert_within(job, file, repeat, Some(stop), pace, floor);
        match tokio::time::timeout_at(stop, work).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(key = %file.key, "stopped at the deadline");
                FileOutcome::Unfinished
            }
        }
    }

    /// Converts one file once a file slot is free and its weight fits in the memory budget,
    /// retrying transient failures from the start. In a batch that may have run before
    /// (`repeat`), a file whose outputs already carry its provenance is reported from them.
    async fn convert_within(
        &self,
        job: &Job,
        file: &FileRef,
        repeat: bool,
        stop: Option<tokio::time::Instant>,
        pace: &Pace,
        floor: Floor<'_>,
    ) -> FileOutcome {
        let started = Instant::now();
        let failed = |e: &Error| {
            let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            tracing::info!(key = %file.key, error = %e, "file failed");
            FileResult::failed(&file.key, file.size, millis, e.to_file_error())
        };
        if repeat {
            match self.already_converted(job, file, floor.conform).await {
                Ok(Some(done)) => {
                    tracing::info!(key = %file.key, "already converted by an earlier attempt");
                    self.tell(file, &done, None);
                    return FileOutcome::Done(done);
                }
                Ok(None) => {}
                // Not known to be done: converted again.
                Err(e) => {
                    tracing::warn!(key = %file.key, error = %e, "could not check the outputs of an earlier attempt")
                }
            }
        }
        let closed = |e: tokio::sync::AcquireError| Error::Internal(e.to_string());
        let _slot = match self.files.acquire().await.map_err(closed) {
            Ok(s) => s,
            Err(e) => return FileOutcome::Done(failed(&e)),
        };
        if let Some(stop) = stop
            && tokio::time::Instant::now() + pace.estimate(file.size) > stop
        {
            tracing::info!(key = %file.key, size = file.size, "not started: it would not finish before the deadline");
            return FileOutcome::Unfinished;
        }
        let weight = file_weight_mib(file.size).min(self.memory_budget_mib);
        let _permit = match self.budget.acquire_many(weight).await.map_err(closed) {
            Ok(p) => p,
            Err(e) => return FileOutcome::Done(failed(&e)),
        };
        let read = Arc::new(AtomicU64::new(0));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self.convert_counted(job, file, &read, &floor).await;
            match r {
                Ok(r) => {
                    self.tell(file, &r, Some(&read));
                    pace.record(r.bytes_in, r.millis);
                    return FileOutcome::Done(r);
                }
                Err(Failure::Partial(e)) => return FileOutcome::Partial(e),
                Err(Failure::Error(Error::Transient(m))) if attempt < FILE_ATTEMPTS => {
                    let wait = Duration::from_millis(250u64 << attempt.min(5));
                    tracing::warn!(key = %file.key, attempt, error = %m, "retrying the file from the start");
                    tokio::time::sleep(wait).await;
                }
                Err(Failure::Error(e)) => {
                    let r = failed(&e);
                    self.tell(file, &r, Some(&read));
                    return FileOutcome::Done(r);
                }
            }
        }
    }

    fn tell(&self, file: &FileRef, result: &FileResult, read: Option<&Arc<AtomicU64>>) {
        if let Some(p) = &self.progress {
            p.read(file.size.saturating_sub(read.map_or(0, |r| r.load(Ordering::Relaxed))));
            p.file_done(result);
        }
    }

    /// The result of a file whose every output already carries its provenance (the listed ETag
    /// and size, this job's fingerprint) and, in a `Conform` batch, the schema `want_schema`: one
    /// HEAD per output.
    pub async fn already_converted(
        &self,
        job: &Job,
        file: &FileRef,
        want_schema: Option<&str>,
    ) -> Result<Option<FileResult>> {
        let Some(etag) = file.etag.as_deref() else { return Ok(None) };
        let Ok(rel) = keys::relative(&job.input.prefix, &file.key) else { return Ok(None) };
        let wanted = Provenance {
            key: file.key.clone(),
            etag: tables::bare_etag(etag).to_owned(),
            size: file.size,
            fingerprint: job.fingerprint(),
        };
        let bucket = &job.output.bucket;
        let mut outputs = Vec::new();
        let (mut rows, mut schema) = (None, None);
        let formats: BTreeSet<Format> = job.formats.iter().copied().collect();
        for format in formats {
            let key = keys::output_key(&job.output.prefix, format, &rel);
            let head = match self.client.head_object().bucket(bucket).key(&key).send().await {
                Ok(h) => h,
                Err(e) if status(&e) == Some(404) || error_code(&e) == Some("NotFound") => return Ok(None),
                Err(e) => return Err(sdk_error("HeadObject", bucket, &key, e)),
            };
            let meta = head.metadata().cloned().unwrap_or_default();
            if Provenance::from_metadata(&meta).as_ref() != Some(&wanted)
                || want_schema.is_some_and(|id| meta.get(SCHEMA_METADATA).map(String::as_str) != Some(id))
            {
                return Ok(None);
            }
            rows = rows.or_else(|| meta.get(ROWS_METADATA).and_then(|r| r.parse::<u64>().ok()));
            if rows.is_none() && format == Format::Parquet {
                // A multipart output could not record its rows; its Parquet footer has them.
                rows = Some(self.parquet_rows(bucket, &key).await?);
            }
            schema = schema.or_else(|| meta.get(SCHEMA_METADATA).cloned());
            let bytes = head.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(0);
            outputs.push(OutputRef { format, key, bytes });
        }
        Ok(Some(FileResult {
            key: file.key.clone(),
            status: FileStatus::Converted,
            rows: rows.unwrap_or(0),
            bytes_in: file.size,
            etag: Some(wanted.etag),
            schema,
            outputs,
            dialect: None,
            millis: 0,
            error: None,
        }))
    }

    /// The rows of a Parquet object, from its footer: one ranged GET, two for a footer over
    /// 64 KiB.
    async fn parquet_rows(&self, bucket: &str, key: &str) -> Result<u64> {
        let tail = |n: usize| async move {
            let resp = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .range(format!("bytes=-{n}"))
                .send()
                .await
                .map_err(|e| sdk_error("GetObject", bucket, key, e))?;
            csvlake_s3::collect(resp.body, bucket, key).await
        };
        let not_parquet = |why: String| Error::Internal(format!("s3://{bucket}/{key}: {why}"));
        let mut buf = tail(64 << 10).await?;
        let n = buf.len();
        if n < 8 || &buf[n - 4..] != b"PAR1" {
            return Err(not_parquet("no Parquet footer".into()));
        }
        let len = u32::from_le_bytes([buf[n - 8], buf[n - 7], buf[n - 6], buf[n - 5]]) as usize;
        if len + 8 > n {
            buf = tail(len + 8).await?;
        }
        let n = buf.len();
        let footer = buf.get(n.saturating_sub(len + 8)..n - 8).ok_or_else(|| not_parquet("a short footer".into()))?;
        let metadata = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(footer)
            .map_err(|e| not_parquet(e.to_string()))?;
        Ok(u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0))
    }

    /// Converts one file, once. `Ok` carries a converted or failed (bad input) result; `Err` is
    /// transient, denied or internal, and nothing of it was committed.
    pub async fn convert_file(&self, job: &Job, file: &FileRef) -> Result<FileResult> {
        match self.convert_counted(job, file, &Arc::new(AtomicU64::new(0)), &Floor::default()).await {
            Ok(r) => Ok(r),
            Err(Failure::Error(e) | Failure::Partial(e)) => Err(e),
        }
    }

    /// [`Converter::convert_file`], counting in `read` the bytes reported to the progress.
    async fn convert_counted(
        &self,
        job: &Job,
        file: &FileRef,
        read: &Arc<AtomicU64>,
        floor: &Floor<'_>,
    ) -> std::result::Result<FileResult, Failure> {
        let started = Instant::now();
        let millis = |s: Instant| u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX);
        let failed = |e: &Error, bytes_in: u64| {
            tracing::info!(key = %file.key, error = %e, "file failed");
            FileResult::failed(&file.key, bytes_in, millis(started), e.to_file_error())
        };
        let rel = match keys::relative(&job.input.prefix, &file.key) {
            Ok(rel) => rel,
            Err(e) => return Ok(failed(&e, file.size)),
        };
        let mut first = DecodeOptions::for_file(&job.csv, &file.key).map_err(|e| Error::Internal(e.to_string()))?;
        first.table = floor.table.as_ref().map(|t| t.columns.iter().map(|c| (c.name.clone(), c.column_type)).collect());
        let fingerprint = job.fingerprint();
        let mut opts = first.clone();
        let mut dialect: Option<Dialect> = None;
        // The version the first pass read: later passes read that one or none.
        let mut version: Option<String> = None;
        for _ in 0..MAX_PASSES {
            let target = Target { rel: &rel, fingerprint: &fingerprint, version: version.as_deref() };
            let (seen, pass) = self.convert_pass(job, file, &target, opts.clone(), read, floor).await;
            dialect = seen.or(dialect);
            match pass {
                Ok(Pass::Done { rows, bytes_in, etag, schema, staged }) => {
                    // The schema first: it is named by its content, and harmless if the
                    // outputs then fail.
                    if let Err(e) = self.store_schema(job, &file.key, &schema).await {
                        for (_, s) in staged {
                            s.discard(&self.client).await;
                        }
                        return Err(e.into());
                    }
                    let outputs = self.commit(staged, rows).await?;
                    return Ok(FileResult {
                        key: file.key.clone(),
                        status: FileStatus::Converted,
                        rows,
                        bytes_in,
                        etag: Some(etag),
                        schema: Some(schema.id),
                        outputs,
                        dialect,
                        millis: millis(started),
                        error: None,
                    });
                }
                Ok(Pass::Changed) => {
                    // The input was overwritten between passes: start again on the new version.
                    tracing::info!(key = %file.key, "the input changed while it was read; reading it again");
                    (version, opts, dialect) = (None, first.clone(), None);
                }
                Ok(Pass::Again(again, etag)) => {
                    version = Some(etag);
                    // The next pass reads the file with the dialect of this one.
                    if let Some(d) = &dialect {
                        opts.dialect = d.given(opts.dialect.comment.take());
                    }
                    match again {
                        Interrupt::Widen(kinds) => opts.floor = Some(kinds),
                        Interrupt::Reencode(encoding) => {
                            tracing::info!(key = %file.key, encoding = encoding.name(), "reading again in another encoding");
                            // Everything is detected again in the new encoding.
                            opts = DecodeOptions { encoding: Some(encoding), ..first.clone() };
                        }
                        Interrupt::Error(e) => return Err(e.into()),
                    }
                }
                Err(e @ Error::BadInput { .. }) => return Ok(FileResult { dialect, ..failed(&e, file.size) }),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal(format!("{}: types did not settle after {MAX_PASSES} passes", file.key)).into())
    }

    async fn convert_pass(
        &self,
        job: &Job,
        file: &FileRef,
        target: &Target<'_>,
        opts: DecodeOptions,
        read: &Arc<AtomicU64>,
        floor: &Floor<'_>,
    ) -> (Option<Dialect>, Result<Pass>) {
        let bucket = &job.input.bucket;
        let mut get = self.client.get_object().bucket(bucket).key(&file.key);
        if let Some(etag) = target.version {
            get = get.if_match(format!("\"{etag}\""));
        }
        let resp = match get.send().await {
            Ok(r) => r,
            Err(e) if error_code(&e) == Some("NoSuchKey") => {
                let message = format!("s3://{bucket}/{} no longer exists", file.key);
                return (None, Err(Error::bad(BadInputKind::NotFound, message)));
            }
            Err(e)
                if target.version.is_some()
                    && (status(&e) == Some(412) || error_code(&e) == Some("PreconditionFailed")) =>
            {
                return (None, Ok(Pass::Changed));
            }
            Err(e) => return (None, Err(sdk_error("GetObject", bucket, &file.key, e))),
        };
        let bytes_in = resp.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(file.size);
        let etag = resp.e_tag().map(|t| tables::bare_etag(t).to_owned()).unwrap_or_default();
        let rel = target.rel;
        let provenance = Provenance {
            key: file.key.clone(),
            etag: etag.clone(),
            size: bytes_in,
            fingerprint: target.fingerprint.to_owned(),
        }
        .to_metadata();
        let compressed = opts.compression.is_some();
        let net_error = Arc::new(Mutex::new(None));
        let counter = self.progress.clone().map(|progress| ReadCounter { progress, reported: read.clone(), pass: 0 });
        let body = TrackedRead { inner: Box::pin(resp.body.into_async_read()), error: net_error.clone(), counter };
        let reader = SyncIoBridge::new(body);

        let part_size =
            part_size_for(if compressed { bytes_in.saturating_mul(10) } else { bytes_in.saturating_mul(2) });
        let formats: BTreeSet<Format> = job.formats.iter().copied().collect();
        let nformats = formats.len();
        let mut sinks = Vec::new();
        let mut uploads = Vec::new();
        for format in formats {
            let (sink, rx) = PartSink::new(part_size);
            let key = keys::output_key(&job.output.prefix, format, rel);
            let task = tokio::spawn(stage(self.client.clone(), job.output.bucket.clone(), key, rx));
            uploads.push((format, task));
            sinks.push((format, sink));
        }

        let writers = Writers {
            parquet: job.parquet.clone(),
            avro: job.avro.clone(),
            sinks,
            provenance,
            table: floor.table.clone(),
            drift: floor.drift,
        };
        let threaded = bytes_in >= THREADED_MIN_BYTES;
        let (seen, pipeline) = tokio::task::spawn_blocking(move || run_pipeline(reader, &opts, writers, threaded))
            .await
            .unwrap_or_else(|e| (None, Err(Error::Internal(format!("conversion task: {e}")))));

        let mut staged = Vec::new();
        let mut upload_error = None;
        for (format, task) in uploads {
            match task.await {
                Ok(Ok(Some(s))) => staged.push((format, s)),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    upload_error.get_or_insert(e);
                }
                Err(e) => {
                    upload_error.get_or_insert(Error::Internal(format!("upload task: {e}")));
                }
            }
        }
        let result = match (pipeline, upload_error) {
            (Ok(Outcome::Done { rows, schema }), None) if staged.len() == nformats => {
                return (seen, Ok(Pass::Done { rows, bytes_in, etag, schema, staged }));
            }
            // An upload failure is the cause; the writer only saw its pipe close.
            (_, Some(e)) => Err(e),
            (Ok(Outcome::Again(again)), None) => Ok(Pass::Again(again, etag)),
            (Ok(Outcome::Done { .. }), None) => Err(Error::Internal("an output was not staged".into())),
            (Err(Error::Transient(m)), None) => {
                let network = net_error.lock().map(|g| g.clone()).unwrap_or(None);
                match network {
                    Some(n) => Err(Error::Transient(format!("reading s3://{bucket}/{}: {n}", file.key))),
                    None => Err(Error::Transient(m)),
                }
            }
            (Err(e), None) => Err(e),
        };
        for (_, s) in staged {
            s.discard(&self.client).await;
        }
        (seen, result)
    }

    /// Stores the file's schema under its table, once per schema (objects are named by their
    /// content, so a second writer writes the same bytes).
    async fn store_schema(&self, job: &Job, key: &str, schema: &FileSchema) -> Result<()> {
        let table = tables::table_of(&job.input.prefix, key, job.table_depth);
        let at = tables::schema_key(&job.output.prefix, table, &schema.id);
        if self.schemas.lock().map(|s| s.contains(&at)).unwrap_or(false) {
            return Ok(());
        }
        let bucket = &job.output.bucket;
        self.client
            .put_object()
            .bucket(bucket)
            .key(&at)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(schema.json.clone()))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", bucket, &at, e))?;
        if let Ok(mut s) = self.schemas.lock() {
            s.insert(at);
        }
        Ok(())
    }

    /// Makes every staged output visible. When one cannot be committed, the others are left as
    /// they are: an output already committed is a good new version (its provenance says of
    /// what), and deleting it would lose the previous one too. That is a [`Failure::Partial`].
    /// An output sent in one PUT also records its rows.
    async fn commit(&self, staged: Vec<(Format, Staged)>, rows: u64) -> std::result::Result<Vec<OutputRef>, Failure> {
        let client = &self.client;
        let results = futures::future::join_all(staged.into_iter().map(|(format, mut s)| async move {
            if let Staged::Single { metadata, .. } = &mut s {
                metadata.insert(ROWS_METADATA.to_owned(), rows.to_string());
            }
            let key = s.location().1.to_owned();
            let bytes = match &s {
                Staged::Single { body, .. } => body.len() as u64,
                Staged::Multipart { size, .. } => *size,
            };
            s.commit(client).await.map(|()| OutputRef { format, key, bytes })
        }))
        .await;
        let committed = results.iter().filter(|r| r.is_ok()).count();
        let mut outputs = Vec::new();
        let mut error = None;
        for r in results {
            match r {
                Ok(o) => outputs.push(o),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        match error {
            None => Ok(outputs),
            Some(e) if committed > 0 => Err(Failure::Partial(e)),
            Some(e) => Err(Failure::Error(e)),
        }
    }
}

/// Why a file's conversion stopped.
enum Failure {
    /// Nothing of it was committed.
    Error(Error),
    /// Some outputs were committed and others not.
    Partial(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

/// What became of one file of a batch.
enum FileOutcome {
    /// Converted, or failed with nothing committed.
    Done(FileResult),
    /// Not converted because of the deadline; nothing committed.
    Unfinished,
    /// Left with only some of its new outputs.
    Partial(Error),
}

/// The throughput of a batch's files so far, to tell whether the next one can finish in time.
#[derive(Debug, Default)]
struct Pace {
    bytes: AtomicU64,
    millis: AtomicU64,
}

impl Pace {
    fn record(&self, bytes: u64, millis: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.millis.fetch_add(millis, Ordering::Relaxed);
    }

    /// How long a file of `size` bytes is expected to take: at the per-file rate measured in
    /// this batch (each file's bytes over its own time), or an assumed one before any finished.
    fn estimate(&self, size: u64) -> Duration {
        let (bytes, millis) = (self.bytes.load(Ordering::Relaxed), self.millis.load(Ordering::Relaxed));
        let rate = if bytes > 0 && millis > 0 { bytes as f64 * 1000.0 / millis as f64 } else { ASSUMED_BYTES_PER_SEC };
        Duration::from_secs_f64(size as f64 / rate.max(1.0))
    }
}

/// Where a file's outputs go and what they record.
struct Target<'a> {
    rel: &'a str,
    fingerprint: &'a str,
    /// The ETag an earlier pass read: this pass must read the same version.
    version: Option<&'a str>,
}

/// What one pass over a file produced.
enum Pass {
    Done {
        rows: u64,
        bytes_in: u64,
        etag: String,
        schema: FileSchema,
        staged: Vec<(Format, Staged)>,
    },
    /// Read the file again: with wider kinds, or in another encoding. Carries the ETag read.
    Again(Interrupt, String),
    /// The input changed since the first pass: start over.
    Changed,
}

/// How the blocking part of a pass ended.
enum Outcome {
    Done { rows: u64, schema: FileSchema },
    Again(Interrupt),
}

/// A file's columns as stored under its table: `{"columns": [{"name", "type"}]}`, named by
/// the hash of that text.
#[derive(Clone, Debug)]
pub struct FileSchema {
    /// 32 hex digits.
    pub id: String,
    /// The JSON text.
    pub json: Vec<u8>,
}

impl FileSchema {
    fn of(table: &TableSchema) -> Self {
        Self { id: table.id(), json: table.to_json() }
    }
}

/// The schema a file is written with, beyond its own.
#[derive(Clone, Debug, Default)]
struct Floor<'a> {
    /// Its table's schema, if the table has one (and the policy is not `per_file`).
    table: Option<Arc<TableSchema>>,
    /// The id of that schema when it is a `Conform` batch's.
    conform: Option<&'a str>,
    /// Whether a file that would widen the table's schema fails (the policy `fail`).
    drift: bool,
}

/// The columns a file is written with: the table's in its order, then the file's own new ones;
/// each from the decoder's column, or all null where the file lacks it.
struct Projection {
    schema: SchemaRef,
    /// Per output column, the decoder's column, if the file has it.
    sources: Vec<Option<usize>>,
    /// Identity: the file's own columns, in its order.
    identity: bool,
}

impl Projection {
    /// The output columns of a file read by `decoder` in a table of schema `table`, and the
    /// file's schema as written.
    fn new(decoder: &CsvDecoder<'_>, table: Option<&TableSchema>) -> (Self, TableSchema) {
        let own = decoder.schema();
        let file = TableSchema::new(
            own.fields().iter().zip(decoder.kinds()).map(|(f, k)| (f.name().clone(), k.column_type())),
        );
        let Some(table) = table else {
            let sources = (0..own.fields().len()).map(Some).collect();
            return (Self { schema: own, sources, identity: true }, file);
        };
        let mut written = TableSchema::default();
        let mut sources = Vec::new();
        for c in &table.columns {
            let at = file.columns.iter().position(|f| f.name == c.name);
            let column_type = at.map_or(c.column_type, |i| file.columns[i].column_type);
            written.columns.push(tables::SchemaColumn { name: c.name.clone(), column_type });
            sources.push(at);
        }
        for (i, c) in file.columns.iter().enumerate() {
            if table.column(&c.name).is_none() {
                written.columns.push(c.clone());
                sources.push(Some(i));
            }
        }
        let identity = sources.iter().enumerate().all(|(j, s)| *s == Some(j)) && sources.len() == file.columns.len();
        let (names, types) = written.parts();
        let schema = if identity { own } else { csvlake_engine::schema::arrow_schema(&names, &types) };
        (Self { schema, sources, identity }, written)
    }

    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.identity {
            return Ok(batch);
        }
        let rows = batch.num_rows();
        let columns = self
            .sources
            .iter()
            .zip(self.schema.fields())
            .map(|(s, f)| match s {
                Some(i) => batch.column(*i).clone(),
                None => arrow_array::new_null_array(f.data_type(), rows),
            })
            .collect();
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// A per-column flag of the decoder's, per output column.
    fn flags(&self, own: &[bool]) -> Vec<bool> {
        self.sources.iter().map(|s| s.is_some_and(|i| own.get(i).copied().unwrap_or(false))).collect()
    }
}

struct Writers {
    parquet: ParquetOptions,
    avro: AvroOptions,
    sinks: Vec<(Format, PartSink)>,
    /// The provenance every output records.
    provenance: Metadata,
    /// The table's schema, which the outputs are written with (widened where the file needs).
    table: Option<Arc<TableSchema>>,
    /// Whether a file that would widen `table` fails.
    drift: bool,
}

enum Msg {
    Batch(RecordBatch),
    End,
}

/// Runs one pass; returns the dialect the file was read with, once it is known.
fn run_pipeline(
    reader: impl Read + Send,
    opts: &DecodeOptions,
    w: Writers,
    threaded: bool,
) -> (Option<Dialect>, Result<Outcome>) {
    let mut decoder = match CsvDecoder::new(reader, opts) {
        Ok(d) => d,
        Err(Interrupt::Error(e)) => return (None, Err(e)),
        Err(again) => return (None, Ok(Outcome::Again(again))),
    };
    let dialect = decoder.dialect().clone();
    (Some(dialect), decode_into(&mut decoder, w, threaded))
}

fn decode_into(decoder: &mut CsvDecoder<'_>, w: Writers, threaded: bool) -> Result<Outcome> {
    let (projection, written) = Projection::new(decoder, w.table.as_deref());
    if w.drift
        && let Some(table) = &w.table
        && !table.covers(&written)
    {
        return Err(Error::bad(
            BadInputKind::SchemaDrift,
            format!(
                "the file would widen its table's schema ({}); under schema_policy fail the table keeps its \
                 schema: fix the file, give csv.schema, or use schema_policy conform",
                table.widening(&written).join(", ")
            ),
        ));
    }
    let schema = projection.schema.clone();
    let file_schema = FileSchema::of(&written);
    let plain = projection.flags(decoder.mostly_distinct());
    let mut metadata = w.provenance.clone();
    metadata.insert(SCHEMA_METADATA.to_owned(), file_schema.id.clone());
    let mut writers = w
        .sinks
        .into_iter()
        .map(|(format, mut sink)| {
            sink.set_metadata(metadata.clone()).map_err(|e| Error::Internal(e.to_string()))?;
            FormatWriter::new(format, schema.clone(), &plain, (&w.parquet, &w.avro), sink)
        })
        .collect::<Result<Vec<_>>>()?;

    if !threaded {
        loop {
            match decoder.next_batch() {
                Ok(Some(batch)) => {
                    let batch = projection.apply(batch)?;
                    for writer in &mut writers {
                        writer.write(&batch)?;
                    }
                }
                Ok(None) => break,
                Err(Interrupt::Error(e)) => return Err(e),
                Err(again) => return Ok(Outcome::Again(again)),
            }
        }
        for writer in writers {
            finish(writer)?;
        }
        return Ok(Outcome::Done { rows: decoder.rows(), schema: file_schema });
    }

    std::thread::scope(|s| {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for writer in writers {
            let (tx, rx) = sync_channel::<Msg>(2);
            senders.push(tx);
            let name = format!("csvlake-{}", writer.format().as_str());
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn_scoped(s, move || write_all(writer, rx))
                .map_err(|e| Error::Internal(format!("starting a writer thread: {e}")))?;
            handles.push(handle);
        }
        let decoded = 'decode: loop {
            match decoder.next_batch() {
                Ok(Some(batch)) => {
                    let batch = match projection.apply(batch) {
                        Ok(b) => b,
                        Err(e) => break Err(Some(e)),
                    };
                    for tx in &senders {
                        if tx.send(Msg::Batch(batch.clone())).is_err() {
                            break 'decode Err(None);
                        }
                    }
                }
                Ok(None) => {
                    for tx in &senders {
                        let _ = tx.send(Msg::End);
                    }
                    break Ok(None);
                }
                Err(Interrupt::Error(e)) => break Err(Some(e)),
                Err(again) => break Ok(Some(again)),
            }
        };
        drop(senders);
        let written: Vec<Result<u64>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::Internal("format writer panicked".into()))))
            .collect();
        match decoded {
            Err(Some(e)) => Err(e),
            Ok(Some(again)) => Ok(Outcome::Again(again)),
            Err(None) | Ok(None) => {
                written.into_iter().collect::<Result<Vec<_>>>()?;
                Ok(Outcome::Done { rows: decoder.rows(), schema: file_schema })
            }
        }
    })
}

/// Writes the format's footer and sends the last part; returns the object's size.
fn finish(writer: FormatWriter<PartSink>) -> Result<u64> {
    writer.finish()?.finish().map_err(|e| Error::Internal(format!("finishing upload: {e}")))
}

fn write_all(mut writer: FormatWriter<PartSink>, rx: Receiver<Msg>) -> Result<u64> {
    for msg in rx {
        match msg {
            Msg::Batch(b) => writer.write(&b)?,
            Msg::End => return finish(writer),
        }
    }
    // The decoder stopped early: dropping the writer drops its sink, and the upload aborts.
    Err(Error::Internal("conversion stopped".into()))
}

/// Remembers a network read error, so that a failed decode can tell a dropped connection
/// (transient) from a corrupt gzip stream (bad input).
/// It also tells the progress how far the file has been read.
struct TrackedRead {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    error: Arc<Mutex<Option<String>>>,
    counter: Option<ReadCounter>,
}

/// Bytes read by this pass, and reported for the file across its passes: a pass that reads
/// again what an earlier one read reports nothing until it gets further.
struct ReadCounter {
    progress: Arc<dyn Progress>,
    reported: Arc<AtomicU64>,
    pass: u64,
}

impl ReadCounter {
    fn add(&mut self, n: u64) {
        self.pass += n;
        let before = self.reported.fetch_max(self.pass, Ordering::Relaxed);
        if self.pass > before {
            self.progress.read(self.pass - before);
        }
    }
}

impl AsyncRead for TrackedRead {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let filled = buf.filled().len();
        let r = self.inner.as_mut().poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - filled) as u64;
                if let Some(counter) = &mut self.counter {
                    counter.add(n);
                }
            }
            Poll::Ready(Err(e)) => {
                if let Ok(mut slot) = self.error.lock() {
                    *slot = Some(e.to_string());
                }
            }
            Poll::Pending => {}
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_on_one_converter_share_its_limits() {
        let conf = aws_sdk_s3::Config::builder().behavior_version_latest().build();
        let c = Converter::new(Client::from_conf(conf)).with_max_files(3).with_memory_budget_mib(200);
        let other = c.clone();
        let _files = c.files.acquire_many(2).await.unwrap();
        let _mib = c.budget.acquire_many(150).await.unwrap();
        assert_eq!(other.files.available_permits(), 1);
        assert_eq!(other.budget.available_permits(), 50);
    }
}
