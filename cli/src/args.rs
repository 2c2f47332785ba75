//! The options shared by `run`, `reprocess` and `start`: the fields of the execution input.
//!
//! Every flag is optional and patches one field, so that `reprocess` can change a single
//! option (say `--schema`) and keep the rest of the earlier run's options.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use csvlake_contract::payload::{InputLocation, OutputLocation, default_suffixes};
use csvlake_contract::run::{Mode, RunInput};
use csvlake_engine::options::{AvroCodec, Detect, Format, ParquetCompression, parse_schema_json};

/// Conversion and run options: each one given sets that field of the execution input.
#[derive(Debug, Default, Args)]
pub struct ConvertArgs {
    /// Output formats, comma-separated [default: parquet,avro].
    #[arg(long, value_delimiter = ',')]
    pub formats: Option<Vec<Format>>,
    /// A sub-folder of the input to scan; repeat for several [default: all of it]. Output keys
    /// stay relative to the input, as in a scan of all of it.
    #[arg(long = "scan")]
    pub scan: Option<Vec<String>>,
    /// Input key suffixes, comma-separated [default: .csv,.csv.gz,.csv.zst,.tsv,.tsv.gz,.tsv.zst].
    #[arg(long, value_delimiter = ',')]
    pub suffixes: Option<Vec<String>>,
    /// Field delimiter: one character, `tab`, or `auto` to detect it per file [default: auto].
    #[arg(long, value_parser = parse_delimiter)]
    pub delimiter: Option<Detect<char>>,
    /// Quote character, `none` to turn quoting off, or `auto` [default: auto].
    #[arg(long, value_parser = parse_optional_char)]
    pub quote: Option<Detect<Option<char>>>,
    /// Escape character inside quoted fields, `none` (quotes are doubled), or `auto` [default: auto].
    #[arg(long, value_parser = parse_optional_char)]
    pub escape: Option<Detect<Option<char>>>,
    /// Whether the first row names the columns: true, false or auto [default: auto].
    #[arg(long, value_parser = parse_header)]
    pub header: Option<Detect<bool>>,
    /// The first row is data, not a header; columns are named column_1, column_2, ….
    #[arg(long, conflicts_with = "header")]
    pub no_header: bool,
    /// Lines to skip before the header [default: auto, which skips a detected preamble].
    #[arg(long)]
    pub skip_lines: Option<u64>,
    /// Text encoding label (utf-8, windows-1252, latin1, utf-16le, …) [default: auto].
    #[arg(long)]
    pub encoding: Option<String>,
    /// Skip the lines that begin with this prefix [default: none].
    #[arg(long)]
    pub comment: Option<String>,
    /// Decompressed bytes of one file at most [default: 68719476736].
    #[arg(long)]
    pub max_bytes: Option<u64>,
    /// A field value read as null; repeat for several [default: the empty field].
    #[arg(long = "null-value")]
    pub null_values: Option<Vec<String>>,
    /// Explicit schema: a JSON file of column → type (boolean, int64, float64, date32,
    /// timestamp, timestamp_utc, utf8). Unlisted columns are inferred.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Parquet compression: snappy, zstd or none [default: snappy].
    #[arg(long)]
    pub parquet_compression: Option<ParquetCompression>,
    /// Rows per Parquet row group [default: 131072].
    #[arg(long)]
    pub row_group_rows: Option<usize>,
    /// Encoded bytes per Parquet row group at most [default: 67108864].
    #[arg(long)]
    pub row_group_bytes: Option<usize>,
    /// Avro codec: snappy, deflate, zstd or null [default: snappy].
    #[arg(long)]
    pub avro_codec: Option<AvroCodec>,
    /// Most files in one batch (one converter invocation) [default: 256].
    #[arg(long)]
    pub batch_files: Option<usize>,
    /// Most input bytes in one batch [default: 536870912].
    #[arg(long)]
    pub batch_bytes: Option<u64>,
    /// Batches converted at once (the Map's MaxConcurrency) [default: 500].
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Failed files tolerated, in percent, before the run fails [default: 5].
    #[arg(long)]
    pub tolerated_failure_percentage: Option<f64>,
    /// Skip inputs whose outputs are up to date (the default of `run`).
    #[arg(long, conflicts_with = "force")]
    pub incremental: bool,
    /// Convert every input, even when its outputs are up to date.
    #[arg(long)]
    pub force: bool,
    /// How deep below the input a table's folder lies: 1 makes each folder directly under the
    /// input a table, 0 makes the whole input one table [default: 1].
    #[arg(long)]
    pub table_depth: Option<u32>,
    /// Remove the outputs of inputs deleted since they were converted (reported as orphaned).
    #[arg(long)]
    pub delete_orphans: bool,
    /// How a table's files agree on its schema: conform (one schema per table; earlier files
    /// are converted again when it widens), fail (a file that would widen it fails), per_file
    /// [default: conform].
    #[arg(long, value_parser = ["conform", "fail", "per_file"])]
    pub schema_policy: Option<String>,
    /// Under conform, the most earlier files of a table a widening may convert again
    /// [default: 10000].
    #[arg(long)]
    pub conform_limit: Option<u64>,
    /// Register each table in this AWS Glue Data Catalog database (AWS_ENDPOINT_URL_GLUE points
    /// at another Glue endpoint).
    #[arg(long)]
    pub catalog_database: Option<String>,
}

