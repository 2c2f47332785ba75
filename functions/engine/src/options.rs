//! Conversion options: CSV dialect, explicit schema, Parquet and Avro settings.
//!
//! Each option struct deserializes from its part of the execution input with every field
//! defaulted, and offers consuming `with_*` setters for use from Rust.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{BadInputKind, Error, Result};
use crate::schema::ColumnType;

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

/// CSV dialect and typing options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CsvOptions {
    /// Field delimiter. Default: `,`, or a tab for `.tsv` and `.tsv.gz` keys when unset.
    pub delimiter: Option<char>,
    /// Quote character. Default `"`.
    pub quote: char,
    /// Escape character inside quoted fields. Default: none (quotes are escaped by doubling).
    pub escape: Option<char>,
    /// Whether the first row names the columns. Default `true`; without it columns are `column_1`….
    pub header: bool,
    /// Field values read as null. Default `[""]`.
    pub null_values: Vec<String>,
    /// Explicit column types (column → type name), overriding inference. Default: none.
    pub schema: Option<BTreeMap<String, ColumnType>>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self { delimiter: None, quote: '"', escape: None, header: true, null_values: vec![String::new()], schema: None }
    }
}

impl CsvOptions {
    /// Sets the delimiter.
    pub fn with_delimiter(mut self, delimiter: char) -> Self {
        self.delimiter = Some(delimiter);
        self
    }
    /// Sets the quote character.
    pub fn with_quote(mut self, quote: char) -> Self {
        self.quote = quote;
        self
    }
    /// Sets the escape character.
    pub fn with_escape(mut self, escape: Option<char>) -> Self {
        self.escape = escape;
        self
    }
    /// Sets whether the first row is a header.
    pub fn with_header(mut self, header: bool) -> Self {
        self.header = header;
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

    /// The delimiter byte to use for `key`.
    pub fn delimiter_for(&self, key: &str) -> u8 {
        match self.delimiter {
            Some(d) => d as u8,
            None if key.ends_with(".tsv") || key.ends_with(".tsv.gz") => b'\t',
            None => b',',
        }
    }

    /// Checks that the dialect characters are single ASCII bytes and distinct.
    pub fn validate(&self) -> Result<()> {
        let ascii = |name: &str, c: char| {
            if c.is_ascii() {
                Ok(())
            } else {
                Err(Error::Internal(format!("csv.{name} must be one ASCII character, got {c:?}")))
            }
        };
        if let Some(d) = self.delimiter {
            ascii("delimiter", d)?;
            if d == self.quote {
                return Err(Error::Internal("csv.delimiter and csv.quote must differ".into()));
            }
        }
        ascii("quote", self.quote)?;
        if let Some(e) = self.escape {
            ascii("escape", e)?;
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
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self { compression: ParquetCompression::Snappy, row_group_rows: 131_072 }
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
