//! Tables: where an input belongs, what its outputs record of it, and the state a table keeps
//! under `<out>/_tables/<table>/`.
//!
//! - A *table* is the set of inputs under one folder `table_depth` levels below the input root
//!   (`input.prefix`). Inputs that lie above that depth belong to the root's own table, as do all
//!   inputs at depth 0.
//! - Every output object carries its *provenance* in S3 user metadata ([`Provenance`]): the
//!   source key, the source's ETag and size, and the [`fingerprint`] of the options it was
//!   converted with.
//! - The reducer keeps the table's *index*: one immutable generation per run
//!   (`index/<generation>.jsonl.zst`, one [`IndexEntry`] per source key, sorted by key) and a
//!   small pointer to the latest one ([`Current`], `current.json`).
//! - The planner takes a *lease* on each table it writes ([`Lease`], `lease.json`), created only
//!   if absent, so that one run at a time writes a table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys;
use crate::payload::{InputLocation, Job, OutputRef};
use csvlake_engine::Format;

/// Default `table_depth`: every folder directly under the root is a table.
pub const DEFAULT_TABLE_DEPTH: u32 = 1;
/// Deepest `table_depth` accepted.
pub const MAX_TABLE_DEPTH: u32 = 16;
/// The version of the output layout and encoding. It is part of every [`fingerprint`]: outputs
/// written by another version are converted again.
pub const OUTPUT_FORMAT_VERSION: u32 = 1;
/// The folder, under `<out>/_tables/`, of the root's own table.
pub const ROOT_TABLE_FOLDER: &str = "_root";

/// User metadata names of an output's provenance (`x-amz-meta-…`).
pub mod metadata {
    /// The source key, percent-encoded (metadata travels in HTTP headers).
    pub const SOURCE_KEY: &str = "csvlake-source-key";
    /// The source's ETag, as S3 gives it without quotes.
    pub const SOURCE_ETAG: &str = "csvlake-source-etag";
    /// The source's size in bytes.
    pub const SOURCE_SIZE: &str = "csvlake-source-size";
    /// The fingerprint of the conversion options and the output format version.
    pub const FINGERPRINT: &str = "csvlake-fingerprint";
    /// The id of the schema the output was written with (`schemas/<id>.json`).
    pub const SCHEMA: &str = "csvlake-schema";
    /// The data rows of an output written in one PUT.
    pub const ROWS: &str = "csvlake-rows";
}

/// Names of the objects under `<out>/_tables/<table>/`.
pub mod names {
    /// The pointer to the latest index generation.
    pub const CURRENT: &str = "current.json";
    /// The lease of the run that writes the table.
    pub const LEASE: &str = "lease.json";
    /// The folder of index generations.
    pub const INDEX: &str = "index";
    /// The folder of the files' schemas, one object per distinct schema.
    pub const SCHEMAS: &str = "schemas";
}

/// An ETag as compared: without the quotes S3 puts around it.
pub fn bare_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// The table of an input key: the path below the root of the folder `depth` levels down
/// (`sales`, `sales/eu`), or `""` for the root's own table. `key` must lie under `root`.
pub fn table_of<'a>(root: &str, key: &'a str, depth: u32) -> &'a str {
    let rel = key.strip_prefix(root).unwrap_or(key);
    if depth == 0 {
        return "";
    }
    let mut end = 0;
    for _ in 0..depth {
        match rel[end..].find('/') {
            Some(i) => end += i + 1,
            // Above the table depth: the root's table.
            None => return "",
        }
    }
    &rel[..end - 1]
}

/// The table's name: its folder's, or for the root's table the root folder's (the bucket's
/// when the root is the whole bucket).
pub fn table_name<'a>(input: &'a InputLocation, table: &'a str) -> &'a str {
    let folder = if table.is_empty() { input.prefix.trim_end_matches('/') } else { table };
    match folder.rsplit('/').next().filter(|s| !s.is_empty()) {
        Some(name) => name,
        None => &input.bucket,
    }
}

/// `<out>/_tables/<table>/` (the root's table under [`ROOT_TABLE_FOLDER`]).
pub fn state_prefix(output_prefix: &str, table: &str) -> String {
    let folder = if table.is_empty() { ROOT_TABLE_FOLDER } else { table };
    keys::join(output_prefix, &format!("_tables/{folder}/"))
}

