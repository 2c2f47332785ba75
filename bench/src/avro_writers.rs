//! `avro-writers`: times the two Avro writers on the same Arrow batches, to justify the choice
//! of writer: csvlake's container writer over arrow-avro's columnar encoder, and apache-avro's
//! row writer (one `Value` per cell), both with the snappy codec.
//!
//! ```text
//! avro-writers CSV_FILE [--rows N]
//! ```

use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use apache_avro::types::Value;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use clap::Parser;
use csvlake_engine::avro::OcfWriter;
use csvlake_engine::decode::{CsvDecoder, DecodeOptions};
use csvlake_engine::options::AvroCodec;

/// Command line.
#[derive(Debug, Parser)]
struct Args {
    /// A CSV file (from gen-corpus).
    csv: std::path::PathBuf,
    /// Rows to decode and write.
    #[arg(long, default_value_t = 500_000)]
    rows: usize,
}

/// One cell as an apache-avro value, inside the `["null", T]` union arrow-avro declares.
fn cell(array: &dyn Array, row: usize, null_branch: u32) -> Value {
    let value_branch = 1 - null_branch;
    if array.is_null(row) {
        return Value::Union(null_branch, Box::new(Value::Null));
    }
    let v = match array.data_type() {
        DataType::Int64 => Value::Long(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Value::Double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Value::Boolean(array.as_boolean().value(row)),
        DataType::Date32 => Value::Date(array.as_primitive::<Date32Type>().value(row)),
        DataType::Timestamp(_, Some(_)) => {
            Value::TimestampMicros(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Timestamp(_, None) => {
            Value::LocalTimestampMicros(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        _ => Value::String(array.as_string::<i32>().value(row).to_owned()),
    };
    Value::Union(value_branch, Box::new(v))
}

/// Decodes, times both writers, prints a table row each and the ratio.
fn main() -> Result<()> {
    let args = Args::parse();
    let file = std::fs::File::open(&args.csv).with_context(|| format!("opening {}", args.csv.display()))?;
    let opts = DecodeOptions::default();
    let mut decoder = CsvDecoder::new(std::io::BufReader::new(file), &opts)?;
    let schema = decoder.schema();
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut rows = 0;
    while rows < args.rows {
        let Some(b) = decoder.next_batch().map_err(|e| anyhow!("{e:?}"))? else { break };
        rows += b.num_rows();
        batches.push(b);
    }

    let started = Instant::now();
    let mut columnar = OcfWriter::new(Vec::new(), &schema, AvroCodec::Snappy)?;
    for b in &batches {
        columnar.write(b)?;
    }
    let columnar_bytes = columnar.into_inner().len();
    let columnar_secs = started.elapsed().as_secs_f64();

    let json = arrow_avro::schema::AvroSchema::try_from(schema.as_ref())?.json_string;
    let avro_schema = apache_avro::Schema::parse_str(&json)?;
    let apache_avro::Schema::Record(record) = &avro_schema else { return Err(anyhow!("not a record schema")) };
    let null_branches: Vec<u32> = record
        .fields
        .iter()
        .map(|f| match &f.schema {
            apache_avro::Schema::Union(u) => {
                u.variants().iter().position(|v| *v == apache_avro::Schema::Null).unwrap_or(0) as u32
            }
            _ => 0,
        })
        .collect();
    let names: Vec<String> = record.fields.iter().map(|f| f.name.clone()).collect();
    let started = Instant::now();
    let mut writer = apache_avro::Writer::with_codec(&avro_schema, Vec::new(), apache_avro::Codec::Snappy);
    for b in &batches {
        for row in 0..b.num_rows() {
            let fields = (0..b.num_columns())
                .map(|c| (names[c].clone(), cell(b.column(c).as_ref(), row, null_branches[c])))
                .collect();
            writer.append(Value::Record(fields))?;
        }
    }
    let row_bytes = writer.into_inner()?.len();
    let row_secs = started.elapsed().as_secs_f64();

    println!("| writer | rows | seconds | rows/s | bytes |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| csvlake OcfWriter (arrow-avro encoder) | {rows} | {columnar_secs:.3} | {:.0} | {columnar_bytes} |",
        rows as f64 / columnar_secs
    );
    println!(
        "| apache-avro Writer (Value rows) | {rows} | {row_secs:.3} | {:.0} | {row_bytes} |",
        rows as f64 / row_secs
    );
    println!("\napache-avro / columnar time ratio: {:.1}x", row_secs / columnar_secs);
    Ok(())
}
