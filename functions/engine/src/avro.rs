//! Avro object container files from Arrow batches.
//!
//! arrow-avro encodes the records (columnar, fast) and writes the file header; this module
//! frames the blocks. arrow-avro's own container writer computes the snappy codec's CRC32 with a
//! byte-at-a-time table, which took a third of the Avro writer's time on the benchmark;
//! `crc32fast` does the same checksum at memory speed.
//!
//! [`avro_schema_json`] gives the schema text a file's header carries, for catalogs that need it
//! beside the files (Hive's `avro.schema.literal`).

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_avro::compression::CompressionCodec;
use arrow_avro::writer::format::{AvroBinaryFormat, AvroFormat, AvroOcfFormat};
use arrow_avro::writer::{Encoder, WriterBuilder};
use arrow_schema::Schema;

use crate::error::{Error, Result};
use crate::options::AvroCodec;

/// The header metadata key of the writer's schema, as the Avro specification names it.
const SCHEMA_KEY: &str = "avro.schema";

/// The Avro schema JSON text that [`OcfWriter`] embeds in the header of a file written for
/// `schema` through [`crate::sink::FormatWriter`]: after [`crate::sink::avro_schema`] renames
/// the columns that are not valid Avro names. The text is taken from a header arrow-avro writes
/// itself, so that it is the file's byte for byte, whatever arrow-avro's version makes of the
/// schema.
pub fn avro_schema_json(schema: &Schema) -> Result<String> {
    let renamed = crate::sink::avro_schema(schema);
    let target = renamed.as_deref().unwrap_or(schema);
    let mut header = Vec::new();
    AvroOcfFormat::default().start_stream(&mut header, target, None)?;
    ocf_schema_json(&header)
}

/// Reads a long (zig-zag varint) at `*at`, advancing it.
fn get_long(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    None
}

/// Reads Avro `bytes` (a length, then that many bytes) at `*at`, advancing it.
fn get_bytes<'a>(bytes: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(get_long(bytes, at)?).ok()?;
    let value = bytes.get(*at..at.checked_add(len)?)?;
    *at += len;
    Some(value)
}

/// The writer's schema JSON text (the `avro.schema` metadata) of an object container file, from
/// its header; `file` may be the header alone.
pub fn ocf_schema_json(file: &[u8]) -> Result<String> {
    let bad = |why: &str| Error::Internal(format!("avro: {why}"));
    let mut at = 4;
    if !file.starts_with(b"Obj\x01") {
        return Err(bad("not an object container file"));
    }
    loop {
        let count = get_long(file, &mut at).ok_or_else(|| bad("truncated header"))?;
        if count == 0 {
            return Err(bad("the header has no avro.schema"));
        }
        if count < 0 {
            // A negative count is followed by the block's size in bytes.
            get_long(file, &mut at).ok_or_else(|| bad("truncated header"))?;
        }
        for _ in 0..count.unsigned_abs() {
            let key = get_bytes(file, &mut at).ok_or_else(|| bad("truncated header"))?;
            let value = get_bytes(file, &mut at).ok_or_else(|| bad("truncated header"))?;
            if key == SCHEMA_KEY.as_bytes() {
                return String::from_utf8(value.to_vec()).map_err(|_| bad("the schema is not UTF-8"));
            }
        }
    }
}

/// Writes an Avro object container file, one block per batch.
pub struct OcfWriter<W: Write> {
    out: W,
    encoder: Encoder,
    codec: AvroCodec,
    sync: [u8; 16],
    block: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for OcfWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcfWriter").field("codec", &self.codec).finish_non_exhaustive()
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Internal(format!("avro: {e}"))
}