/// Where a table's outputs lie: one prefix per format, with the delimiter that keeps a listing
/// to the table's own objects (the root's table shares `<out>/<format>/` with every folder
/// table, so only the objects directly under it are its own).
pub fn output_prefixes(output_prefix: &str, table: &str) -> Vec<(String, Option<&'static str>)> {
    Format::ALL
        .iter()
        .map(|format| {
            if table.is_empty() {
                (keys::join(output_prefix, &format!("{}/", format.as_str())), Some("/"))
            } else {
                (keys::join(output_prefix, &format!("{}/{table}/", format.as_str())), None)
            }
        })
        .collect()
}

/// The key of an object in the table's state.
pub fn state_key(output_prefix: &str, table: &str, name: &str) -> String {
    format!("{}{name}", state_prefix(output_prefix, table))
}

/// The key of an index generation.
pub fn index_key(output_prefix: &str, table: &str, generation: u64, run_id: &str) -> String {
    state_key(output_prefix, table, &format!("{}/{generation:020}-{run_id}.jsonl.zst", names::INDEX))
}

/// The key of a schema object.
pub fn schema_key(output_prefix: &str, table: &str, schema_id: &str) -> String {
    state_key(output_prefix, table, &format!("{}/{schema_id}.json", names::SCHEMAS))
}

/// The fingerprint of what decides an output's bytes besides its input: the formats, the CSV,
/// Parquet and Avro options, and [`OUTPUT_FORMAT_VERSION`]. Limits that only decide whether a
/// file fails (`csv.max_bytes`) are left out. 32 hex digits.
pub fn fingerprint(job: &Job) -> String {
    let mut formats = job.formats.clone();
    formats.sort();
    formats.dedup();
    let mut csv = serde_json::to_value(&job.csv).unwrap_or_default();
    if let Some(map) = csv.as_object_mut() {
        map.remove("max_bytes");
    }
    let identity = serde_json::json!({
        "version": OUTPUT_FORMAT_VERSION,
        "formats": formats,
        "csv": csv,
        "parquet": job.parquet,
        "avro": job.avro,
    });
    let bytes = serde_json::to_vec(&identity).unwrap_or_default();
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
}

/// What an output object records of its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The source key.
    pub key: String,
    /// The source's ETag (bare).
    pub etag: String,
    /// The source's size.
    pub size: u64,
    /// The conversion's fingerprint.
    pub fingerprint: String,
}

const KEY_ENCODE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

impl Provenance {
    /// The user metadata of an output.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (metadata::SOURCE_KEY.to_owned(), percent_encoding::utf8_percent_encode(&self.key, KEY_ENCODE).to_string()),
            (metadata::SOURCE_ETAG.to_owned(), bare_etag(&self.etag).to_owned()),
            (metadata::SOURCE_SIZE.to_owned(), self.size.to_string()),
            (metadata::FINGERPRINT.to_owned(), self.fingerprint.clone()),
        ])
    }

    /// Reads the provenance of an output from its user metadata; None when any part is missing.
    pub fn from_metadata(meta: &std::collections::HashMap<String, String>) -> Option<Self> {
        let get = |name: &str| meta.get(name).map(String::as_str);
        Some(Self {
            key: percent_encoding::percent_decode_str(get(metadata::SOURCE_KEY)?).decode_utf8().ok()?.into_owned(),
            etag: get(metadata::SOURCE_ETAG)?.to_owned(),
            size: get(metadata::SOURCE_SIZE)?.parse().ok()?,
            fingerprint: get(metadata::FINGERPRINT)?.to_owned(),
        })
    }
}

/// One line of an index generation: a source key and what its outputs were made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The source key.
    pub key: String,
    /// Its ETag (bare) when it was converted.
    pub etag: String,
    /// Its size.
    pub size: u64,
    /// The fingerprint of the conversion.
    pub fingerprint: String,
    /// The outputs written.
    pub outputs: Vec<OutputRef>,
    /// The id of the file's schema (`schemas/<id>.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

impl IndexEntry {
    /// Whether a listed object is what this entry was converted from, with these options.
    pub fn is_current(&self, etag: &str, size: u64, fingerprint: &str) -> bool {
        bare_etag(&self.etag) == bare_etag(etag) && self.size == size && self.fingerprint == fingerprint
    }
}

/// `current.json`: the latest index generation of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// The generation, from 1.
    pub generation: u64,
    /// The key of its index object.
    pub index: String,
    /// Entries in it.
    pub entries: u64,
    /// The run that wrote it.
    pub run_id: String,
    /// The generation before, kept until the next one is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The id of the table's schema (`schemas/<id>.json`), which every file of the table is
    /// written with under the schema policy `conform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The table schema's version: 1 for the first, one more at each widening.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub schema_version: u64,
    /// The table schema's versions, oldest first, each with the run that made it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_history: Vec<SchemaVersion>,
}

