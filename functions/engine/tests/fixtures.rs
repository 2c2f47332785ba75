//! The engine on files. Each folder holds an `expected.json` with one entry per file:
//!
//! - `data/valid`: `{"options": <csv options>, "dialect": <the dialect detected>, "types":
//!   [<column type>…], "rows": <data rows>, "cells": [[<row>, <column>, <value as Arrow displays
//!   it>]…]}`; every file converts to Parquet and Avro that independent readers (parquet's Arrow
//!   reader, apache-avro) read back row for row;
//! - `data/invalid`: `{"options": <csv options>, "kind": "bad_input.…", "line": <line or null>}`;
//!   every file fails with that kind and line. Each invalid file is named for what is wrong.
//!
//! `options` is optional (default: everything detected). Files are read with a sample of two
//! rows, so that a later value that contradicts it makes the decoder widen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::compute::concat_batches;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use csvlake_engine::Error;
use csvlake_engine::decode::{DecodeOptions, Dialect};
use csvlake_engine::options::{CsvOptions, Format};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

mod common;
use common::{decode, write};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The files of a folder, besides its `expected.json`.
fn data(name: &str) -> Vec<PathBuf> {
    let dir = dir(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("expected.json"))
        .collect();
    files.sort();
    files
}

/// The expectations of a folder, checked to name exactly its files.
fn expected<T: serde::de::DeserializeOwned>(name: &str) -> BTreeMap<String, T> {
    let path = dir(name).join("expected.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected: BTreeMap<String, T> = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let files: Vec<String> = data(name).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(files, expected.keys().cloned().collect::<Vec<_>>(), "every file of {name} has its expectation");
    expected
}

/// The options a file is read with: its job options, and a sample of two rows.
fn options(name: &str, csv: &CsvOptions) -> DecodeOptions {
    let opts = DecodeOptions::for_file(csv, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    DecodeOptions { sample_rows: 2, batch_rows: 2, ..opts }
}

#[derive(serde::Deserialize)]
struct Valid {
    #[serde(default)]
    options: CsvOptions,
    dialect: Dialect,
    types: Vec<String>,
    rows: usize,
    #[serde(default)]
    cells: Vec<(usize, String, String)>,
}

#[test]
fn valid_files_convert_and_read_back_row_for_row() {
    let expected: BTreeMap<String, Valid> = expected("valid");
    assert!(expected.len() >= 8);
    for (name, want) in &expected {
        let bytes = std::fs::read(dir("valid").join(name)).unwrap();
        let opts = options(name, &want.options);
        let (schema, plain, batches, dialect) = decode(&bytes, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(dialect, want.dialect, "{name}: dialect");
        let types: Vec<String> = schema.fields().iter().map(|f| column_type(f.data_type())).collect();
        assert_eq!(types, want.types, "{name}: types");
        let decoded = concat_batches(&schema, &batches).unwrap();
        let rows = want.rows;
        assert_eq!(decoded.num_rows(), rows, "{name}: rows");
        for (row, column, value) in &want.cells {
            let i = schema.index_of(column).unwrap_or_else(|_| panic!("{name}: no column {column:?}"));
            // UTC timestamps show as their UTC wall time, without a zone.
            let array = match decoded.column(i).data_type() {
                DataType::Timestamp(unit, Some(_)) => {
                    arrow::compute::cast(decoded.column(i), &DataType::Timestamp(*unit, None)).unwrap()
                }
                _ => decoded.column(i).clone(),
            };
            let shown = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default().with_null("null"))
                .unwrap()
                .value(*row)
                .to_string();
            assert_eq!(&shown, value, "{name}: row {row}, column {column}");
        }

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
    }
}

/// The type name an explicit schema would give.
fn column_type(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "utf8".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float64 => "float64".into(),
        DataType::Date32 => "date32".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp_utc".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        other => other.to_string(),
    }
}

#[test]
fn widening_starts_again_with_the_contradicted_columns_as_text() {
    let name = "widens.csv";
    let (schema, _, _, _) =
        decode(&std::fs::read(dir("valid").join(name)).unwrap(), &options(name, &CsvOptions::default())).unwrap();
    let types: Vec<String> = schema.fields().iter().map(|f| f.data_type().to_string()).collect();
    assert_eq!(types, ["Int64", "Utf8"], "a text value after two integers makes the column text");
}

#[derive(serde::Deserialize)]
struct Invalid {
    #[serde(default)]
    options: CsvOptions,
    kind: String,
    line: Option<u64>,
}

#[test]
fn invalid_files_fail_with_their_kind_and_line() {
    let expected: BTreeMap<String, Invalid> = expected("invalid");
    for (name, want) in &expected {
        let bytes = std::fs::read(dir("invalid").join(name)).unwrap();
        match decode(&bytes, &options(name, &want.options)) {
            Err(Error::BadInput { kind, line, message }) => {
                assert_eq!((kind.as_str(), line), (want.kind.as_str(), want.line), "{name}: {message}");
            }
            other => panic!("{name}: expected bad input, got {:?}", other.map(|(s, _, b, _)| (s, b.len()))),
        }
    }
}
