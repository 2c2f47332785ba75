//! The CSV decoder on arbitrary bytes, the way the converter drives it.
//!
//! The first byte of the input chooses the options (see [`options`]): a given or detected
//! delimiter, quote, escape and header, a comment prefix and null tokens, a given encoding. The
//! rest is the object's raw bytes: plain, gzip or zstd, in any encoding. They go through the
//! whole decode loop: `CsvDecoder::new`, `next_batch` until the end, and a new pass whenever the
//! decoder asks for one, restarted as the converter restarts it (widened kinds as the floor and
//! the dialect of the pass; or another encoding, with the job's dialect), at most
//! [`MAX_PASSES`] passes.
//!
//! The limits are small (a 64 KiB field, a 256 KiB record, 1000 columns, 8 MiB of text, a
//! sample of 8 rows), so that libFuzzer's `-rss_limit_mb` and `-malloc_limit_mb` catch memory
//! that the limits do not bound (fuzz/README.md).
//!
//! What it checks, besides that nothing panics, overflows or hangs:
//! - every failure is bad input: an internal error (a bug, by the engine's own definition) or a
//!   transient one (which a byte slice cannot cause) fails the target;
//! - a widening makes progress: the kinds it returns hold the kinds of the pass and differ from
//!   them, and have one kind per column; otherwise the converter would restart forever;
//! - a new encoding is asked for at most once, and never when the encoding was given;
//! - the passes settle within [`MAX_PASSES`], as the converter requires;
//! - a finished decode is consistent: every batch has the decoder's schema and at most
//!   `batch_rows` rows (none empty), and the rows of the batches add up to `rows()`.

#![no_main]

use csvlake_engine::Error;
use csvlake_engine::decode::{CsvDecoder, DecodeOptions, Dialect, Interrupt};
use csvlake_engine::options::CsvOptions;
use csvlake_engine::records::Limits;
use libfuzzer_sys::fuzz_target;

/// Passes the converter makes at most before it gives up on a file.
const MAX_PASSES: usize = 8;
/// Rows per batch: small and odd, so that batches end anywhere.
const BATCH_ROWS: usize = 5;

/// The options that the first byte of an input chooses:
///
/// | bits | 0 | 1 | 2 | 3 |
/// |---|---|---|---|---|
/// | 0–1 delimiter | detected | `,` | `;` | tab |
/// | 2–3 quote | detected | `"` | `'` | none |
/// | 4–5 header, escape | detected | header | no header | escape `\` given |
/// | 6–7 comment, nulls, encoding | detected | comment `#`, nulls `""` and `NA` | windows-1252 | utf-16le |
fn options(bits: u8) -> DecodeOptions {
    let mut csv = CsvOptions::default();
    csv = match bits & 3 {
        0 => csv,
        1 => csv.with_delimiter(','),
        2 => csv.with_delimiter(';'),
        _ => csv.with_delimiter('\t'),
    };
    csv = match (bits >> 2) & 3 {
        0 => csv,
        1 => csv.with_quote(Some('"')),
        2 => csv.with_quote(Some('\'')),
        _ => csv.with_quote(None),
    };
    csv = match (bits >> 4) & 3 {
        0 => csv,
        1 => csv.with_header(true),
        2 => csv.with_header(false),
        _ => csv.with_escape(Some('\\')),
    };
    csv = match (bits >> 6) & 3 {
        0 => csv,
        1 => csv.with_comment(Some("#".into())).with_null_values(vec![String::new(), "NA".into()]),
        2 => csv.with_encoding("windows-1252"),
        _ => csv.with_encoding("utf-16le"),
    };
    csv.validate().expect("the fuzzed options are valid");
    let opts = DecodeOptions::for_file(&csv, "fuzz.csv").expect("options for a file");
    DecodeOptions {
        limits: Limits { field_bytes: 64 << 10, record_bytes: 256 << 10, columns: 1000 },
        max_bytes: 8 << 20,
        sample_rows: 8,
        batch_rows: BATCH_ROWS,
        ..opts
    }
}

/// One pass: the decoder's dialect (once it got that far) and how the pass ended.
fn pass(bytes: &[u8], opts: &DecodeOptions) -> (Option<Dialect>, Result<(), Interrupt>) {
    let mut decoder = match CsvDecoder::new(bytes, opts) {
        Ok(d) => d,
        Err(e) => return (None, Err(e)),
    };
    let dialect = Some(decoder.dialect().clone());
    let schema = decoder.schema();
    let mut rows = 0u64;
    loop {
        match decoder.next_batch() {
            Ok(Some(batch)) => {
                assert_eq!(batch.schema(), schema, "a batch has the decoder's schema");
                assert!((1..=BATCH_ROWS).contains(&batch.num_rows()), "{} rows in a batch", batch.num_rows());
                rows += batch.num_rows() as u64;
            }
            Ok(None) => {
                assert_eq!(rows, decoder.rows(), "the batches hold the rows decoded");
                assert_eq!(decoder.next_batch().map(|b| b.is_none()).ok(), Some(true), "the end stays the end");
                return (dialect, Ok(()));
            }
            Err(Interrupt::Widen(kinds)) => {
                let before = decoder.kinds();
                assert_eq!(kinds.len(), before.len(), "a widening keeps the columns");
                assert!(
                    before.iter().zip(&kinds).all(|(b, k)| b.join(*k) == *k),
                    "a widening only widens: {before:?} → {kinds:?}"
                );
                assert_ne!(before, kinds.as_slice(), "a widening changes a kind");
                return (dialect, Err(Interrupt::Widen(kinds)));
            }
            Err(e) => return (dialect, Err(e)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&bits, bytes)) = data.split_first() else { return };
    let job = options(bits);
    let mut opts = job.clone();
    let mut reencoded = false;
    for _ in 0..MAX_PASSES {
        let (dialect, result) = pass(bytes, &opts);
        let again = match result {
            Ok(()) => return,
            Err(Interrupt::Error(Error::BadInput { .. })) => return,
            Err(Interrupt::Error(e)) => panic!("not a bad-input error: {e}"),
            Err(again) => again,
        };
        // Restarted as the converter restarts: with the dialect of this pass.
        if let Some(d) = &dialect {
            opts.dialect = d.given(opts.dialect.comment.take());
        }
        match again {
            Interrupt::Widen(kinds) => opts.floor = Some(kinds),
            Interrupt::Reencode(encoding) => {
                assert!(job.encoding.is_none(), "a new encoding is asked for, though the encoding was given");
                assert!(!reencoded, "a second new encoding is asked for");
                reencoded = true;
                opts.encoding = Some(encoding);
                opts.floor = None;
                opts.dialect = job.dialect.clone();
            }
            Interrupt::Error(_) => unreachable!(),
        }
    }
    panic!("the kinds did not settle in {MAX_PASSES} passes");
});
