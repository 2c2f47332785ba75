//! `gen-corpus`: writes deterministic synthetic CSV corpora for the csvlake benchmarks.
//!
//! Every file has the same ten columns, chosen so that schema inference yields
//! `id int64, account int64, amount float64 (nullable), active bool, name utf8,
//! event_time timestamp, event_date date32, region utf8 (nullable), qty int64,
//! score float64`. Output is a pure function of the arguments: the same seed
//! always produces byte-identical files.
//!
//! ```text
//! gen-corpus --out DIR [--rows N | --bytes B] [--files K] [--seed S]
//! ```
//!
//! With `--files 1` (the default) the corpus is `DIR/large.csv`; with `K > 1` it
//! is `DIR/part-00000.csv` .. `DIR/part-{K-1}.csv`, each holding `N` rows (or
//! reaching `B` bytes). The `id` column keeps counting across part files.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Parser;

/// The CSV header line, in column order.
const HEADER: &str = "id,account,amount,active,name,event_time,event_date,region,qty,score\n";

/// Days from 1970-01-01 to 2025-01-01, the start of the `event_time` range.
const START_DAY: i64 = 20_089;

/// Number of days covered by `event_time` (all of 2025 and 2026).
const SPAN_DAYS: usize = 730;

/// Given names used to build the `name` column.
const FIRST_NAMES: &[&str] = &[
    "Ann", "Bo", "Cy", "Dan", "Eva", "Finn", "Gus", "Ida", "Jo", "Kai", "Lea", "Max", "Nia", "Otto", "Pia", "Raj",
    "Sam", "Tea", "Uma", "Vic", "Wu", "Yan", "Zoe", "Ola",
];

/// Family names used to build the `name` column.
const LAST_NAMES: &[&str] = &[
    "Lee", "Kim", "Ng", "Roy", "Diaz", "Park", "Ito", "Moss", "Vega", "Kahn", "Sato", "Berg", "Ruiz", "Li", "Cole",
    "Fox", "Wolf", "Hale", "Nash", "Oda", "Rao", "Shaw", "Tan", "Yu",
];

/// Nicknames, inserted in double quotes for the names that contain a quote.
const NICKNAMES: &[&str] = &["Al", "Bee", "Doc", "Kit", "Red", "Ace"];

/// Values of the `region` column.
const REGIONS: &[&str] = &["eu-west", "eu-north", "us-east", "us-west", "ap-south", "ap-east", "sa-east", "af-south"];

/// Command-line arguments of `gen-corpus`.
#[derive(Debug, Parser)]
#[command(name = "gen-corpus", version, about = "Write a deterministic synthetic CSV corpus")]
struct Args {
    /// Directory to write the CSV files into (created if missing).
    #[arg(long)]
    out: PathBuf,

    /// Rows per file.
    #[arg(long, default_value_t = 2_000_000, conflicts_with = "bytes")]
    rows: u64,

    /// Write whole rows until each file holds at least this many bytes (instead of --rows).
    #[arg(long)]
    bytes: Option<u64>,

    /// Number of files: 1 writes `large.csv`, more write `part-NNNNN.csv`.
    #[arg(long, default_value_t = 1)]
    files: u32,

    /// Seed of the pseudo-random generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// When a file is complete.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// After exactly this many rows.
    Rows(u64),
    /// As soon as the file (header included) holds at least this many bytes.
    Bytes(u64),
}

/// SplitMix64, a tiny, fast and deterministic 64-bit pseudo-random generator.
struct SplitMix64 {
    /// Current state; advanced by the golden-ratio increment on every draw.
    state: u64,
}

