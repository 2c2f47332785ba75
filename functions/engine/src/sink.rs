//! The format sinks: Parquet (parquet's `ArrowWriter`) and Avro object container files
//! ([`OcfWriter`] over arrow-avro's columnar encoder), each writing into any `std::io::Write`
//! (in the pipeline, a staged S3 upload).
//!
//! Both consume the same `RecordBatch`es; nothing is parsed twice.

use std::io::Write;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::avro::OcfWriter;
use crate::error::Result;
use crate::options::{AvroOptions, Format, ParquetCompression, ParquetOptions};

/// A writer of one output format.
pub enum FormatWriter<W: Write + Send> {
    /// Parquet.
    Parquet(Box<ArrowWriter<W>>),
    /// Avro OCF; `schema` is set when field names had to be made valid Avro names.
    Avro(Box<OcfWriter<W>>, Option<SchemaRef>),
}

impl<W: Write + Send> std::fmt::Debug for FormatWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Parquet(_) => "FormatWriter::Parquet",
            Self::Avro(..) => "FormatWriter::Avro",
        })
    }
}

/// Parquet writer properties for the options. Columns flagged in `plain` (mostly distinct
/// values) skip dictionary encoding, which would grow a dictionary only to fall back to plain.
pub fn parquet_properties(opts: &ParquetOptions, schema: &Schema, plain: &[bool]) -> WriterProperties {
    let compression = match opts.compression {
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        ParquetCompression::None => Compression::UNCOMPRESSED,
    };
    let mut b = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)));
    for (field, plain) in schema.fields().iter().zip(plain) {
        if *plain {
            b = b.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    b.build()
}

/// Avro names must match `[A-Za-z_][A-Za-z0-9_]*`; other characters become `_`, and a clash
/// gets a numeric suffix. A name that is already valid is never changed, and no renamed column
/// takes it: `a-b` beside a real `a_b` becomes `a_b_2`, so a reader that asks for `a_b` gets the
/// same column from Avro as from Parquet. Returns `None` when every name is already valid.
pub fn avro_schema(schema: &Schema) -> Option<SchemaRef> {
    let valid = |n: &str| {
        let mut c = n.chars();
        c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
    };
    if schema.fields().iter().all(|f| valid(f.name())) {
        return None;
    }
    let mut seen: std::collections::HashSet<String> =
        schema.fields().iter().map(|f| f.name()).filter(|n| valid(n)).cloned().collect();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if valid(f.name()) {
                return f.as_ref().clone();
            }
            let mut base: String =
                f.name().chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
            if !base.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                base.insert(0, '_');
            }
            let mut name = base.clone();
            let mut n = 2;
            while !seen.insert(name.clone()) {
                name = format!("{base}_{n}");
                n += 1;
            }
            f.as_ref().clone().with_name(name)
        })
        .collect();
    Some(Arc::new(Schema::new(fields)))
}

impl<W: Write + Send> FormatWriter<W> {
    /// A writer of `format` for batches of `schema`.
    pub fn new(
        format: Format,
        schema: SchemaRef,
        plain: &[bool],
        opts: (&ParquetOptions, &AvroOptions),
        sink: W,
    ) -> Result<Self> {
        let (parquet, avro) = opts;
        Ok(match format {
            Format::Parquet => {
                let props = parquet_properties(parquet, &schema, plain);
                Self::Parquet(Box::new(ArrowWriter::try_new(sink, schema, Some(props))?))
            }
            Format::Avro => {
                let renamed = avro_schema(&schema);
                let target = renamed.clone().unwrap_or(schema);
                Self::Avro(Box::new(OcfWriter::new(sink, &target, avro.codec)?), renamed)
            }
        })
    }

    /// The format written.
    pub fn format(&self) -> Format {
        match self {
            Self::Parquet(_) => Format::Parquet,
            Self::Avro(..) => Format::Avro,
        }
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Self::Parquet(w) => w.write(batch)?,
            Self::Avro(w, None) => w.write(batch)?,
            Self::Avro(w, Some(schema)) => w.write(&RecordBatch::try_new(schema.clone(), batch.columns().to_vec())?)?,
        }
        Ok(())
    }

    /// Writes the footer and returns the writer it wrote into.
    pub fn finish(self) -> Result<W> {
        Ok(match self {
            Self::Parquet(w) => w.into_inner()?,
            Self::Avro(w, _) => w.into_inner(),
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;

    #[test]
    fn valid_avro_names_keep_their_column() {
        let schema = Schema::new(
            ["first name", "1col", "a-b", "a_b", "a.b", "when"].map(|n| Field::new(n, DataType::Utf8, true)).to_vec(),
        );
        let renamed = avro_schema(&schema).expect("some names are not valid Avro");
        let names: Vec<&str> = renamed.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["first_name", "_1col", "a_b_2", "a_b", "a_b_3", "when"]);
        let valid = Schema::new(vec![Field::new("a_b", DataType::Utf8, true)]);
        assert!(avro_schema(&valid).is_none());
    }
}
