//! Conversion options: CSV dialect, explicit schema, Parquet and Avro settings.
//!
//! Each option struct deserializes from its part of the execution input with every field
//! defaulted, and offers consuming `with_*` setters for use from Rust.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{BadInputKind, Error, Result};
use crate::schema::ColumnType;
use crate::sniff::Given;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Apache Parquet, written under `<out>/parquet/`.
    Parquet,
    /// Avro object container file, written under `<out>/avro/`.
    Avro,
}

impl Format {
    /// Every format, in output order.
    pub const ALL: [Format; 2] = [Format::Parquet, Format::Avro];

    /// Name used in keys and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Avro => "avro",
        }
    }

    /// File extension of the output object.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => ".parquet",
            Self::Avro => ".avro",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "parquet" => Ok(Self::Parquet),
            "avro" => Ok(Self::Avro),
            other => Err(format!("unknown format {other:?} (expected parquet or avro)")),
        }
    }
}

/// The default formats: both.
pub fn default_formats() -> Vec<Format> {
    Format::ALL.to_vec()
}

/// A dialect option: detected per file (`"auto"`, the default) or given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Detect<T> {
    /// Detected from each file.
    #[default]
    Auto,
    /// Given by the job.
    Given(T),
}

impl<T: Clone> Detect<T> {
    /// The given value, `None` when detected.
    pub fn given(&self) -> Option<T> {
        match self {
            Self::Auto => None,
            Self::Given(v) => Some(v.clone()),
        }
    }
}

impl<T: Serialize> Serialize for Detect<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Given(v) => v.serialize(s),
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Detect<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.as_str() == Some("auto") {
            return Ok(Self::Auto);
        }
        serde_json::from_value(v).map(Self::Given).map_err(|e| serde::de::Error::custom(format!("\"auto\" or {e}")))
    }
}

impl<T: JsonSchema> JsonSchema for Detect<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Detect_{}", T::schema_name()).into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let given = g.subschema_for::<T>();
        schemars::json_schema!({
            "anyOf": [{"type": "string", "enum": ["auto"], "description": "detected from each file"}, given],
        })
    }
}

pub use crate::input::DEFAULT_MAX_BYTES;

/// CSV dialect and typing options. Each dialect field is `"auto"` (detected per file, the
/// default) or given for every file of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CsvOptions {
    /// Field delimiter: `,` `;` tab or `|` are detected, any ASCII character can be given.
    pub delimiter: Detect<char>,
    /// Quote character (`"` or `'` are detected); `null` turns quoting off.
    pub quote: Detect<Option<char>>,
    /// Escape character inside quoted fields (a backslash is detected); `null`: quotes are
    /// escaped by doubling only.
    pub escape: Detect<Option<char>>,
    /// Whether the first row (after skipped lines) names the columns; without it columns are
    /// `column_1`….
    pub header: Detect<bool>,
    /// Lines before the header to skip (a preamble; leading `#` lines are detected as one).
    pub skip_lines: Detect<u64>,
    /// Text encoding: UTF-8 (with or without a BOM) and UTF-16 with a BOM are detected, others
    /// are guessed; or an encoding label (`utf-8`, `windows-1252`, `latin1`, `utf-16le`, …).
    pub encoding: Detect<String>,
    /// Lines that begin with this prefix are skipped anywhere in the file. Default: none.
    pub comment: Option<String>,
    /// Field values read as null. Default `[""]`.
    pub null_values: Vec<String>,
    /// Explicit column types (column → type name), overriding inference. Default: none.
    pub schema: Option<BTreeMap<String, ColumnType>>,
    /// Decompressed bytes of one file at most; a larger file fails as
    /// `bad_input.limit_exceeded`. Default 64 GiB.
    #[schemars(range(min = 1))]
    pub max_bytes: u64,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: Detect::Auto,
            quote: Detect::Auto,
            escape: Detect::Auto,
            header: Detect::Auto,
            skip_lines: Detect::Auto,
            encoding: Detect::Auto,
            comment: None,
            null_values: vec![String::new()],
            schema: None,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl CsvOptions {
    /// Gives the delimiter.
    pub fn with_delimiter(mut self, delimiter: char) -> Self {
        self.delimiter = Detect::Given(delimiter);
        self
    }
    /// Gives the quote character; `None` turns quoting off.
    pub fn with_quote(mut self, quote: Option<char>) -> Self {
        self.quote = Detect::Given(quote);
        self
    }
    /// Gives the escape character.
    pub fn with_escape(mut self, escape: Option<char>) -> Self {
        self.escape = Detect::Given(escape);
        self
    }
    /// Gives whether the first row is a header.
    pub fn with_header(mut self, header: bool) -> Self {
        self.header = Detect::Given(header);
        self
    }
    /// Gives the number of lines to skip before the header.
    pub fn with_skip_lines(mut self, n: u64) -> Self {
        self.skip_lines = Detect::Given(n);
        self
    }
    /// Gives the encoding label.
    pub fn with_encoding(mut self, label: impl Into<String>) -> Self {
        self.encoding = Detect::Given(label.into());
        self
    }
    /// Sets the comment prefix.
    pub fn with_comment(mut self, prefix: Option<String>) -> Self {
        self.comment = prefix;
        self
    }
    /// Sets the null tokens.
    pub fn with_null_values(mut self, null_values: Vec<String>) -> Self {
        self.null_values = null_values;
        self
    }
    /// Sets an explicit schema.
    pub fn with_schema(mut self, schema: Option<BTreeMap<String, ColumnType>>) -> Self {
        self.schema = schema;
        self
    }
    /// Sets the decompressed-byte limit.
    pub fn with_max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// The dialect as far as the options give it.
    pub fn given(&self) -> Given {
        Given {
            delimiter: self.delimiter.given().map(|c| c as u8),
            quote: self.quote.given().map(|q| q.map(|c| c as u8)),
            escape: self.escape.given().map(|e| e.map(|c| c as u8)),
            header: self.header.given(),
            skip_lines: self.skip_lines.given(),
            comment: self.comment.as_ref().map(|c| c.as_bytes().to_vec()),
        }
    }

    /// Checks that the dialect characters are single ASCII bytes, distinct, and not line ends.
    pub fn validate(&self) -> Result<()> {
        let ascii = |name: &str, c: char| {
            if c.is_ascii() && c != '\n' && c != '\r' {
                Ok(())
            } else {
                Err(Error::Internal(format!("csv.{name} must be one ASCII character other than a line end, got {c:?}")))
            }
        };
        if let Detect::Given(d) = self.delimiter {
            ascii("delimiter", d)?;
        }
        if let Detect::Given(Some(q)) = self.quote {
            ascii("quote", q)?;
            if self.delimiter == Detect::Given(q) {
                return Err(Error::Internal("csv.delimiter and csv.quote must differ".into()));
            }
        }
        if let Detect::Given(Some(e)) = self.escape {
            ascii("escape", e)?;
        }
        if let Detect::Given(label) = &self.encoding {
            crate::input::encoding_for_label(label)?;
        }
        if self.comment.as_deref() == Some("") {
            return Err(Error::Internal("csv.comment must not be empty: give a prefix, or null".into()));
        }
        if self.max_bytes == 0 {
            return Err(Error::Internal("csv.max_bytes must be positive".into()));
        }
        Ok(())
    }
}