impl SplitMix64 {
    /// Creates a generator from a seed.
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Returns the next 64 pseudo-random bits.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a value uniformly distributed in `0..n` (multiply-shift, no modulo bias worth noting).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Picks one element of a non-empty slice.
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian `(year, month, day)`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Precomputes the `YYYY-MM-DD` text of every day in the `event_time` range.
fn date_table() -> Vec<[u8; 10]> {
    (0..SPAN_DAYS as i64)
        .map(|offset| {
            let (y, m, d) = civil_from_days(START_DAY + offset);
            let text = format!("{y:04}-{m:02}-{d:02}");
            let mut out = [0u8; 10];
            out.copy_from_slice(text.as_bytes());
            out
        })
        .collect()
}

/// Appends the decimal digits of `value`.
fn push_u64(buf: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

/// Appends `value` as exactly `width` digits, left-padded with zeros.
fn push_padded(buf: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    for slot in buf[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Appends a field, quoting it per RFC 4180 when it holds a quote, comma or line break.
fn push_field(buf: &mut Vec<u8>, field: &str) {
    if field.bytes().any(|b| matches!(b, b'"' | b',' | b'\n' | b'\r')) {
        buf.push(b'"');
        for b in field.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(field.as_bytes());
    }
}

/// Builds one person-like name; about 3% hold a double quote, 3% a comma and 1% a newline.
fn make_name(rng: &mut SplitMix64, scratch: &mut String) {
    scratch.clear();
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    match rng.below(100) {
        0..=2 => {
            scratch.push_str(first);
            scratch.push_str(" \"");
            scratch.push_str(rng.pick(NICKNAMES));
            scratch.push_str("\" ");
            scratch.push_str(last);
        }
        3..=5 => {
            scratch.push_str(last);
            scratch.push_str(", ");
            scratch.push_str(first);
        }
        6 => {
            scratch.push_str(first);
            scratch.push('\n');
            scratch.push_str(last);
        }
        _ => {
            scratch.push_str(first);
            scratch.push(' ');
            scratch.push_str(last);
        }
    }
}

/// Generates CSV rows into a reusable line buffer.
struct RowWriter {
    /// Pseudo-random source for every column.
    rng: SplitMix64,
    /// `YYYY-MM-DD` text of each day of the range.
    dates: Vec<[u8; 10]>,
    /// Scratch space for the unquoted `name` value.
    name: String,
}

impl RowWriter {
    /// Creates a row writer seeded with `seed`.
    fn new(seed: u64) -> Self {
        Self { rng: SplitMix64::new(seed), dates: date_table(), name: String::with_capacity(32) }
    }

    /// Appends one complete CSV line (with trailing `\n`) for row `id`.
    ///
    /// When `full` is set (first row of each file) no field is left empty, so
    /// a reader inferring types from the leading rows sees every column filled.
    fn push_row(&mut self, buf: &mut Vec<u8>, id: u64, full: bool) {
        let rng = &mut self.rng;

        // id
        push_u64(buf, id);
        buf.push(b',');

        // account: six digits
        push_u64(buf, 100_000 + rng.below(900_000));
        buf.push(b',');

        // amount: two decimals, ~10% negative, ~5% null (never in a `full` row)
        if full || rng.below(100) >= 5 {
            if rng.below(10) == 0 {
                buf.push(b'-');
            }
            let cents = rng.below(500_000);
            push_u64(buf, cents / 100);
            buf.push(b'.');
            push_padded(buf, cents % 100, 2);
        }
        buf.push(b',');

        // active
        buf.extend_from_slice(if rng.below(2) == 0 { b"true," } else { b"false," });

        // name
        make_name(rng, &mut self.name);
        push_field(buf, &self.name);
        buf.push(b',');

        // event_time and event_date: same instant, millisecond precision, UTC
        let day = rng.below(SPAN_DAYS as u64) as usize;
        let millis_of_day = rng.below(86_400_000);
        let date = &self.dates[day];
        let secs = millis_of_day / 1000;
        buf.extend_from_slice(date);
        buf.push(b'T');
        push_padded(buf, secs / 3600, 2);
        buf.push(b':');
        push_padded(buf, secs / 60 % 60, 2);
        buf.push(b':');
        push_padded(buf, secs % 60, 2);
        buf.push(b'.');
        push_padded(buf, millis_of_day % 1000, 3);
        buf.extend_from_slice(b"Z,");
        buf.extend_from_slice(date);
        buf.push(b',');

        // region: ~10% null (never in a `full` row)
        if full || rng.below(10) != 0 {
            buf.extend_from_slice(rng.pick(REGIONS).as_bytes());
        }
        buf.push(b',');

        // qty: -5..=500
        let qty = rng.below(506) as i64 - 5;
        if qty < 0 {
            buf.push(b'-');
        }
        push_u64(buf, qty.unsigned_abs());
        buf.push(b',');

        // score: always `0.dddddd`
        buf.extend_from_slice(b"0.");
        push_padded(buf, rng.below(1_000_000), 6);
        buf.push(b'\n');
    }
}

/// Writes one CSV file; returns `(rows, bytes)` written. `next_id` is advanced past the rows.
fn write_file(path: &Path, rows: &mut RowWriter, limit: Limit, next_id: &mut u64) -> Result<(u64, u64)> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(256);
    out.write_all(HEADER.as_bytes())?;
    let mut bytes = HEADER.len() as u64;
    let mut count = 0u64;
    loop {
        let done = match limit {
            Limit::Rows(n) => count >= n,
            Limit::Bytes(b) => bytes >= b,
        };
        if done {
            break;
        }
        line.clear();
        rows.push_row(&mut line, *next_id, count == 0);
        out.write_all(&line)?;
        bytes += line.len() as u64;
        count += 1;
        *next_id += 1;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok((count, bytes))
}

/// Entry point: parses arguments and writes the corpus.
fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.files >= 1, "--files must be at least 1");
    let limit = match args.bytes {
        Some(b) => Limit::Bytes(b),
        None => Limit::Rows(args.rows),
    };
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let started = Instant::now();
    let mut rows = RowWriter::new(args.seed);
    let mut next_id = 1u64;
    let (mut total_rows, mut total_bytes) = (0u64, 0u64);
    for index in 0..args.files {
        let name = if args.files == 1 { "large.csv".to_owned() } else { format!("part-{index:05}.csv") };
        let (r, b) = write_file(&args.out.join(name), &mut rows, limit, &mut next_id)?;
        total_rows += r;
        total_bytes += b;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "gen-corpus: {} file(s), {total_rows} rows, {total_bytes} bytes ({:.1} MB) in {secs:.2}s -> {}",
        args.files,
        total_bytes as f64 / 1e6,
        args.out.display()
    );
    Ok(())
}

/// Unit tests of the formatting helpers and determinism.
#[cfg(test)]
mod tests {
    use super::*;

    /// Day numbers map to the expected calendar dates.
    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(START_DAY), (2025, 1, 1));
        assert_eq!(civil_from_days(START_DAY + 365), (2026, 1, 1));
        assert_eq!(civil_from_days(START_DAY + SPAN_DAYS as i64 - 1), (2026, 12, 31));
    }