/// Appends an Avro `long` (zig-zag varint).
fn put_long(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

/// Replaces the sync marker that ends a container header (arrow-avro draws it at random) with
/// the 128-bit XXH3 of the header before it (the magic, the schema and the codec), and returns
/// it. The same input converted twice then gives the same bytes, so that a repeated or retried
/// conversion writes an identical object. The marker stays as unlikely to occur in the data as
/// a random one.
fn sync_marker(header: &mut [u8]) -> Result<[u8; 16]> {
    let at =
        header.len().checked_sub(16).ok_or_else(|| Error::Internal("avro: a header without sync marker".into()))?;
    let sync = xxhash_rust::xxh3::xxh3_128(&header[..at]).to_be_bytes();
    header[at..].copy_from_slice(&sync);
    Ok(sync)
}

impl<W: Write> OcfWriter<W> {
    /// Writes the header (schema and codec) and returns the writer.
    pub fn new(mut out: W, schema: &Schema, codec: AvroCodec) -> Result<Self> {
        let arrow_codec = match codec {
            AvroCodec::Snappy => Some(CompressionCodec::Snappy),
            AvroCodec::Deflate => Some(CompressionCodec::Deflate),
            AvroCodec::Zstd => Some(CompressionCodec::ZStandard),
            AvroCodec::Null => None,
        };
        let mut header = Vec::new();
        AvroOcfFormat::default().start_stream(&mut header, schema, arrow_codec)?;
        let sync = sync_marker(&mut header)?;
        out.write_all(&header).map_err(io)?;
        let encoder = WriterBuilder::new(schema.clone()).build_encoder::<AvroBinaryFormat>()?;
        Ok(Self { out, encoder, codec, sync, block: Vec::new() })
    }

    /// Encodes, compresses and writes one block.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.encoder.encode(batch)?;
        let rows = self.encoder.flush();
        let data = rows.bytes();
        self.block.clear();
        let compressed: &[u8] = match self.codec {
            AvroCodec::Null => data,
            AvroCodec::Snappy => {
                let max = snap::raw::max_compress_len(data.len());
                self.block.resize(max + 4, 0);
                let n = snap::raw::Encoder::new()
                    .compress(data, &mut self.block)
                    .map_err(|e| Error::Internal(format!("avro snappy: {e}")))?;
                self.block.truncate(n);
                self.block.extend_from_slice(&crc32fast::hash(data).to_be_bytes());
                &self.block
            }
            AvroCodec::Deflate => {
                let mut enc = flate2::write::DeflateEncoder::new(&mut self.block, flate2::Compression::default());
                enc.write_all(data).and_then(|()| enc.finish().map(|_| ())).map_err(io)?;
                &self.block
            }
            AvroCodec::Zstd => {
                self.block = zstd::bulk::compress(data, 0).map_err(io)?;
                &self.block
            }
        };
        let mut head = Vec::with_capacity(20);
        put_long(&mut head, rows.len() as i64);
        put_long(&mut head, compressed.len() as i64);
        self.out.write_all(&head).map_err(io)?;
        self.out.write_all(compressed).map_err(io)?;
        self.out.write_all(&self.sync).map_err(io)?;
        Ok(())
    }

    /// Returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_are_zigzag_varints() {
        let enc = |v| {
            let mut b = Vec::new();
            put_long(&mut b, v);
            b
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(64), [0x80, 0x01]);
        assert_eq!(enc(-65), [0x81, 0x01]);
        for v in [0, -1, 1, 64, -65, i64::MAX, i64::MIN] {
            assert_eq!(get_long(&enc(v), &mut 0), Some(v));
        }
    }

    #[test]
    fn the_schema_json_is_the_one_in_the_header_of_a_written_file() {
        use std::sync::Arc;

        use arrow_schema::{DataType, Field, TimeUnit};

        use crate::options::{AvroOptions, Format, ParquetOptions};
        use crate::sink::FormatWriter;

        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount-eur", DataType::Decimal128(12, 2), true),
            Field::new("Day", DataType::Date32, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("1st", DataType::Utf8, true),
        ]));
        let json = avro_schema_json(&schema).unwrap();
        for codec in [AvroCodec::Snappy, AvroCodec::Null] {
            let opts = AvroOptions::default().with_codec(codec);
            let writer = FormatWriter::new(
                Format::Avro,
                schema.clone(),
                &[false; 5],
                (&ParquetOptions::default(), &opts),
                Vec::new(),
            )
            .unwrap();
            let file = writer.finish().unwrap();
            assert_eq!(ocf_schema_json(&file).unwrap(), json);
            let reader = apache_avro::Reader::new(&file[..]).unwrap();
            let apache_avro::Schema::Record(record) = reader.writer_schema() else { panic!("a record") };
            let names: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(names, ["id", "amount_eur", "Day", "at", "_1st"]);
        }
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "record");
        assert_eq!(value["fields"][1]["name"], "amount_eur");
        assert!(ocf_schema_json(b"PAR1").is_err());
        assert!(ocf_schema_json(&b"Obj\x01\x02"[..]).is_err(), "truncated");
    }
}
