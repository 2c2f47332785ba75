//! The csvlake command line's library: local execution of the pipeline ([`local`]), which the
//! `csvlake` binary and the end-to-end tests use.

pub mod local;