impl ConvertArgs {
    /// Sets the fields given on the command line, over `base`.
    pub fn patch(&self, mut base: RunInput) -> Result<RunInput> {
        if let Some(f) = &self.formats {
            base.formats = Some(f.clone());
        }
        if let Some(s) = &self.scan {
            match base.input.as_mut() {
                Some(input) => input.scan = s.clone(),
                None => bail!("--scan needs an input location"),
            }
        }
        if let Some(s) = &self.suffixes {
            match base.input.as_mut() {
                Some(input) => input.suffixes = s.clone(),
                None => bail!("--suffixes needs an input location"),
            }
        }
        let csv_given = self.delimiter.is_some()
            || self.quote.is_some()
            || self.escape.is_some()
            || self.header.is_some()
            || self.no_header
            || self.skip_lines.is_some()
            || self.encoding.is_some()
            || self.comment.is_some()
            || self.max_bytes.is_some()
            || self.null_values.is_some()
            || self.schema.is_some();
        if csv_given {
            let mut csv = base.csv.take().unwrap_or_default();
            if let Some(d) = &self.delimiter {
                csv.delimiter = d.clone();
            }
            if let Some(q) = &self.quote {
                csv.quote = q.clone();
            }
            if let Some(e) = &self.escape {
                csv.escape = e.clone();
            }
            if let Some(h) = &self.header {
                csv.header = h.clone();
            }
            if self.no_header {
                csv.header = Detect::Given(false);
            }
            if let Some(n) = self.skip_lines {
                csv.skip_lines = Detect::Given(n);
            }
            if let Some(e) = &self.encoding {
                csv.encoding = if e == "auto" { Detect::Auto } else { Detect::Given(e.clone()) };
            }
            if let Some(c) = &self.comment {
                csv.comment = Some(c.clone());
            }
            if let Some(n) = self.max_bytes {
                csv.max_bytes = n;
            }
            if let Some(n) = &self.null_values {
                csv.null_values = n.clone();
            }
            if let Some(path) = &self.schema {
                csv.schema = Some(read_schema(path)?);
            }
            base.csv = Some(csv);
        }
        if self.parquet_compression.is_some() || self.row_group_rows.is_some() || self.row_group_bytes.is_some() {
            let mut p = base.parquet.take().unwrap_or_default();
            if let Some(c) = self.parquet_compression {
                p.compression = c;
            }
            if let Some(r) = self.row_group_rows {
                p.row_group_rows = r;
            }
            if let Some(b) = self.row_group_bytes {
                p.row_group_bytes = b;
            }
            base.parquet = Some(p);
        }
        if let Some(codec) = self.avro_codec {
            base.avro = Some(csvlake_engine::options::AvroOptions { codec });
        }
        if self.batch_files.is_some() || self.batch_bytes.is_some() {
            let mut b = base.batch.unwrap_or_default();
            b.max_files = self.batch_files.unwrap_or(b.max_files);
            b.max_bytes = self.batch_bytes.unwrap_or(b.max_bytes);
            base.batch = Some(b);
        }
        if self.max_concurrency.is_some() {
            base.max_concurrency = self.max_concurrency;
        }
        if self.tolerated_failure_percentage.is_some() {
            base.tolerated_failure_percentage = self.tolerated_failure_percentage;
        }
        if self.incremental || self.force {
            base.incremental = Some(self.incremental);
        }
        if self.table_depth.is_some() {
            base.table_depth = self.table_depth;
        }
        if self.delete_orphans {
            base.delete_orphans = Some(true);
        }
        if let Some(p) = &self.schema_policy {
            base.schema_policy = Some(serde_json::from_value(serde_json::Value::String(p.clone()))?);
        }
        if self.conform_limit.is_some() {
            base.conform_limit = self.conform_limit;
        }
        if let Some(database) = &self.catalog_database {
            base.catalog = Some(csvlake_contract::run::CatalogOptions { database: database.clone() });
        }
        Ok(base)
    }
}

