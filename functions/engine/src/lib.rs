//! csvlake-engine: the conversion itself, with no I/O of its own.
//!
//! Data flows one way, synchronously: any `std::io::Read` of an object's bytes →
//! [`decode::CsvDecoder`] → Arrow `RecordBatch`es → the Parquet and Avro sinks
//! ([`sink::FormatWriter`]) → any `std::io::Write`. The pipeline plugs an S3 GET stream in front
//! and staged S3 uploads behind; tests plug byte slices and files.
//!
//! Inside the decoder: [`input`] turns the raw bytes (gzip or zstd, in any encoding) into UTF-8
//! text and tells a failed read from a corrupt or mis-encoded file; [`sniff`] detects the
//! dialect from the first bytes; [`records`] reads strict records in bounded memory; and the
//! decoder infers column types from a bounded sample over the [`schema`] lattice, widening when a
//! later value contradicts them.
//!
//! [`options`] holds the conversion options as the execution input spells them, and [`error`]
//! the one error type, whose classes decide what the pipeline does with a failure.

pub mod avro;
mod column;
pub mod decode;
pub mod error;
pub mod input;
pub mod options;
pub mod records;
pub mod schema;
pub mod sink;
pub mod sniff;

pub use error::{BadInputKind, Error, Result};
pub use options::Format;
