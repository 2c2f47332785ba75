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
        .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
        .set_max_row_group_bytes(Some(opts.row_group_bytes.max(1)));
    for (field, plain) in schema.fields().iter().zip(plain) {
        if *plain {
            b = b.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    b.build()
}

/// The attribute of a renamed Avro field that keeps its column's name: `{"name": "a_b_2", "type":
/// …, "csvlake.original_name": "a-b"}`. Avro lets a field carry attributes of its own, which
/// readers ignore; the `csvlake.` prefix keeps it apart from the specification's attributes and
/// other tools' (`connect.name`, `avro.java.string`). Only renamed fields carry it: any other
/// field's name is its column's.
pub const AVRO_ORIGINAL_NAME: &str = "csvlake.original_name";

/// Avro names must match `[A-Za-z_][A-Za-z0-9_]*`; other characters become `_`, and a clash
/// gets a numeric suffix. A name that is already valid is never changed, and no renamed column
/// takes it, wherever it stands and whatever its suffix: `a-b` beside real `a_b` and `a_b_2`
/// becomes `a_b_3`, so a reader that asks for `a_b` gets the same column from Avro as from
/// Parquet. A renamed field keeps its column's name in its [`AVRO_ORIGINAL_NAME`] attribute.
/// Returns `None` when every name is already valid.
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
            // arrow-avro copies field metadata into the field's JSON, parsing a value that is
            // JSON: a JSON string therefore arrives as the name itself, even for `123` or `null`.
            let mut metadata = f.metadata().clone();
            metadata.insert(AVRO_ORIGINAL_NAME.to_owned(), serde_json::Value::from(f.name().as_str()).to_string());
            f.as_ref().clone().with_name(name).with_metadata(metadata)
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
    fn a_renamed_column_never_takes_an_original_name() {
        let names = |columns: &[&str]| -> Vec<String> {
            let schema = Schema::new(columns.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>());
            avro_schema(&schema).expect("renamed").fields().iter().map(|f| f.name().clone()).collect()
        };
        assert_eq!(names(&["a-b", "a_b_2", "a_b"]), ["a_b_3", "a_b_2", "a_b"]);
        assert_eq!(names(&["a_b_2", "a-b", "a.b", "a_b"]), ["a_b_2", "a_b_3", "a_b_4", "a_b"]);
        assert_eq!(names(&["a-b", "a.b", "a-b-2", "a_b_2_2"]), ["a_b", "a_b_2", "a_b_2_3", "a_b_2_2"]);
        assert_eq!(names(&["1", "_1", "_1_2"]), ["_1_3", "_1", "_1_2"]);
        // Every combination of a few clashing names: originals kept, all distinct.
        let pool = ["a-b", "a_b", "a_b_2", "a.b", "a_b_3", "a-b-2", "a_b_2_2", "1a", "_1a"];
        for mask in 1u32..(1 << pool.len()) {
            let columns: Vec<&str> =
                pool.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| *n).collect();
            if columns.iter().all(|n| !n.contains(['-', '.']) && !n.starts_with('1')) {
                continue;
            }
            let renamed = names(&columns);
            let distinct: std::collections::HashSet<&String> = renamed.iter().collect();
            assert_eq!(distinct.len(), columns.len(), "{columns:?} → {renamed:?}");
            for (original, name) in columns.iter().zip(&renamed) {
                if original != name {
                    assert!(!columns.contains(&name.as_str()), "{columns:?} → {renamed:?}");
                }
            }
        }
    }

    /// The literals of the decimal test, by column: (name, precision, scale, values).
    const DECIMALS: [(&str, u8, u8, [Option<&str>; 4]); 3] = [
        ("amount-eur", 19, 2, [Some("82544000000000707.52"), Some("-0.01"), None, Some("12")]),
        ("tiny", 38, 38, [Some("0.12345678901234567890123456789012345678"), Some("-1e-38"), Some("0"), None]),
        ("huge", 38, 0, [Some("99999999999999999999999999999999999999"), Some("-1.5e20"), None, Some("7")]),
    ];

    /// The decimal test's batch, built by the decoder's columns, and the unscaled values.
    fn decimal_batch() -> (RecordBatch, Vec<Vec<Option<i128>>>) {
        let mut fields = Vec::new();
        let mut arrays = Vec::new();
        let mut expected = Vec::new();
        for (name, precision, scale, values) in DECIMALS {
            let kind = crate::schema::Kind::Decimal { precision, scale };
            let mut column = crate::column::Column::new(kind, 4);
            for v in values {
                match v {
                    Some(v) => assert!(column.append(v.as_bytes()).unwrap(), "{v}"),
                    None => column.append_null(),
                }
            }
            fields.push(Field::new(name, kind.column_type().data_type(), true));
            arrays.push(column.finish());
            expected.push(
                values
                    .map(|v| v.map(|v| crate::schema::parse_decimal(v.as_bytes(), precision, scale).unwrap()))
                    .to_vec(),
            );
        }
        assert_eq!(expected[0][0], Some(8_254_400_000_000_070_752));
        assert_eq!(expected[2][1], Some(-150_000_000_000_000_000_000));
        (RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap(), expected)
    }

    fn write_all(format: Format, batch: &RecordBatch) -> Vec<u8> {
        let opts = (&ParquetOptions::default(), &AvroOptions::default());
        let plain = vec![false; batch.num_columns()];
        let mut w = FormatWriter::new(format, batch.schema(), &plain, opts, Vec::new()).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn parquet_reads_back_the_exact_decimals() {
        use arrow_array::Array;
        use arrow_array::cast::AsArray;
        use arrow_array::types::Decimal128Type;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        use parquet::basic::{DecimalType, LogicalType};

        let (batch, expected) = decimal_batch();
        let file = bytes::Bytes::from(write_all(Format::Parquet, &batch));
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        for (i, (_, precision, scale, _)) in DECIMALS.iter().enumerate() {
            let logical = builder.parquet_schema().column(i).logical_type_ref().cloned();
            let want = LogicalType::Decimal(DecimalType { scale: i32::from(*scale), precision: i32::from(*precision) });
            assert_eq!(logical, Some(want));
        }
        let read: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
        assert_eq!(read.len(), 1);
        for (i, want) in expected.iter().enumerate() {
            let column = read[0].column(i).as_primitive::<Decimal128Type>();
            assert_eq!(column.data_type(), batch.column(i).data_type());
            let got: Vec<Option<i128>> = column.iter().collect();
            assert_eq!(&got, want, "{}", DECIMALS[i].0);
        }
    }

    #[test]
    fn avro_reads_back_the_exact_decimals_and_the_original_names() {
        use apache_avro::types::Value;

        let (batch, expected) = decimal_batch();
        let file = write_all(Format::Avro, &batch);
        let reader = apache_avro::Reader::new(&file[..]).unwrap();
        let apache_avro::Schema::Record(record) = reader.writer_schema().clone() else {
            panic!("the writer schema is a record");
        };
        let names: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["amount_eur", "tiny", "huge"]);
        let original = |i: usize| record.fields[i].custom_attributes.get(AVRO_ORIGINAL_NAME).cloned();
        assert_eq!(original(0), Some(serde_json::Value::from("amount-eur")));
        assert_eq!(original(1), None, "a field that kept its name");
        for (field, (_, precision, scale, _)) in record.fields.iter().zip(DECIMALS) {
            let apache_avro::Schema::Union(union) = &field.schema else { panic!("{}: nullable", field.name) };
            match &union.variants()[1] {
                apache_avro::Schema::Decimal(d) => assert_eq!((d.precision, d.scale), (precision.into(), scale.into())),
                other => panic!("{}: {other:?}", field.name),
            }
        }
        let rows: Vec<Value> = reader.map(Result::unwrap).collect();
        for (r, row) in rows.iter().enumerate() {
            let Value::Record(values) = row else { panic!("a record") };
            for (i, (_, value)) in values.iter().enumerate() {
                let got = match value {
                    Value::Union(_, v) => match v.as_ref() {
                        Value::Null => None,
                        Value::Decimal(d) => {
                            let be = Vec::<u8>::try_from(d).unwrap();
                            let fill = if be.first().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
                            let mut bytes = [fill; 16];
                            bytes[16 - be.len()..].copy_from_slice(&be);
                            Some(i128::from_be_bytes(bytes))
                        }
                        other => panic!("{other:?}"),
                    },
                    other => panic!("{other:?}"),
                };
                assert_eq!(got, expected[i][r], "row {r} column {i}");
            }
        }
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn the_same_batches_make_the_same_bytes_in_both_formats() {
        let (batch, _) = decimal_batch();
        for format in [Format::Parquet, Format::Avro] {
            assert_eq!(write_all(format, &batch), write_all(format, &batch), "{format:?}");
        }
        // The Avro sync marker ends the header and every block, and readers check it.
        let file = write_all(Format::Avro, &batch);
        let reader = apache_avro::Reader::new(&file[..]).unwrap();
        assert_eq!(reader.map(Result::unwrap).count(), 4);
        let sync = &file[file.len() - 16..];
        assert_eq!(file.windows(16).filter(|w| *w == sync).count(), 2, "after the header and after the block");
    }

    #[test]
    fn original_names_arrive_as_written() {
        // Names that are JSON themselves, which arrow-avro would parse if they were not quoted.
        let odd = ["123", "-1", "1.5", "\"quoted\"", "a\"b", "é x", "{\"k\": 1}", "[1]"];
        let schema = Schema::new(odd.iter().map(|n| Field::new(*n, DataType::Int64, true)).collect::<Vec<_>>());
        let batch = RecordBatch::new_empty(Arc::new(schema));
        let file = write_all(Format::Avro, &batch);
        let reader = apache_avro::Reader::new(&file[..]).unwrap();
        let apache_avro::Schema::Record(record) = reader.writer_schema() else { panic!("a record") };
        for (field, name) in record.fields.iter().zip(odd) {
            assert_eq!(field.custom_attributes.get(AVRO_ORIGINAL_NAME), Some(&serde_json::Value::from(name)));
        }
    }

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
