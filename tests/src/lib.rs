//! Shared helpers of the end-to-end tests: a harness around the embedded S3 endpoint, readers
//! that turn Parquet and Avro output files into comparable cells with libraries independent of
//! the writers, an independent interpretation of CSV text, and small data generators.
//!
//! Everything here reads the output *files* on disk: the tests never trust the S3 responses
//! of the endpoint that the converter wrote through.

pub mod faults;
pub mod moto;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use apache_avro::Schema as AvroSchema;
use apache_avro::types::Value as AvroValue;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use csvlake_cli::local::{LocalBucket, LocalS3};
use csvlake_contract::payload::{
    BatchResult, ConvertBatch, FileRef, FileResult, InputLocation, Job, OutputLocation, default_suffixes,
};
use csvlake_contract::run::{BatchLimits, ManifestBatch};
use csvlake_converter::Converter;
use csvlake_planner::plan::{Listed, Planner};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaData;
use s3s::{S3Request, S3Response, S3Result, dto};

/// Name of the input bucket served by [`Harness`].
pub const INPUT_BUCKET: &str = "input";
/// Name of the output bucket served by [`Harness`].
pub const OUTPUT_BUCKET: &str = "output";

/// The S3 operations a client sent, recorded by an interceptor on the client.
#[derive(Clone, Debug, Default)]
pub struct S3Calls(Arc<Mutex<Vec<String>>>);

impl S3Calls {
    /// How many requests of operation `op` (e.g. `"CreateMultipartUpload"`) were sent.
    pub fn count(&self, op: &str) -> usize {
        self.0.lock().map(|v| v.iter().filter(|o| o.as_str() == op).count()).unwrap_or(0)
    }

    /// Forgets every recorded request.
    pub fn clear(&self) {
        if let Ok(mut v) = self.0.lock() {
            v.clear();
        }
    }

    /// Every recorded operation, in order.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Names the S3 operation of a request from its method and URI alone. A PUT of a table's state
/// (under `_tables/`) is `PutObject:_tables`, so that counts of `PutObject` are of outputs and
/// run objects.
pub fn operation_of(method: &str, uri: &str) -> &'static str {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    let has = |name: &str| query.split('&').any(|p| p == name || p.starts_with(&format!("{name}=")));
    match method {
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        "PUT" if has("uploadId") => "UploadPart",
        "PUT" if uri.split('?').next().is_some_and(|path| path.contains("/_tables/")) => "PutObject:_tables",
        "PUT" => "PutObject",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "DELETE" => "DeleteObject",
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" => "GetObject",
        "HEAD" => "HeadObject",
        _ => "Other",
    }
}

impl Intercept for S3Calls {
    fn name(&self) -> &'static str {
        "S3Calls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        let op = operation_of(request.method(), request.uri());
        if let Ok(mut v) = self.0.lock() {
            v.push(op.to_owned());
        }
        Ok(())
    }
}

/// A temporary directory with an input and an output directory served as buckets over the
/// embedded S3 endpoint, and a converter whose client records every request it sends.
#[derive(Debug)]
pub struct Harness {
    /// Root of everything the test writes; removed on drop.
    pub root: tempfile::TempDir,
    /// Directory served as the input bucket.
    pub input: PathBuf,
    /// Directory served as the output bucket.
    pub output: PathBuf,
    /// The running endpoint; it stops when the harness is dropped.
    pub server: LocalS3,
    /// The converter, over a client that records its requests in `calls`.
    pub converter: Converter,
    /// Requests sent by the converter's client.
    pub calls: S3Calls,
}