/// One version of a table's schema, in [`Current::schema_history`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// The version.
    pub version: u64,
    /// The schema's id (`schemas/<id>.json`).
    pub schema: String,
    /// The run that made it the table's.
    pub run_id: String,
}

/// `lease.json`: the run that writes a table, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The run holding it.
    pub run_id: String,
    /// When it expires, RFC 3339 (UTC).
    pub expires: String,
}

/// What the planner records of each table a run writes (`_runs/<run_id>/tables.jsonl`), for the
/// reducer, which writes the table's next index generation and releases the lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRun {
    /// The table (its folder below the root; empty for the root's table).
    pub table: String,
    /// Its name.
    pub name: String,
    /// The index generation the plan was made against, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Current>,
    /// The run whose expired lease this run took over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_over_from: Option<String>,
    /// Multipart uploads of dead runs aborted under the table's outputs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub aborted_uploads: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An input whose outputs exist (in the index) but that is gone from the listing
/// (`_runs/<run_id>/orphaned.jsonl`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// Its table.
    pub table: String,
    /// Its index entry.
    pub entry: IndexEntry,
}

/// A bucket and a folder in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// Bucket.
    pub bucket: String,
    /// Prefix, a folder (empty or ending in `/`).
    pub prefix: String,
}

impl Root {
    /// Parses `s3://bucket/prefix`; the prefix is taken as a folder.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| format!("{uri:?} is not s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{uri:?} names no bucket"));
        }
        Ok(Self { bucket: bucket.to_owned(), prefix: keys::folder(prefix) })
    }

    fn holds(&self, bucket: &str, prefix: &str) -> bool {
        self.bucket == bucket && prefix.starts_with(&self.prefix)
    }
}

impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The roots a deployment fixes: runs read under the input root, with output keys relative to
/// it, and write under the output root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roots {
    /// The input root.
    pub input: Option<Root>,
    /// The output root.
    pub output: Option<Root>,
}