    /// Fields with quotes are wrapped and their quotes doubled; plain fields are not.
    #[test]
    fn quoting() {
        let mut buf = Vec::new();
        push_field(&mut buf, "Ann \"Al\" Lee");
        assert_eq!(buf, b"\"Ann \"\"Al\"\" Lee\"");
        buf.clear();
        push_field(&mut buf, "Ann Lee");
        assert_eq!(buf, b"Ann Lee");
    }

    /// The same seed yields the same rows.
    #[test]
    fn deterministic_rows() {
        let (mut a, mut b) = (RowWriter::new(7), RowWriter::new(7));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for id in 1..=100 {
            a.push_row(&mut x, id, id == 1);
            b.push_row(&mut y, id, id == 1);
        }
        assert_eq!(x, y);
    }

    /// The corpus infers to the schema the benchmark promises, through the real decoder, and
    /// decodes in full without widening.
    #[test]
    fn corpus_infers_the_documented_schema() {
        use arrow::datatypes::{DataType, TimeUnit};
        use csvlake_engine::decode::{CsvDecoder, DecodeOptions};

        let mut rows = RowWriter::new(42);
        let mut csv = HEADER.as_bytes().to_vec();
        for id in 1..=30_000 {
            rows.push_row(&mut csv, id, id == 1);
        }
        let mut decoder = CsvDecoder::new(csv.as_slice(), &DecodeOptions::default()).unwrap();
        let schema = decoder.schema();
        let types: Vec<(&str, DataType)> =
            schema.fields().iter().map(|f| (f.name().as_str(), f.data_type().clone())).collect();
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(
            types,
            vec![
                ("id", DataType::Int64),
                ("account", DataType::Int64),
                ("amount", DataType::Float64),
                ("active", DataType::Boolean),
                ("name", DataType::Utf8),
                ("event_time", utc),
                ("event_date", DataType::Date32),
                ("region", DataType::Utf8),
                ("qty", DataType::Int64),
                ("score", DataType::Float64),
            ]
        );
        let (mut total, mut amount_nulls, mut region_nulls) = (0, 0, 0);
        while let Some(batch) = decoder.next_batch().map_err(|e| format!("{e:?}")).unwrap() {
            total += batch.num_rows();
            amount_nulls += batch.column(2).null_count();
            region_nulls += batch.column(7).null_count();
        }
        assert_eq!(total, 30_000);
        assert!(amount_nulls > 0 && region_nulls > 0, "amount and region have nulls");
    }
}