impl Harness {
    /// Creates the directories and starts the endpoint.
    pub async fn start() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let input = root.path().join("in");
        let output = root.path().join("out");
        std::fs::create_dir_all(&input).expect("create input dir");
        std::fs::create_dir_all(&output).expect("create output dir");
        let server = LocalS3::start(&[
            LocalBucket { name: INPUT_BUCKET.into(), dir: input.clone() },
            LocalBucket { name: OUTPUT_BUCKET.into(), dir: output.clone() },
        ])
        .await
        .expect("start the embedded S3 endpoint");
        let calls = S3Calls::default();
        let conf = server.client().config().to_builder().interceptor(calls.clone()).build();
        let converter = Converter::new(Client::from_conf(conf));
        Self { root, input, output, server, converter, calls }
    }

    /// Writes an input object (a file under the input directory).
    pub fn put(&self, key: &str, bytes: impl AsRef<[u8]>) {
        let path = self.input.join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create input sub-directory");
        }
        std::fs::write(&path, bytes).expect("write input file");
    }

    /// A job from `in_prefix` of the input bucket to `out_prefix` of the output bucket.
    pub fn job(&self, in_prefix: &str, out_prefix: &str) -> Job {
        Job::new(
            InputLocation {
                bucket: INPUT_BUCKET.into(),
                prefix: in_prefix.into(),
                scan: Vec::new(),
                suffixes: default_suffixes(),
            },
            OutputLocation { bucket: OUTPUT_BUCKET.into(), prefix: out_prefix.into() },
        )
    }

    /// Lists the job's inputs over S3, sets aside inputs whose outputs would collide, and
    /// converts the rest in one batch through the converter Lambda's handler. Results are
    /// returned sorted by key.
    pub async fn run(&self, job: &Job) -> BatchResult {
        let files = csvlake_planner::plan::list_inputs(self.converter.client(), &job.input).await.expect("list inputs");
        assert!(!files.is_empty(), "no input under {:?}", job.input.prefix);
        let unbounded = BatchLimits { max_files: usize::MAX, max_bytes: u64::MAX };
        let mut planner = Planner::new(&job.input.prefix, &job.output.prefix, unbounded, None);
        for f in files {
            planner.add(Listed { key: f.key, size: f.size, etag: f.etag.unwrap_or_default() }, None).expect("plan");
        }
        planner.finish().expect("plan");
        let batches: Vec<ManifestBatch> = serde_json::from_slice(&planner.take_manifest()).expect("manifest");
        let rejected = String::from_utf8(planner.take_rejected()).expect("utf-8");
        let mut result = self.run_files(job, batches.into_iter().flat_map(|b| b.files).collect()).await;
        result.files.extend(rejected.lines().map(|l| serde_json::from_str::<FileResult>(l).expect("result line")));
        result.files.sort_by(|a, b| a.key.cmp(&b.key));
        result
    }

    /// Converts the given files in one batch through the converter Lambda's handler, as the
    /// state machine would after planning. Results are returned sorted by key.
    pub async fn run_files(&self, job: &Job, files: Vec<FileRef>) -> BatchResult {
        let batch =
            ConvertBatch { job: job.clone(), batch: None, files, retry_count: 0, redrive_count: 0, schema: None };
        let event = lambda_runtime::LambdaEvent::new(batch, lambda_runtime::Context::default());
        let mut result = csvlake_converter::handle(event, &self.converter).await.expect("the batch succeeds");
        result.files.sort_by(|a, b| a.key.cmp(&b.key));
        result
    }

    /// The file behind an output key.
    pub fn output_path(&self, key: &str) -> PathBuf {
        self.output.join(key)
    }

    /// Every file under the output directory but the tables' state (`_tables/`), as paths
    /// relative to it, sorted.
    pub fn output_files(&self) -> Vec<String> {
        self.all_output_files().into_iter().filter(|p| !is_table_state(p)).collect()
    }

    /// Every file under the output directory, as paths relative to it, sorted.
    pub fn all_output_files(&self) -> Vec<String> {
        let mut out: Vec<String> = walk(&self.output)
            .into_iter()
            .map(|p| p.strip_prefix(&self.output).expect("under output").to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    /// Scratch files the endpoint keeps beside the buckets while an upload is in progress
    /// (multipart parts, upload records, objects being assembled). Empty when every multipart
    /// upload was completed or aborted. Per-object metadata sidecars are not leftovers.
    ///
    /// The endpoint keeps them in a scratch directory beside the output directory; the walk
    /// covers it, and panics when there is none, so that a moved scratch root cannot make this
    /// check pass vacuously.
    pub fn leftover_upload_files(&self) -> Vec<PathBuf> {
        let scratch = std::fs::read_dir(self.root.path())
            .expect("read the harness root")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".csvlake-s3-"))
            .count();
        assert_eq!(scratch, 1, "the endpoint's scratch directory is beside the output directory");
        walk(self.root.path())
            .into_iter()
            .filter(|p| !p.starts_with(&self.input))
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let sidecar = (name.ends_with(".metadata.json") || name.ends_with(".internal.json"))
                    && name.starts_with(".bucket-")
                    && !name.contains(".upload-");
                name.starts_with('.') && !sidecar
            })
            .collect()
    }
}