fn read_schema(path: &Path) -> Result<std::collections::BTreeMap<String, csvlake_engine::schema::ColumnType>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_schema_json(&text).with_context(|| format!("in {}", path.display()))
}

/// A parsed `--input`/`--output`/`--report`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local path.
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key or prefix.
        key: String,
    },
}

impl Location {
    /// Parses `s3://bucket/key` or a local path.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("{s}: no bucket name");
            }
            return Ok(Self::S3 { bucket: bucket.into(), key: key.into() });
        }
        Ok(Self::Local(PathBuf::from(s)))
    }
}

/// An execution input that scans `input` into `output`.
pub fn scan(input: InputLocation, output: OutputLocation) -> RunInput {
    RunInput { input: Some(input), output: Some(output), mode: Mode::Scan, ..RunInput::default() }
}

/// An input location with the default suffixes.
pub fn input_at(bucket: &str, prefix: &str) -> InputLocation {
    InputLocation { bucket: bucket.into(), prefix: prefix.into(), scan: Vec::new(), suffixes: default_suffixes() }
}

/// Reads `--keys-file`: a JSON array of keys, or one key per line.
pub fn read_keys(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let keys: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).with_context(|| format!("{}: not a JSON array of keys", path.display()))?
    } else {
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
    };
    if keys.is_empty() {
        bail!("{}: no keys", path.display());
    }
    Ok(keys)
}

fn one_char(s: &str) -> Result<char, String> {
    match s {
        "tab" | "\\t" => Ok('\t'),
        _ => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(format!("expected one character, got {s:?}")),
            }
        }
    }
}

fn parse_delimiter(s: &str) -> Result<Detect<char>, String> {
    if s == "auto" { Ok(Detect::Auto) } else { one_char(s).map(Detect::Given) }
}

fn parse_optional_char(s: &str) -> Result<Detect<Option<char>>, String> {
    match s {
        "auto" => Ok(Detect::Auto),
        "none" => Ok(Detect::Given(None)),
        _ => one_char(s).map(|c| Detect::Given(Some(c))),
    }
}

fn parse_header(s: &str) -> Result<Detect<bool>, String> {
    match s {
        "auto" => Ok(Detect::Auto),
        "true" => Ok(Detect::Given(true)),
        "false" => Ok(Detect::Given(false)),
        _ => Err(format!("expected true, false or auto, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csvlake_engine::options::CsvOptions;

    #[test]
    fn a_flag_patches_one_field_and_keeps_the_others() {
        let base = RunInput {
            csv: Some(CsvOptions::default().with_delimiter(';')),
            ..scan(input_at("i", ""), OutputLocation { bucket: "o".into(), prefix: String::new() })
        };
        let args = ConvertArgs { null_values: Some(vec!["NA".into()]), force: true, ..ConvertArgs::default() };
        let patched = args.patch(base).unwrap();
        let csv = patched.csv.unwrap();
        assert_eq!((csv.delimiter, csv.null_values), (Detect::Given(';'), vec!["NA".to_string()]));
        assert_eq!(patched.incremental, Some(false));
        assert_eq!(ConvertArgs::default().patch(RunInput::default()).unwrap(), RunInput::default());
    }

    #[test]
    fn schema_and_catalog_flags_reach_the_run_input() {
        let args = ConvertArgs {
            schema_policy: Some("per_file".into()),
            conform_limit: Some(7),
            catalog_database: Some("lake".into()),
            ..ConvertArgs::default()
        };
        let patched = args.patch(RunInput::default()).unwrap();
        assert_eq!(patched.schema_policy, Some(csvlake_contract::run::SchemaPolicy::PerFile));
        assert_eq!(patched.conform_limit, Some(7));
        assert_eq!(patched.catalog.map(|c| c.database).as_deref(), Some("lake"));
    }

    #[test]
    fn dialect_flags_parse() {
        assert_eq!(parse_delimiter("tab"), Ok(Detect::Given('\t')));
        assert_eq!(parse_delimiter("auto"), Ok(Detect::Auto));
        assert!(parse_delimiter(";;").is_err());
        assert_eq!(parse_optional_char("none"), Ok(Detect::Given(None)));
        assert_eq!(parse_optional_char("'"), Ok(Detect::Given(Some('\''))));
        assert_eq!(parse_header("false"), Ok(Detect::Given(false)));
    }

    #[test]
    fn locations_parse() {
        assert_eq!(Location::parse("s3://b/p/x").unwrap(), Location::S3 { bucket: "b".into(), key: "p/x".into() });
        assert_eq!(Location::parse("out").unwrap(), Location::Local("out".into()));
        assert!(Location::parse("s3:///x").is_err());
    }
}