impl Roots {
    /// The roots from [`crate::deployment::INPUT_ROOT_ENV`] and
    /// [`crate::deployment::OUTPUT_ROOT_ENV`]; an unset variable fixes nothing.
    pub fn from_env() -> Result<Self, String> {
        let read = |name: &str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => Root::parse(&v).map(Some).map_err(|e| format!("{name}: {e}")),
            _ => Ok(None),
        };
        Ok(Self { input: read(crate::deployment::INPUT_ROOT_ENV)?, output: read(crate::deployment::OUTPUT_ROOT_ENV)? })
    }

    /// Checks a job against the roots, before anything is listed. An input inside the input
    /// root is re-rooted there: its prefix below the root becomes what it scans, so that its
    /// output keys are those of a scan of the whole root.
    pub fn apply(&self, job: &mut Job) -> Result<(), String> {
        let input = &mut job.input;
        if let Some(root) = &self.input {
            if !root.holds(&input.bucket, &input.prefix) {
                return Err(format!(
                    "the input s3://{}/{} lies outside the input root {root}: runs of this deployment read under {root}",
                    input.bucket, input.prefix
                ));
            }
            let below = input.prefix[root.prefix.len()..].to_owned();
            if !below.is_empty() {
                input.scan = if input.scan.is_empty() {
                    vec![below]
                } else {
                    input.scan.iter().map(|s| format!("{below}{}", keys::folder(s))).collect()
                };
                input.prefix = root.prefix.clone();
            }
        }
        let output = &job.output;
        if let Some(root) = &self.output
            && !root.holds(&output.bucket, &output.prefix)
        {
            return Err(format!(
                "the output s3://{}/{} lies outside the output root {root}: runs of this deployment write under {root}",
                output.bucket, output.prefix
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn schemas_join_by_column_name_in_order_of_first_appearance() {
        use csvlake_engine::schema::ColumnType::*;
        let s = |cols: &[(&str, csvlake_engine::schema::ColumnType)]| {
            TableSchema::new(cols.iter().map(|(n, t)| ((*n).to_owned(), *t)))
        };
        let a = s(&[("amount", Int64), ("code", Int64)]);
        let b = s(&[("amount", Float64), ("code", Null), ("note", Utf8)]);
        let c = s(&[("when", Date32), ("amount", Int64), ("code", Utf8)]);
        let j = a.join(&b).join(&c);
        assert_eq!(j, s(&[("amount", Float64), ("code", Utf8), ("note", Utf8), ("when", Date32)]));
        for file in [&a, &b, &c, &j] {
            assert!(j.covers(file));
        }
        assert!(!a.covers(&b) && !b.covers(&a));
        assert!(s(&[("amount", Float64), ("code", Int64)]).covers(&s(&[("code", Null)])), "a missing column is null");
        assert_eq!(
            a.widening(&j),
            ["amount: int64 → float64", "code: int64 → utf8", "note: new column, utf8", "when: new column, date32"]
        );
    }

    #[test]
    fn a_schema_is_stored_as_its_columns_and_named_by_their_hash() {
        use csvlake_engine::schema::ColumnType;
        let s = TableSchema::new([
            ("id".to_owned(), ColumnType::Int64),
            ("amount".to_owned(), ColumnType::Decimal { precision: 12, scale: 2 }),
        ]);
        assert_eq!(
            String::from_utf8(s.to_json()).unwrap(),
            r#"{"columns":[{"name":"id","type":"int64"},{"name":"amount","type":"decimal(12,2)"}]}"#
        );
        assert_eq!(s.id().len(), 32);
        assert_eq!(serde_json::from_slice::<TableSchema>(&s.to_json()).unwrap(), s);
        assert_ne!(TableSchema::new([("id".to_owned(), ColumnType::Utf8)]).id(), s.id());
    }

    use super::*;
    use crate::payload::OutputLocation;

    fn input(prefix: &str) -> InputLocation {
        InputLocation {
            bucket: "raw".into(),
            prefix: prefix.into(),
            scan: Vec::new(),
            suffixes: crate::payload::default_suffixes(),
        }
    }

    #[test]
    fn a_tables_outputs_lie_under_one_prefix_per_format() {
        assert_eq!(
            output_prefixes("lake/", "sales"),
            [("lake/parquet/sales/".to_owned(), None), ("lake/avro/sales/".to_owned(), None)]
        );
        assert_eq!(output_prefixes("", ""), [("parquet/".to_owned(), Some("/")), ("avro/".to_owned(), Some("/"))]);
    }

    #[test]
    fn a_table_is_a_folder_at_the_depth_and_shallower_inputs_belong_to_the_root() {
        assert_eq!(table_of("landing/", "landing/sales/2026/a.csv", 1), "sales");
        assert_eq!(table_of("landing/", "landing/sales/2026/a.csv", 2), "sales/2026");
        assert_eq!(table_of("landing/", "landing/sales/2026/a.csv", 3), "");
        assert_eq!(table_of("landing/", "landing/a.csv", 1), "");
        assert_eq!(table_of("landing/", "landing/sales/a.csv", 0), "");
        assert_eq!(table_of("", "sales/a.csv", 1), "sales");
        let i = input("landing/");
        assert_eq!(table_name(&i, "sales/2026"), "2026");
        assert_eq!(table_name(&i, ""), "landing");
        assert_eq!(table_name(&input(""), ""), "raw");
        assert_eq!(state_prefix("converted/", "sales"), "converted/_tables/sales/");
        assert_eq!(state_prefix("", ""), "_tables/_root/");
        assert_eq!(index_key("out/", "sales", 7, "r1"), "out/_tables/sales/index/00000000000000000007-r1.jsonl.zst");
    }

    #[test]
    fn the_fingerprint_follows_the_options_that_shape_the_output() {
        let job = Job::new(input("in/"), OutputLocation { bucket: "lake".into(), prefix: "out/".into() });
        let base = fingerprint(&job);
        assert_eq!(base.len(), 32);
        assert_eq!(fingerprint(&job.clone()), base, "deterministic");
        let mut other = job.clone();
        other.parquet.compression = csvlake_engine::options::ParquetCompression::Zstd;
        assert_ne!(fingerprint(&other), base);
        let mut other = job.clone();
        other.csv.null_values = vec!["NA".into()];
        assert_ne!(fingerprint(&other), base);
        let mut other = job.clone();
        other.formats.reverse();
        assert_eq!(fingerprint(&other), base, "the order of formats does not matter");
        let mut other = job.clone();
        other.csv.max_bytes = 1;
        assert_eq!(fingerprint(&other), base, "a limit does not change what is written");
        let mut other = job;
        other.input.prefix = "elsewhere/".into();
        assert_eq!(fingerprint(&other), base, "locations are not options");
    }

    #[test]
    fn roots_re_root_a_narrower_input_and_refuse_one_outside() {
        let roots = Roots {
            input: Some(Root::parse("s3://raw/landing").unwrap()),
            output: Some(Root::parse("s3://lake/converted/").unwrap()),
        };
        let out = OutputLocation { bucket: "lake".into(), prefix: "converted/".into() };
        let mut job = Job::new(input("landing/2026/"), out.clone());
        roots.apply(&mut job).unwrap();
        assert_eq!((job.input.prefix.as_str(), job.input.scan.clone()), ("landing/", vec!["2026/".to_owned()]));
        let mut job = Job::new(InputLocation { scan: vec!["01".into()], ..input("landing/2026/") }, out.clone());
        roots.apply(&mut job).unwrap();
        assert_eq!(job.input.scan, ["2026/01/"]);
        let mut job = Job::new(input("landingzone/"), out.clone());
        let e = roots.apply(&mut job).unwrap_err();
        assert!(e.contains("s3://raw/landingzone/") && e.contains("s3://raw/landing/"), "{e}");
        let mut job = Job::new(input("landing/"), OutputLocation { bucket: "other".into(), prefix: String::new() });
        let e = roots.apply(&mut job).unwrap_err();
        assert!(e.contains("s3://other/") && e.contains("s3://lake/converted/"), "{e}");
        let mut job = Job::new(input(""), out);
        assert!(roots.apply(&mut job).is_err(), "the whole bucket is wider than the root");
        assert!(Root::parse("raw/landing").is_err());
    }

    #[test]
    fn provenance_round_trips_through_metadata() {
        let p = Provenance {
            key: "in/ventes é/a b.csv".into(),
            etag: "\"abc-2\"".into(),
            size: 42,
            fingerprint: "f".into(),
        };
        let meta = p.to_metadata();
        assert!(meta.values().all(|v| v.is_ascii()), "{meta:?}");
        let back = Provenance::from_metadata(&meta.into_iter().collect()).unwrap();
        assert_eq!(back, Provenance { etag: "abc-2".into(), ..p });
        assert!(Provenance::from_metadata(&Default::default()).is_none());
    }
}

/// A schema of a file or of a table: its columns in order, each with its type. It is stored as
/// `_tables/<table>/schemas/<id>.json`, `{"columns": [{"name": "id", "type": "int64"}, …]}`,
/// where `<id>` is [`TableSchema::id`]. Every column is nullable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    /// The columns, in order.
    pub columns: Vec<SchemaColumn>,
}

/// One column of a [`TableSchema`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaColumn {
    /// The column's name, as the header gives it.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub column_type: csvlake_engine::schema::ColumnType,
}

impl TableSchema {
    /// A schema of these columns.
    pub fn new(columns: impl IntoIterator<Item = (String, csvlake_engine::schema::ColumnType)>) -> Self {
        Self { columns: columns.into_iter().map(|(name, column_type)| SchemaColumn { name, column_type }).collect() }
    }

    /// The stored JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The id of the stored schema: 32 hex digits of the XXH3-128 of [`TableSchema::to_json`].
    pub fn id(&self) -> String {
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&self.to_json()))
    }

    /// The type of the column `name`, if the schema has it.
    pub fn column(&self, name: &str) -> Option<csvlake_engine::schema::ColumnType> {
        self.columns.iter().find(|c| c.name == name).map(|c| c.column_type)
    }

    /// The least schema that holds both: the union of the columns, `self`'s first in their
    /// order and then `other`'s new ones in theirs, each with the join of its types.
    pub fn join(&self, other: &TableSchema) -> TableSchema {
        let mut joined = self.clone();
        for c in &other.columns {
            match joined.columns.iter_mut().find(|j| j.name == c.name) {
                Some(j) => j.column_type = j.column_type.join(c.column_type),
                None => joined.columns.push(c.clone()),
            }
        }
        joined
    }

    /// Whether a file of schema `file` can be written with this one: every column of `file` is
    /// here, with a type that holds it.
    pub fn covers(&self, file: &TableSchema) -> bool {
        file.columns.iter().all(|c| self.column(&c.name).is_some_and(|t| t.join(c.column_type) == t))
    }

    /// What `wider` adds to this schema, one `name: type → type` (or `name: new type`) per
    /// column, for messages.
    pub fn widening(&self, wider: &TableSchema) -> Vec<String> {
        wider
            .columns
            .iter()
            .filter_map(|c| match self.column(&c.name) {
                None => Some(format!("{}: new column, {}", c.name, c.column_type)),
                Some(t) if t != c.column_type => Some(format!("{}: {t} → {}", c.name, c.column_type)),
                Some(_) => None,
            })
            .collect()
    }

    /// The column names and types, apart.
    pub fn parts(&self) -> (Vec<String>, Vec<csvlake_engine::schema::ColumnType>) {
        self.columns.iter().map(|c| (c.name.clone(), c.column_type)).unzip()
    }
}