/// Whether a path relative to the output is a table's state (under `_tables/`).
pub fn is_table_state(path: &str) -> bool {
    path.starts_with("_tables/") || path.contains("/_tables/")
}

/// Every regular file under `dir`, recursively, without following symbolic links.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push(path);
            }
        }
    }
    out
}

/// The result of the file with `key`.
pub fn result_for<'a>(result: &'a BatchResult, key: &str) -> &'a FileResult {
    result.files.iter().find(|f| f.key == key).unwrap_or_else(|| {
        panic!("no result for {key}; results: {:?}", result.files.iter().map(|f| &f.key).collect::<Vec<_>>())
    })
}

/// One value of an output, in a form both readers and the CSV interpretation produce.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// A null.
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A date, as days since 1970-01-01.
    Date(i32),
    /// A timestamp, as microseconds since 1970-01-01T00:00:00 (UTC when the column is).
    Micros(i64),
    /// Text.
    Text(String),
}

/// The type a test expects a column to have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// int64.
    Int,
    /// float64.
    Float,
    /// boolean.
    Bool,
    /// date32.
    Date,
    /// timestamp, microseconds, UTC.
    TimestampUtc,
    /// timestamp, microseconds, without a time zone.
    Timestamp,
    /// utf8.
    Text,
}

impl Expect {
    /// The Arrow type a Parquet reader must report for the column.
    pub fn arrow_type(self) -> DataType {
        match self {
            Self::Int => DataType::Int64,
            Self::Float => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Date => DataType::Date32,
            Self::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::Text => DataType::Utf8,
        }
    }

    /// Whether `schema` is the Avro type of the column's non-null values.
    pub fn matches_avro(self, schema: &AvroSchema) -> bool {
        matches!(
            (self, schema),
            (Self::Int, AvroSchema::Long)
                | (Self::Float, AvroSchema::Double)
                | (Self::Bool, AvroSchema::Boolean)
                | (Self::Date, AvroSchema::Date)
                | (Self::TimestampUtc, AvroSchema::TimestampMicros)
                | (Self::Timestamp, AvroSchema::LocalTimestampMicros)
                | (Self::Text, AvroSchema::String)
        )
    }
}

