//! Local execution: what `csvlake run` adds around the functions so that a run on this machine
//! takes the production path. [`endpoint`] serves local directories as S3 buckets on
//! 127.0.0.1 (over [`fs`]), and [`pipeline`] maps the definition's function ARNs to the
//! in-process planner, converter and reducer handlers. No Lambda links any of it.

pub mod endpoint;
pub mod fs;
mod list;
pub mod pipeline;

pub use endpoint::{LocalBucket, LocalS3};
pub use fs::LocalFs;