/// Parquet compression codec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    /// Snappy (the default).
    #[default]
    Snappy,
    /// Zstandard, level 3.
    Zstd,
    /// Uncompressed.
    None,
}

impl std::str::FromStr for ParquetCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| format!("unknown parquet compression {s:?} (expected snappy, zstd or none)"))
    }
}

/// Parquet writer options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ParquetOptions {
    /// Compression codec. Default snappy.
    pub compression: ParquetCompression,
    /// Rows per row group. Default 131072.
    pub row_group_rows: usize,
    /// Encoded bytes per row group at most, whatever the rows: a row group is held in memory
    /// until it is written, so this bounds a wide file's memory. Default 64 MiB.
    pub row_group_bytes: usize,
}

/// Default `parquet.row_group_bytes`.
pub const DEFAULT_ROW_GROUP_BYTES: usize = 64 << 20;

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            compression: ParquetCompression::Snappy,
            row_group_rows: 131_072,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
        }
    }
}

impl ParquetOptions {
    /// Sets the compression codec.
    pub fn with_compression(mut self, compression: ParquetCompression) -> Self {
        self.compression = compression;
        self
    }
    /// Sets the row-group size in rows.
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows;
        self
    }
}

/// Avro container codec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AvroCodec {
    /// Snappy (the default).
    #[default]
    Snappy,
    /// Deflate.
    Deflate,
    /// Zstandard.
    Zstd,
    /// No compression.
    Null,
}

impl std::str::FromStr for AvroCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| format!("unknown avro codec {s:?} (expected snappy, deflate, zstd or null)"))
    }
}

/// Avro writer options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AvroOptions {
    /// Block codec. Default snappy.
    pub codec: AvroCodec,
}

impl AvroOptions {
    /// Sets the codec.
    pub fn with_codec(mut self, codec: AvroCodec) -> Self {
        self.codec = codec;
        self
    }
}

/// Parses an explicit schema file: a JSON object of column name → type name.
pub fn parse_schema_json(text: &str) -> Result<BTreeMap<String, ColumnType>> {
    serde_json::from_str(text).map_err(|e| Error::bad(BadInputKind::InvalidSchema, format!("schema: {e}")))
}