/// The cell a CSV field must become in a column of type `expect`, computed without the
/// library: integers and floats with the standard library, dates and timestamps by hand.
pub fn expected_cell(expect: Expect, raw: &str, nulls: &[&str]) -> Cell {
    if nulls.contains(&raw) {
        return Cell::Null;
    }
    let fail = || -> ! { panic!("test data {raw:?} is not a valid {expect:?}") };
    match expect {
        Expect::Int => Cell::Int(raw.parse().unwrap_or_else(|_| fail())),
        Expect::Float => Cell::Float(raw.parse().unwrap_or_else(|_| fail())),
        Expect::Bool => Cell::Bool(match raw.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => fail(),
        }),
        Expect::Date => {
            Cell::Date(i32::try_from(parse_date_days(raw).unwrap_or_else(|| fail())).unwrap_or_else(|_| fail()))
        }
        Expect::TimestampUtc => Cell::Micros(parse_utc_micros(raw).unwrap_or_else(|| fail())),
        Expect::Timestamp => Cell::Micros(parse_naive_micros(raw).unwrap_or_else(|| fail())),
        Expect::Text => Cell::Text(raw.to_owned()),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (Howard Hinnant's `civil_from_days`): year, month, day.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` formatted from a day number.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn num(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Days since the epoch of `YYYY-MM-DD`.
pub fn parse_date_days(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let (y, m, d) = (num(it.next()?)?, num(it.next()?)?, num(it.next()?)?);
    if it.next().is_some() || s.len() != 10 {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// UTC microseconds of `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)`.
pub fn parse_utc_micros(s: &str) -> Option<i64> {
    let days = parse_date_days(s.get(..10)?)?;
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let rest = s.get(11..)?;
    let (clock, offset_secs) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        (c, sign * (num(h)? * 3600 + num(m)? * 60))
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':');
    let (h, mi, se) = (num(parts.next()?)?, num(parts.next()?)?, num(parts.next()?)?);
    let micros_frac = if frac.is_empty() {
        0
    } else {
        if frac.len() > 6 {
            return None;
        }
        num(frac)? * 10_i64.pow(6 - frac.len() as u32)
    };
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    Some(secs * 1_000_000 + micros_frac)
}

/// Microseconds of a date-time without an offset (`T` or space separated), or of a date alone
/// (its midnight).
pub fn parse_naive_micros(s: &str) -> Option<i64> {
    if s.len() == 10 {
        return Some(parse_date_days(s)? * 86_400_000_000);
    }
    if !matches!(s.as_bytes().get(10), Some(b'T' | b' ')) || s.ends_with(['Z', 'z']) || s[11..].contains(['+', '-']) {
        return None;
    }
    parse_utc_micros(&format!("{}T{}Z", &s[..10], &s[11..]))
}

/// Parses CSV text with the `csv` crate: the header (when `header`) and every record.
pub fn parse_csv(bytes: &[u8], builder: &csv::ReaderBuilder) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = builder.from_reader(bytes);
    let headers = if reader.has_headers() {
        reader.headers().expect("csv header").iter().map(str::to_owned).collect()
    } else {
        Vec::new()
    };
    let rows = reader.records().map(|r| r.expect("test CSV parses").iter().map(str::to_owned).collect()).collect();
    (headers, rows)
}

/// The expected cells of parsed CSV records, typed per column.
pub fn expected_rows(rows: &[Vec<String>], types: &[Expect], nulls: &[&str]) -> Vec<Vec<Cell>> {
    rows.iter()
        .map(|r| {
            assert_eq!(r.len(), types.len(), "test data row width");
            r.iter().zip(types).map(|(v, t)| expected_cell(*t, v, nulls)).collect()
        })
        .collect()
}

/// A Parquet output file read with the `parquet` crate's Arrow reader.
#[derive(Debug)]
pub struct ParquetOutput {
    /// The Arrow schema the reader reports.
    pub schema: SchemaRef,
    /// Every row, as cells.
    pub rows: Vec<Vec<Cell>>,
    /// The file metadata (row groups, column chunks, codecs).
    pub metadata: Arc<ParquetMetaData>,
}

/// Reads a Parquet file completely.
pub fn read_parquet(path: &Path) -> ParquetOutput {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet footer");
    let schema = builder.schema().clone();
    let metadata = builder.metadata().clone();
    let reader = builder.with_batch_size(8192).build().expect("parquet reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("parquet batch");
        let columns: Vec<Vec<Cell>> = batch.columns().iter().map(|c| arrow_cells(c.as_ref())).collect();
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    ParquetOutput { schema, rows, metadata }
}

/// The cells of an Arrow array.
pub fn arrow_cells(a: &dyn Array) -> Vec<Cell> {
    let cell = |i: usize| -> Cell {
        if a.is_null(i) {
            return Cell::Null;
        }
        match a.data_type() {
            DataType::Int64 => Cell::Int(a.as_primitive::<Int64Type>().value(i)),
            DataType::Float64 => Cell::Float(a.as_primitive::<Float64Type>().value(i)),
            DataType::Boolean => Cell::Bool(a.as_boolean().value(i)),
            DataType::Date32 => Cell::Date(a.as_primitive::<Date32Type>().value(i)),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Cell::Micros(a.as_primitive::<TimestampMicrosecondType>().value(i))
            }
            DataType::Utf8 => Cell::Text(a.as_string::<i32>().value(i).to_owned()),
            DataType::LargeUtf8 => Cell::Text(a.as_string::<i64>().value(i).to_owned()),
            DataType::Utf8View => Cell::Text(a.as_string_view().value(i).to_owned()),
            other => panic!("unexpected Arrow type {other} in an output"),
        }
    };
    (0..a.len()).map(cell).collect()
}

/// An Avro object container file read with `apache-avro`.
#[derive(Debug)]
pub struct AvroOutput {
    /// The writer schema of the file.
    pub schema: AvroSchema,
    /// Field names and their schemas, in order.
    pub fields: Vec<(String, AvroSchema)>,
    /// Every record, as cells.
    pub rows: Vec<Vec<Cell>>,
    /// The file header's metadata (`avro.schema`, `avro.codec`, …).
    pub header: HashMap<String, Vec<u8>>,
}

impl AvroOutput {
    /// The codec named in the header; an absent `avro.codec` means `null`.
    pub fn codec(&self) -> String {
        self.header.get("avro.codec").map_or_else(|| "null".to_owned(), |c| String::from_utf8_lossy(c).into_owned())
    }
}

/// Reads an Avro file completely.
pub fn read_avro(path: &Path) -> AvroOutput {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let header = avro_header(&bytes);
    let bytes =
        if header.get("avro.codec").is_some_and(|c| c == b"zstandard") { zstandard_to_null(&bytes) } else { bytes };
    let reader = apache_avro::Reader::new(&bytes[..]).expect("avro header");
    let schema = reader.writer_schema().clone();
    let fields = match &schema {
        AvroSchema::Record(r) => r.fields.iter().map(|f| (f.name.clone(), f.schema.clone())).collect(),
        other => panic!("top-level avro schema is not a record: {other:?}"),
    };
    let mut rows = Vec::new();
    for value in reader {
        match value.expect("avro record") {
            AvroValue::Record(fields) => rows.push(fields.into_iter().map(|(_, v)| avro_cell(v)).collect()),
            other => panic!("avro datum is not a record: {other:?}"),
        }
    }
    AvroOutput { schema, fields, rows, header }
}

/// The same container with its blocks decompressed and its codec set to `null`. apache-avro is
/// built without its zstandard codec (which would add a second zstd to the build), so the
/// blocks are decompressed here by zstd itself, and apache-avro still decodes every record.
fn zstandard_to_null(bytes: &[u8]) -> Vec<u8> {
    let map = AvroSchema::map(AvroSchema::Bytes);
    let long = |rest: &mut &[u8]| match apache_avro::from_avro_datum(&AvroSchema::Long, rest, None) {
        Ok(AvroValue::Long(n)) => n,
        other => panic!("avro long: {other:?}"),
    };
    let encode_long = |n: i64| apache_avro::to_avro_datum(&AvroSchema::Long, AvroValue::Long(n)).expect("avro long");
    let mut header = avro_header(bytes);
    header.insert("avro.codec".into(), b"null".to_vec());
    let mut rest = &bytes[4..];
    apache_avro::from_avro_datum(&map, &mut rest, None).expect("avro header map");
    let (sync, mut rest) = rest.split_at(16);
    let mut out = b"Obj\x01".to_vec();
    let header = header.into_iter().map(|(k, v)| (k, AvroValue::Bytes(v))).collect();
    out.extend(apache_avro::to_avro_datum(&map, AvroValue::Map(header)).expect("avro header map"));
    out.extend(sync);
    while !rest.is_empty() {
        let (count, size) = (long(&mut rest), long(&mut rest));
        let (block, tail) = rest.split_at(usize::try_from(size).expect("block size"));
        let data = zstd::decode_all(block).expect("a zstandard block decompresses");
        assert_eq!(&tail[..16], sync, "each block ends with the file's sync marker");
        rest = &tail[16..];
        out.extend(encode_long(count));
        out.extend(encode_long(i64::try_from(data.len()).expect("block size")));
        out.extend(data);
        out.extend(sync);
    }
    out
}

/// The metadata map of an Avro container header, decoded independently of the reader.
pub fn avro_header(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    assert_eq!(bytes.get(..4), Some(&b"Obj\x01"[..]), "avro magic");
    let mut rest = &bytes[4..];
    match apache_avro::from_avro_datum(&AvroSchema::map(AvroSchema::Bytes), &mut rest, None).expect("avro header map") {
        AvroValue::Map(m) => m
            .into_iter()
            .map(|(k, v)| match v {
                AvroValue::Bytes(b) => (k, b),
                other => panic!("header value {other:?}"),
            })
            .collect(),
        other => panic!("avro header is not a map: {other:?}"),
    }
}

/// The cell of an Avro value; unions are unwrapped.
pub fn avro_cell(v: AvroValue) -> Cell {
    match v {
        AvroValue::Union(_, inner) => avro_cell(*inner),
        AvroValue::Null => Cell::Null,
        AvroValue::Long(x) => Cell::Int(x),
        AvroValue::Double(x) => Cell::Float(x),
        AvroValue::Boolean(x) => Cell::Bool(x),
        AvroValue::Date(x) => Cell::Date(x),
        AvroValue::TimestampMicros(x) | AvroValue::LocalTimestampMicros(x) => Cell::Micros(x),
        AvroValue::String(x) => Cell::Text(x),
        other => panic!("unexpected avro value {other:?}"),
    }
}

/// The non-null branch of a nullable Avro union; panics when `schema` is not `null | T`.
pub fn avro_nullable(schema: &AvroSchema) -> &AvroSchema {
    let AvroSchema::Union(u) = schema else { panic!("{schema:?} is not a union") };
    let variants = u.variants();
    assert_eq!(variants.len(), 2, "{schema:?} has two branches");
    assert!(variants.contains(&AvroSchema::Null), "{schema:?} has a null branch");
    variants.iter().find(|s| **s != AvroSchema::Null).expect("a non-null branch")
}

/// Asserts the columns of a Parquet output: names and Arrow types, every field nullable.
pub fn assert_parquet_schema(label: &str, out: &ParquetOutput, names: &[&str], types: &[Expect]) {
    let got: Vec<(&str, &DataType, bool)> =
        out.schema.fields().iter().map(|f| (f.name().as_str(), f.data_type(), f.is_nullable())).collect();
    let want: Vec<DataType> = types.iter().map(|t| t.arrow_type()).collect();
    let want: Vec<(&str, &DataType, bool)> = names.iter().zip(&want).map(|(n, t)| (*n, t, true)).collect();
    assert_eq!(got, want, "{label}: parquet schema");
}

/// Asserts the fields of an Avro output: names, and `null | T` unions with the right `T`.
pub fn assert_avro_schema(label: &str, out: &AvroOutput, names: &[&str], types: &[Expect]) {
    let got: Vec<&str> = out.fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(got, names, "{label}: avro field names");
    for ((name, schema), t) in out.fields.iter().zip(types) {
        let inner = avro_nullable(schema);
        assert!(t.matches_avro(inner), "{label}: avro field {name} is {inner:?}, expected {t:?}");
    }
}

/// Asserts that two tables are equal cell by cell, naming the first differing cell.
pub fn assert_cells_eq(label: &str, expected: &[Vec<Cell>], actual: &[Vec<Cell>]) {
    assert_eq!(actual.len(), expected.len(), "{label}: row count");
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        assert_eq!(a.len(), e.len(), "{label}: width of row {i}");
        for (j, (ec, ac)) in e.iter().zip(a).enumerate() {
            assert_eq!(ac, ec, "{label}: row {i}, column {j}");
        }
    }
}

/// A small deterministic generator (xorshift64*), so that data is the same on every run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Appends `len` random letters and digits, so that the text barely compresses.
    pub fn push_alnum(&mut self, out: &mut String, len: usize) {
        const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut bits = 0u64;
        let mut left = 0;
        for _ in 0..len {
            if left == 0 {
                bits = self.next_u64();
                left = 10;
            }
            out.push(ALPHABET[(bits & 63) as usize % 62] as char);
            bits >>= 6;
            left -= 1;
        }
    }
}

