//! The engine on files: every file of `data/valid` converts to Parquet and Avro that
//! independent readers (parquet's Arrow reader, apache-avro) read back row for row, and every
//! file of `data/invalid` fails with the kind and line `data/invalid/expected.json` gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use csvlake_engine::decode::{CsvDecoder, DecodeOptions, Dialect, Interrupt};
use csvlake_engine::options::{AvroOptions, Format, ParquetOptions};
use csvlake_engine::sink::FormatWriter;
use csvlake_engine::{Error, Result};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn data(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv" || x == "tsv"))
        .collect();
    files.sort();
    files
}

/// The options a file is read with: the dialect detected, and a sample of two rows, so that
/// a later value that contradicts it makes the decoder widen.
fn options(path: &Path) -> DecodeOptions {
    let tab_first = path.extension().is_some_and(|x| x == "tsv");
    DecodeOptions { tab_first, sample_rows: 2, batch_rows: 2, ..DecodeOptions::default() }
}

/// Decodes a whole file, starting again with the widened kinds as often as the decoder asks.
fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<(SchemaRef, Vec<bool>, Vec<RecordBatch>, Dialect)> {
    let mut floor = None;
    for _ in 0..8 {
        let opts = DecodeOptions { floor: floor.take(), ..opts.clone() };
        let mut decoder = CsvDecoder::new(bytes, &opts)?;
        let mut batches = Vec::new();
        loop {
            match decoder.next_batch() {
                Ok(Some(batch)) => batches.push(batch),
                Ok(None) => {
                    let dialect = decoder.dialect().clone();
                    return Ok((decoder.schema(), decoder.mostly_distinct().to_vec(), batches, dialect));
                }
                Err(Interrupt::Widen(kinds)) => {
                    floor = Some(kinds);
                    break;
                }
                Err(Interrupt::Error(e)) => return Err(e),
            }
        }
    }
    panic!("the kinds did not settle")
}

fn write(format: Format, schema: &SchemaRef, plain: &[bool], batches: &[RecordBatch]) -> Vec<u8> {
    let opts = (&ParquetOptions::default(), &AvroOptions::default());
    let mut writer = FormatWriter::new(format, schema.clone(), plain, opts, Vec::new()).expect("a writer");
    for batch in batches {
        writer.write(batch).expect("a batch is written");
    }
    writer.finish().expect("the footer is written")
}

/// Data records of the file as the `csv` crate reads them.
fn records(bytes: &[u8], delimiter: u8) -> usize {
    csv::ReaderBuilder::new().delimiter(delimiter).from_reader(bytes).byte_records().count()
}

#[test]
fn valid_files_convert_and_read_back_row_for_row() {
    let files = data("valid");
    assert!(files.len() >= 8, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let opts = options(&path);
        let (schema, plain, batches, dialect) = decode(&bytes, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let rows = records(&bytes, dialect.delimiter as u8);
        let decoded = concat_batches(&schema, &batches).unwrap();
        assert_eq!(decoded.num_rows(), rows, "{name}: rows");

        let parquet = write(Format::Parquet, &schema, &plain, &batches);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(parquet)).unwrap().build().unwrap();
        let read: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().unwrap();
        let read_schema = read.first().map_or(schema.clone(), |b| b.schema());
        let read = concat_batches(&read_schema, &read).unwrap();
        assert_eq!(read.num_rows(), rows, "{name}: parquet rows");
        assert_eq!(read.columns(), decoded.columns(), "{name}: parquet columns read back");

        let avro = write(Format::Avro, &schema, &plain, &batches);
        let reader = apache_avro::Reader::new(&avro[..]).unwrap_or_else(|e| panic!("{name}: avro header: {e}"));
        let records: Vec<apache_avro::types::Value> = reader.map(|r| r.expect("an avro record")).collect();
        assert_eq!(records.len(), rows, "{name}: avro records");
        if let Some(apache_avro::types::Value::Record(fields)) = records.first() {
            let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            let want: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(names, want, "{name}: avro field names");
        }
    }
}

#[test]
fn widening_starts_again_with_the_contradicted_columns_as_text() {
    let path = data("valid").into_iter().find(|p| p.ends_with("widens.csv")).unwrap();
    let (schema, _, _, _) = decode(&std::fs::read(&path).unwrap(), &options(&path)).unwrap();
    let types: Vec<String> = schema.fields().iter().map(|f| f.data_type().to_string()).collect();
    assert_eq!(types, ["Int64", "Utf8"], "a text value after two integers makes the column text");
}

#[test]
fn invalid_files_fail_with_their_kind_and_line() {
    #[derive(serde::Deserialize)]
    struct Expected {
        kind: String,
        line: Option<u64>,
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/invalid");
    let expected: BTreeMap<String, Expected> =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let files = data("invalid");
    let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, expected.keys().cloned().collect::<Vec<_>>(), "every invalid file has its expectation");
    for (path, name) in files.iter().zip(&names) {
        let bytes = std::fs::read(path).unwrap();
        match decode(&bytes, &options(path)) {
            Err(Error::BadInput { kind, line, message }) => {
                let want = &expected[name];
                assert_eq!((kind.as_str(), line), (want.kind.as_str(), want.line), "{name}: {message}");
            }
            other => panic!("{name}: expected bad input, got {:?}", other.map(|(s, _, b, _)| (s, b.len()))),
        }
    }
}
