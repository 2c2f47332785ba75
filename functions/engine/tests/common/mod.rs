//! What the engine's file tests share: decoding an object to the end, with the restarts the
//! decoder asks for, and writing its batches in one format.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use csvlake_engine::Result;
use csvlake_engine::decode::{CsvDecoder, DecodeOptions, Dialect, Interrupt};
use csvlake_engine::options::{AvroOptions, Format, ParquetOptions};
use csvlake_engine::sink::FormatWriter;

/// Decodes a whole object, starting again with the widened kinds, or in another encoding, as
/// often as the decoder asks.
pub fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<(SchemaRef, Vec<bool>, Vec<RecordBatch>, Dialect)> {
    let mut opts = opts.clone();
    for _ in 0..8 {
        let pass = (|| {
            let mut decoder = CsvDecoder::new(bytes, &opts)?;
            let mut batches = Vec::new();
            while let Some(batch) = decoder.next_batch()? {
                batches.push(batch);
            }
            let dialect = decoder.dialect().clone();
            Ok::<_, Interrupt>((decoder.schema(), decoder.mostly_distinct().to_vec(), batches, dialect))
        })();
        match pass {
            Ok(done) => return Ok(done),
            Err(Interrupt::Widen(kinds)) => opts.floor = Some(kinds),
            Err(Interrupt::Reencode(encoding)) => opts = DecodeOptions { encoding: Some(encoding), ..opts },
            Err(Interrupt::Error(e)) => return Err(e),
        }
    }
    panic!("the kinds did not settle")
}

pub fn write(format: Format, schema: &SchemaRef, plain: &[bool], batches: &[RecordBatch]) -> Vec<u8> {
    let opts = (&ParquetOptions::default(), &AvroOptions::default());
    let mut writer = FormatWriter::new(format, schema.clone(), plain, opts, Vec::new()).expect("a writer");
    for batch in batches {
        writer.write(batch).expect("a batch is written");
    }
    writer.finish().expect("the footer is written")
}