/// Gzip-compresses bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// A large CSV of `id,payload,score` rows whose payload is random text, about `target` bytes,
/// with a header. Returns the text and the number of data rows.
pub fn large_csv(seed: u64, target: usize) -> (String, usize) {
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(target + 256);
    s.push_str("id,payload,score\n");
    let mut rows = 0;
    while s.len() < target {
        s.push_str(&rows.to_string());
        s.push(',');
        rng.push_alnum(&mut s, 64);
        s.push(',');
        s.push_str(&format!("{}.{:02}\n", rng.below(100_000), rng.below(100)));
        rows += 1;
    }
    (s, rows)
}

/// The sorted multiset of output keys expected for relative paths and formats.
pub fn output_keys(out_prefix: &str, rels: &[&str], formats: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> =
        rels.iter().flat_map(|rel| formats.iter().map(move |f| format!("{out_prefix}{f}/{rel}.{f}"))).collect();
    keys.sort();
    keys
}

/// Each file's status and error (kind, line) by key, for failure messages.
pub fn statuses(result: &BatchResult) -> BTreeMap<String, String> {
    result
        .files
        .iter()
        .map(|f| (f.key.clone(), format!("{:?} {:?}", f.status, f.error.as_ref().map(|e| (&e.kind, e.line)))))
        .collect()
}

