//! csvlake: streaming conversion of CSV objects in S3 to Parquet and Avro.
//!
//! Data flows one way: an S3 GetObject stream → [`decode::CsvDecoder`] → Arrow `RecordBatch`es
//! → the Parquet and Avro sinks ([`sink`]) → staged S3 uploads ([`upload`]). The Lambda binaries
//! and the command line are thin layers over [`convert::Converter`].

pub mod avro;
pub mod convert;
pub mod decode;
pub mod error;
pub mod keys;
pub mod local;
pub mod local_fs;
pub mod options;
pub mod payload;
pub mod plan;
pub mod report;
pub mod run;
pub mod s3;
pub mod schema;
pub mod sink;
pub mod upload;

pub use convert::Converter;
pub use error::{Error, Result};
pub use local_fs::LocalFs;
pub use options::Format;
