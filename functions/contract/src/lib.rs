//! csvlake-contract: every payload that crosses a process boundary, each defined once.
//!
//! - [`run`]: the execution input, the planner's request and plan, the batch manifest, the Step
//!   Functions shapes the reducer reads (Map output, ResultWriter files, error objects), the
//!   reducer's request and summary, and the report;
//! - [`payload`]: the converter's batch event, the per-file result and the batch result;
//! - [`keys`]: where each input's outputs go;
//! - [`tables`]: tables, provenance, the table index and leases;
//! - [`errors`]: the names of failures, and the error the handlers return;
//! - [`deployment`]: the names the deployment shares with the code;
//! - [`generated`]: the JSON Schema of the execution input and the constants file, written for
//!   infra and checked by a test.

pub mod deployment;
pub mod errors;
pub mod generated;
pub mod keys;
pub mod payload;
pub mod run;
pub mod tables;

pub use errors::{BatchError, ErrorNames, FileError};