/// Decides, from the key, whether a GetObject fails and with which error.
pub type GetFault = Box<dyn Fn(&str) -> Option<s3s::S3Error> + Send + Sync>;

/// Storage that fails GetObject requests when `fault` says so (given the key), and otherwise
/// serves every operation the pipeline uses from the local directories.
pub struct FaultyGets {
    /// The storage behind.
    pub inner: csvlake_cli::local::LocalFs,
    /// The error to answer a GetObject of this key with, if any.
    pub fault: GetFault,
}

#[async_trait::async_trait]
impl s3s::S3 for FaultyGets {
    async fn get_object(&self, req: S3Request<dto::GetObjectInput>) -> S3Result<S3Response<dto::GetObjectOutput>> {
        match (self.fault)(&req.input.key) {
            Some(e) => Err(e),
            None => self.inner.get_object(req).await,
        }
    }

    async fn put_object(&self, req: S3Request<dto::PutObjectInput>) -> S3Result<S3Response<dto::PutObjectOutput>> {
        self.inner.put_object(req).await
    }

    async fn head_object(&self, req: S3Request<dto::HeadObjectInput>) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        self.inner.list_objects_v2(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part(&self, req: S3Request<dto::UploadPartInput>) -> S3Result<S3Response<dto::UploadPartOutput>> {
        self.inner.upload_part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        self.inner.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }
}

/// The `csvlake` binary of this build, built on first use so that it is never stale.
///
/// `CARGO_BIN_EXE_csvlake` is only set for tests of the package that owns the binary, so the
/// binary is looked up beside the test executable (`<target>/<profile>/deps/..`).
pub fn csvlake_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("CARGO_BIN_EXE_csvlake") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>/deps").to_path_buf();
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        // Variables cargo sets for this test process must not reach the nested cargo: build
        // scripts that track them (ring tracks CARGO_MANIFEST_DIR) would rebuild every time.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || matches!(
                    name.as_ref(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                )
            {
                build.env_remove(name.as_ref());
            }
        }
        let status = build
            .args(["build", "--quiet", "-p", "csvlake-cli", "--bin", "csvlake", "--profile", &profile])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p csvlake-cli failed: {status}");
        let bin = profile_dir.join(format!("csvlake{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}
