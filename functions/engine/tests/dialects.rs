//! Random typed tables, written in random dialects, convert cell for cell.
//!
//! Each case generates a [`Table`] (1–8 columns of int64, float64, boolean, date, timestamp or
//! text, 1–300 rows, some nulls) and a [`WriteDialect`] (delimiter, quote and quoting style,
//! line ends, trailing line end, header or not, a preamble, BOM, encoding, compression), writes
//! the CSV with [`write_csv`], and converts it with every dialect option left to detection, as
//! the pipeline does: [`DecodeOptions::for_file`] over `CsvOptions::default()`, starting the file
//! again whenever the decoder asks to widen or to re-encode. It then checks that
//!
//! - the detected [`Dialect`] is the one written: delimiter, quote, no escape, header,
//!   skipped lines, encoding name and compression;
//! - the inferred Arrow types are the generated ones, and the column names the written ones;
//! - every cell of the decoded batches, of the Parquet file read back by parquet's Arrow reader
//!   and of the Avro file read back by apache-avro equals the generated value: floats bit for
//!   bit, text byte for byte, dates as days, timestamps as microseconds, nulls as nulls.
//!
//! What is generated stays inside what the engine promises to detect, so that a failure is a bug
//! and not an ambiguous file:
//!
//! - text values start with a letter (after optional spaces), so they never read as numbers,
//!   dates or booleans; floats are written in their shortest form (`{}`, or `{:e}` where `{}`
//!   would print an integer beyond ±2^53 or a long run of digits), and every float column holds
//!   at least one value that does not look like an integer, without which it is rightly an
//!   int64 column. A column without any value is text (the engine's documented choice);
//! - a table written without a header has at least two rows and a numeric column with a value
//!   below the first row, so that the first row is detectably data; in half of those cases the
//!   options give `header: false`;
//! - a one-column table writes its null as a quoted empty field (an empty line is skipped, as in
//!   every CSV reader), its text holds no other candidate delimiter (with one column, any would
//!   split some row and make the file ambiguous by design), its preamble is `#` comments only
//!   (a title line is a row like any other), and its delimiter is not checked: there is none to
//!   detect;
//! - text holds the candidate delimiters that are not the file's only when a header row, which
//!   never holds them, tells the real delimiter from a foreign one that would split every row
//!   alike;
//! - `'` quoting is written only when a field must be quoted to be read (it holds the
//!   delimiter or a line break) and the table has a header and two columns or more: where
//!   quoting is not needed, `"` reads the same rows and is preferred by design, and without a
//!   header a `'`-quoted delimiter in every row reads as one more column under `"`. With `"`,
//!   text is either always quoted or quoted when needed; a file with nothing quoted is still
//!   detected with `"`, the default;
//! - windows-1252 is expected when the text has a character beyond ASCII; ASCII-only text is
//!   the same bytes in UTF-8, which is what is detected. Its text beyond ASCII is words
//!   (`Müller`, `Straße`), from which chardetng can tell the encoding; a few letters alone may
//!   as well be Turkish or Cyrillic. Some windows-1252 files hold nothing beyond ASCII in their
//!   first 64 KiB, so that the decoder reads them as UTF-8 until its last row and starts again.

use std::io::Write;

use arrow::array::{Array, AsArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use csvlake_engine::decode::{DecodeOptions, Dialect};
use csvlake_engine::input::Compression;
use csvlake_engine::options::{CsvOptions, Format};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod common;
use common::{decode, write};

/// Largest integer magnitude a float64 holds exactly.
const EXACT: i64 = 1 << 53;

/// The type of a generated column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
    Text,
}

impl Type {
    /// The Arrow type the engine infers for a column of this type with at least one value.
    fn data_type(self) -> DataType {
        match self {
            Type::Int => DataType::Int64,
            Type::Float => DataType::Float64,
            Type::Bool => DataType::Boolean,
            Type::Date => DataType::Date32,
            Type::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Type::Text => DataType::Utf8,
        }
    }
}

/// A value as the outputs hold it.
#[derive(Clone, Debug)]
enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01T00:00:00.
    Timestamp(i64),
    Text(String),
}

/// Floats are equal bit for bit: `-0.0` is not `0.0`.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            _ => false,
        }
    }
}

/// A non-null cell: its value and the text written for it.
#[derive(Clone, Debug)]
struct Cell {
    value: Value,
    text: String,
}

/// A generated table; `rows[r][c]` is `None` for a null (an empty field).
#[derive(Clone, Debug)]
struct Table {
    names: Vec<String>,
    types: Vec<Type>,
    rows: Vec<Vec<Option<Cell>>>,
}

impl Table {
    fn column(&self, c: usize) -> impl Iterator<Item = &Option<Cell>> {
        self.rows.iter().map(move |r| &r[c])
    }

    /// The Arrow type expected of column `c`: a column without a value is text.
    fn data_type(&self, c: usize) -> DataType {
        if self.column(c).all(Option::is_none) { DataType::Utf8 } else { self.types[c].data_type() }
    }
}

/// How text fields are quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quoting {
    /// Every text field, whether it needs it or not.
    AlwaysText,
    /// Fields that hold the delimiter, the quote or a line break.
    WhenNeeded,
}

/// The encoding of the written bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Windows1252,
    Utf16Le,
    Utf16Be,
}

impl Encoding {
    /// Words beyond ASCII that text may hold in this encoding. A legacy encoding is guessed from
    /// its letters in context, as chardetng reads them, so text in windows-1252 holds words.
    fn non_ascii(self) -> &'static [&'static str] {
        match self {
            Encoding::Windows1252 => &["Café", "Müller", "Straße", "Señor", "12 €", "Zürich", "Genève", "ÜBER"],
            _ => &["Café", "Müller", "Straße", "12 €", "é", "ü", "€", "Ω", "日本", "🙂", "\u{a0}"],
        }
    }
}

/// Lines before the header.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Preamble {
    None,
    /// A title line (one field, no delimiter).
    Title(String),
    /// `#` comment lines.
    Comments(Vec<String>),
}

impl Preamble {
    fn lines(&self) -> Vec<String> {
        match self {
            Preamble::None => Vec::new(),
            Preamble::Title(t) => vec![t.clone()],
            Preamble::Comments(c) => c.clone(),
        }
    }
}

/// How a table is written, and the key the object is stored under.
#[derive(Clone, Debug)]
struct WriteDialect {
    delimiter: char,
    quote: char,
    quoting: Quoting,
    line_end: &'static str,
    trailing_line_end: bool,
    header: bool,
    /// Whether the options give `header: false` (only without a header).
    give_no_header: bool,
    preamble: Preamble,
    bom: bool,
    /// In windows-1252: the first non-ASCII character comes after the engine's 64 KiB encoding
    /// sample (which then reads as UTF-8), so the decoder must start the file again.
    late_non_ascii: bool,
    encoding: Encoding,
    compression: Compression,
    key: String,
}

/// Decoder settings besides the dialect: small samples make the decoder widen, small batches
/// split the rows.
#[derive(Clone, Debug)]
struct ReadSettings {
    sample_rows: Option<usize>,
    batch_rows: Option<usize>,
}

const DELIMITERS: [char; 4] = [',', ';', '\t', '|'];

fn dialect_strategy() -> impl Strategy<Value = WriteDialect> {
    let encoding = prop_oneof![
        3 => Just(Encoding::Utf8),
        2 => Just(Encoding::Windows1252),
        1 => Just(Encoding::Utf16Le),
        1 => Just(Encoding::Utf16Be),
    ];
    let compression =
        prop_oneof![2 => Just(Compression::None), 1 => Just(Compression::Gzip), 1 => Just(Compression::Zstd)];
    let preamble = prop_oneof![
        4 => Just(Preamble::None),
        1 => prop::sample::select(vec!["Sales report", "Exported 2024-01-01 by ledger", "Stations and readings"])
            .prop_map(|t| Preamble::Title(t.to_owned())),
        1 => prop::collection::vec(
            prop::sample::select(vec!["# generated by ledger", "# version 2, revision 7", "#", "# source: meters; unit: m"]),
            1..4
        )
        .prop_map(|c| Preamble::Comments(c.into_iter().map(str::to_owned).collect())),
    ];
    (
        prop::sample::select(DELIMITERS.to_vec()),
        prop_oneof![
            2 => Just(('"', Quoting::WhenNeeded)),
            1 => Just(('"', Quoting::AlwaysText)),
            1 => Just(('\'', Quoting::WhenNeeded)),
        ],
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
        any::<bool>(),
        (prop::bool::weighted(0.75), any::<bool>()),
        preamble,
        (any::<bool>(), encoding, compression, prop::bool::weighted(0.2)),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                delimiter,
                (quote, quoting),
                line_end,
                trailing_line_end,
                (header, give),
                preamble,
                (bom, encoding, compression, late),
                (tsv, suffix),
            )| {
                // `'` quoting, and text beyond ASCII after 64 KiB, are written only with a header.
                let late_non_ascii = late && encoding == Encoding::Windows1252;
                let header = header || quote == '\'' || late_non_ascii;
                let mut key = if delimiter == '\t' && tsv { "in/t.tsv" } else { "in/t.csv" }.to_owned();
                if suffix {
                    key.push_str(match compression {
                        Compression::Gzip => ".gz",
                        Compression::Zstd => ".zst",
                        Compression::None => "",
                    });
                }
                WriteDialect {
                    delimiter,
                    quote,
                    quoting,
                    line_end,
                    trailing_line_end,
                    header,
                    give_no_header: !header && give,
                    preamble,
                    bom: bom && encoding == Encoding::Utf8,
                    late_non_ascii,
                    encoding,
                    compression,
                    key,
                }
            },
        )
}

fn int_cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        4 => -1000i64..1000,
        4 => -EXACT..=EXACT,
        1 => prop::sample::select(vec![EXACT, -EXACT, EXACT - 1, 1 - EXACT, 0, -1]),
    ]
    .prop_map(|i| Cell { value: Value::Int(i), text: i.to_string() })
}

/// A float written so that it reads back exactly and as a float (or as an integer that a
/// float holds exactly).
fn float_cell(x: f64, scientific: bool) -> Cell {
    let plain = format!("{x}");
    let integral = !plain.contains('.');
    let negative_zero = x == 0.0 && x.is_sign_negative();
    let text = if scientific || negative_zero || plain.len() > 24 || (integral && x.abs() > EXACT as f64) {
        format!("{x:e}")
    } else {
        plain
    };
    Cell { value: Value::Float(x), text }
}

fn float_strategy() -> impl Strategy<Value = Cell> {
    let value = prop_oneof![
        2 => prop::sample::select(vec![
            0.1, 1e-5, -2.5e10, 0.0, -0.0, 1.5, -7.25, 3.0, f64::MIN_POSITIVE, 5e-324, f64::MAX, -f64::MAX, 1e21,
            123_456.789, 9_007_199_254_740_993.0,
        ]),
        2 => -1e6..1e6f64,
        2 => (-1_000_000i64..1_000_000, 0i32..7).prop_map(|(k, d)| k as f64 / 10f64.powi(d)),
        1 => any::<f64>().prop_filter("finite", |x| x.is_finite()),
    ];
    (value, prop::bool::weighted(0.3)).prop_map(|(x, sci)| float_cell(x, sci))
}

fn bool_cell() -> impl Strategy<Value = Cell> {
    (any::<bool>(), 0..3usize).prop_map(|(b, case)| {
        let text = match (b, case) {
            (true, 0) => "true",
            (true, 1) => "TRUE",
            (true, _) => "True",
            (false, 0) => "false",
            (false, 1) => "FALSE",
            (false, _) => "False",
        };
        Cell { value: Value::Bool(b), text: text.to_owned() }
    })
}

/// Days since 1970-01-01 of 0001-01-01 and of 9999-12-31.
const FIRST_DAY: i32 = -719_162;
const LAST_DAY: i32 = 2_932_896;

fn ymd(days: i32) -> String {
    let d = chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0).expect("a day in range").date_naive();
    use chrono::Datelike;
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

fn date_cell() -> impl Strategy<Value = Cell> {
    prop_oneof![FIRST_DAY..=LAST_DAY, -20_000i32..30_000]
        .prop_map(|days| Cell { value: Value::Date(days), text: ymd(days) })
}

fn timestamp_cell() -> impl Strategy<Value = Cell> {
    (prop_oneof![FIRST_DAY..=LAST_DAY, -20_000i32..30_000], 0i64..86_400, prop::option::of(0i64..1_000_000)).prop_map(
        |(days, secs, micros)| {
            let mut text = format!("{}T{:02}:{:02}:{:02}", ymd(days), secs / 3600, secs / 60 % 60, secs % 60);
            if let Some(us) = micros {
                text.push_str(&format!(".{us:06}"));
            }
            let value = (i64::from(days) * 86_400 + secs) * 1_000_000 + micros.unwrap_or(0);
            Cell { value: Value::Timestamp(value), text }
        },
    )
}

/// Text that never reads as another type: optional spaces, a letter, then pieces that may hold
/// the delimiter, quotes, line breaks and characters beyond ASCII.
fn text_cell(d: &WriteDialect, ncols: usize) -> impl Strategy<Value = Cell> + use<> {
    let mut pieces: Vec<String> =
        ["alpha", "Bo", "x", "lorem ipsum", "42", "3.5", "2024-01-01", " ", "-", "#", "\\"].map(str::to_owned).to_vec();
    pieces.extend([d.delimiter.to_string(), "\"".into(), "'".into(), "\"\"".into(), "\r".into(), "\n".into()]);
    pieces.push("\r\n".into());
    // Now and then a long value, so that some files are larger than the engine's 64 KiB
    // encoding sample, and text beyond ASCII may first come after it.
    pieces.push("lorem ipsum dolor sit amet ".repeat(12));
    if !d.late_non_ascii {
        pieces.extend(d.encoding.non_ascii().iter().map(|s| (*s).to_owned()));
    }
    if ncols > 1 && d.header {
        pieces.extend(DELIMITERS.iter().filter(|c| **c != d.delimiter).map(char::to_string));
    }
    let mut first = vec!["a", "k", "Q", "z"];
    if !d.late_non_ascii {
        first.extend(["é", "Ü"]);
    }
    let first = prop::sample::select(first);
    (0..3usize, first, prop::collection::vec(prop::sample::select(pieces), 0..6), 0..3usize).prop_map(
        |(lead, first, pieces, trail)| {
            let text = format!("{}{first}{}{}", " ".repeat(lead), pieces.concat(), " ".repeat(trail));
            Cell { value: Value::Text(text.clone()), text }
        },
    )
}

fn cell_strategy(t: Type, d: &WriteDialect, ncols: usize) -> BoxedStrategy<Cell> {
    match t {
        Type::Int => int_cell().boxed(),
        Type::Float => float_strategy().boxed(),
        Type::Bool => bool_cell().boxed(),
        Type::Date => date_cell().boxed(),
        Type::Timestamp => timestamp_cell().boxed(),
        Type::Text => text_cell(d, ncols).boxed(),
    }
}

fn type_strategy() -> impl Strategy<Value = Type> {
    prop::sample::select(vec![Type::Int, Type::Float, Type::Bool, Type::Date, Type::Timestamp, Type::Text, Type::Text])
}

/// Column names: plain identifiers that never read as a value.
fn names(ncols: usize) -> Vec<String> {
    const WORDS: [&str; 8] = ["id", "name", "amount", "city", "created_at", "flag", "note", "price"];
    (0..ncols).map(|c| format!("{}_{c}", WORDS[c % WORDS.len()])).collect()
}

fn table_strategy(d: &WriteDialect) -> impl Strategy<Value = Table> + use<> {
    let d = d.clone();
    // `'` quoting and a title line need two columns; no header needs two rows.
    let min_cols = if d.quote == '\'' || matches!(d.preamble, Preamble::Title(_)) { 2 } else { 1 };
    let min_rows = if d.late_non_ascii {
        80
    } else if d.header {
        1
    } else {
        2
    };
    let shape = (
        prop::collection::vec(type_strategy(), min_cols..=8),
        prop_oneof![3 => min_rows..=min_rows.max(12), 1 => min_rows..=300usize],
        prop::sample::select(vec![0.02, 0.1, 0.3, 0.9]),
    );
    shape.prop_flat_map(move |(types, nrows, null_share)| {
        let ncols = types.len();
        let columns: Vec<BoxedStrategy<Vec<Option<Cell>>>> = types
            .iter()
            .map(|t| {
                let cell = prop::option::weighted(1.0 - null_share, cell_strategy(*t, &d, ncols));
                prop::collection::vec(cell, nrows).boxed()
            })
            .collect();
        let d = d.clone();
        (Just(types), columns).prop_map(move |(types, columns)| complete(&d, types, columns))
    })
}

/// Builds the table and makes it hold what the module doc promises.
fn complete(d: &WriteDialect, mut types: Vec<Type>, mut columns: Vec<Vec<Option<Cell>>>) -> Table {
    let ncols = types.len();
    let last = columns[0].len() - 1;
    if !d.header && !types.iter().any(|t| matches!(t, Type::Int | Type::Float)) {
        types[0] = Type::Int;
        columns[0] = columns[0].iter().enumerate().map(|(r, _)| Some(int(r as i64 - 1))).collect();
    }
    if !d.header {
        // A numeric column with a value below the first row.
        let c = types.iter().position(|t| matches!(t, Type::Int | Type::Float)).unwrap_or(0);
        if columns[c][1..].iter().all(Option::is_none) {
            columns[c][last] = Some(if types[c] == Type::Int { int(7) } else { float_cell(0.5, false) });
        }
    }
    for (c, t) in types.iter().enumerate() {
        // A float column with only integers is an int64 column; the value goes below the first
        // row, so that the first row of a table without a header stays data.
        let integral = |cell: &Option<Cell>| cell.as_ref().is_none_or(|v| !v.text.contains(['.', 'e']));
        if *t == Type::Float && columns[c].iter().skip(usize::from(!d.header)).all(integral) {
            columns[c][last] = Some(float_cell(0.25, false));
        }
    }
    if d.late_non_ascii {
        // About 1 KiB of ASCII per row, then a last row beyond ASCII.
        let c = match types.iter().position(|t| *t == Type::Text) {
            Some(c) => c,
            None => {
                types[ncols - 1] = Type::Text;
                ncols - 1
            }
        };
        let long = "lorem ipsum dolor sit amet ".repeat(40);
        for cell in &mut columns[c][..last] {
            *cell = Some(Cell { value: Value::Text(long.clone()), text: long.clone() });
        }
        let text = "Müller Straße Zürich".to_owned();
        columns[c][last] = Some(Cell { value: Value::Text(text.clone()), text });
    }
    if d.quote == '\'' {
        // A field that only `'` quoting reads right.
        let c = match types.iter().position(|t| *t == Type::Text) {
            Some(c) => c,
            None => {
                types[ncols - 1] = Type::Text;
                columns[ncols - 1] = vec![None; last + 1];
                ncols - 1
            }
        };
        let needs = |cell: &Option<Cell>| cell.as_ref().is_some_and(|v| v.text.contains([d.delimiter, '\r', '\n']));
        if !columns[c].iter().any(needs) {
            let text = format!("k{}it's", d.delimiter);
            columns[c][0] = Some(Cell { value: Value::Text(text.clone()), text });
        }
    }
    let rows = (0..=last).map(|r| columns.iter().map(|col| col[r].clone()).collect()).collect();
    Table { names: names(ncols), types, rows }
}

fn int(i: i64) -> Cell {
    Cell { value: Value::Int(i), text: i.to_string() }
}

/// Writes the table as CSV text in the dialect, before encoding and compression.
fn write_text(t: &Table, d: &WriteDialect) -> String {
    let q = d.quote.to_string();
    let quoted = |s: &str| format!("{q}{}{q}", s.replace(&q, &format!("{q}{q}")));
    let ncols = t.names.len();
    let mut lines: Vec<String> = d.preamble.lines();
    if d.header {
        lines.push(t.names.join(&d.delimiter.to_string()));
    }
    for row in &t.rows {
        let fields: Vec<String> = row
            .iter()
            .zip(&t.types)
            .map(|(cell, ty)| match cell {
                // An empty line is no record: a lone null is a quoted empty field.
                None if ncols == 1 => quoted(""),
                None => String::new(),
                Some(cell) => {
                    let needs = cell.text.contains([d.delimiter, d.quote, '\r', '\n']);
                    if *ty == Type::Text && (needs || d.quoting == Quoting::AlwaysText) {
                        quoted(&cell.text)
                    } else {
                        cell.text.clone()
                    }
                }
            })
            .collect();
        lines.push(fields.join(&d.delimiter.to_string()));
    }
    let mut text = lines.join(d.line_end);
    if d.trailing_line_end {
        text.push_str(d.line_end);
    }
    text
}

/// Writes the table as the bytes of an object: CSV text, encoded, compressed.
fn write_csv(t: &Table, d: &WriteDialect) -> Vec<u8> {
    let text = write_text(t, d);
    let encoded = match d.encoding {
        Encoding::Utf8 => {
            let mut out = if d.bom { vec![0xef, 0xbb, 0xbf] } else { Vec::new() };
            out.extend_from_slice(text.as_bytes());
            out
        }
        Encoding::Windows1252 => {
            let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
            assert!(!unmappable, "the generator only writes what windows-1252 holds");
            bytes.into_owned()
        }
        // encoding_rs encodes into UTF-8 for UTF-16 labels (as the WHATWG standard says).
        Encoding::Utf16Le => [0xff, 0xfe].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect(),
        Encoding::Utf16Be => [0xfe, 0xff].into_iter().chain(text.encode_utf16().flat_map(u16::to_be_bytes)).collect(),
    };
    match d.compression {
        Compression::None => encoded,
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&encoded).expect("gzip into memory");
            gz.finish().expect("gzip into memory")
        }
        Compression::Zstd => zstd::encode_all(&encoded[..], 3).expect("zstd into memory"),
    }
}

/// The dialect the engine must detect in what [`write_csv`] wrote.
fn expected_dialect(d: &WriteDialect, text: &str) -> Dialect {
    let encoding = match d.encoding {
        Encoding::Utf8 => "utf-8",
        Encoding::Windows1252 if text.is_ascii() => "utf-8",
        Encoding::Windows1252 => "windows-1252",
        Encoding::Utf16Le => "utf-16le",
        Encoding::Utf16Be => "utf-16be",
    };
    Dialect {
        delimiter: d.delimiter,
        quote: Some(d.quote),
        escape: None,
        header: d.header,
        skip_lines: d.preamble.lines().len() as u64,
        encoding: encoding.to_owned(),
        compression: d.compression,
    }
}

/// Cell `row` of an Arrow array.
fn arrow_value(array: &dyn Array, row: usize) -> Result<Option<Value>, String> {
    if array.is_null(row) {
        return Ok(None);
    }
    Ok(Some(match array.data_type() {
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Date32 => Value::Date(array.as_primitive::<Date32Type>().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            Value::Timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Utf8 => Value::Text(array.as_string::<i32>().value(row).to_owned()),
        other => return Err(format!("unexpected Arrow type {other}")),
    }))
}

/// A field of an Avro record.
fn avro_value(v: &apache_avro::types::Value) -> Result<Option<Value>, String> {
    use apache_avro::types::Value as Avro;
    Ok(Some(match v {
        Avro::Union(_, inner) => return avro_value(inner),
        Avro::Null => return Ok(None),
        Avro::Long(i) => Value::Int(*i),
        Avro::Double(x) => Value::Float(*x),
        Avro::Boolean(b) => Value::Bool(*b),
        Avro::Date(d) => Value::Date(*d),
        Avro::LocalTimestampMicros(t) => Value::Timestamp(*t),
        Avro::String(s) => Value::Text(s.clone()),
        other => return Err(format!("unexpected Avro value {other:?}")),
    }))
}

fn expected_cell(t: &Table, row: usize, col: usize) -> Option<Value> {
    t.rows[row][col].as_ref().map(|c| c.value.clone())
}

/// Converts the object and checks the dialect, the types and every cell of both outputs.
fn check(t: &Table, d: &WriteDialect, read: &ReadSettings) -> Result<(), String> {
    let text = write_text(t, d);
    let bytes = write_csv(t, d);
    let mut csv = CsvOptions::default();
    if d.give_no_header {
        csv = csv.with_header(false);
    }
    let mut opts = DecodeOptions::for_file(&csv, &d.key).map_err(|e| e.to_string())?;
    opts.sample_rows = read.sample_rows.unwrap_or(opts.sample_rows);
    opts.batch_rows = read.batch_rows.unwrap_or(opts.batch_rows);
    let (schema, plain, batches, dialect) = decode(&bytes, &opts).map_err(|e| format!("decoding failed: {e}"))?;

    let mut want = expected_dialect(d, &text);
    if t.names.len() == 1 {
        want.delimiter = dialect.delimiter;
    }
    if dialect != want {
        return Err(format!("dialect: detected {dialect:?}, written {want:?}"));
    }
    let ncols = t.names.len();
    let names: Vec<String> =
        if d.header { t.names.clone() } else { (1..=ncols).map(|i| format!("column_{i}")).collect() };
    let got_names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if got_names != names {
        return Err(format!("names: {got_names:?}, written {names:?}"));
    }
    let types: Vec<DataType> = (0..ncols).map(|c| t.data_type(c)).collect();
    let got_types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    if got_types != types {
        return Err(format!("types: inferred {got_types:?}, generated {types:?}"));
    }

    let compare = |what: &str, columns: &[&dyn Array]| -> Result<(), String> {
        for (c, array) in columns.iter().enumerate() {
            if array.len() != t.rows.len() {
                return Err(format!("{what}: column {c} has {} rows, written {}", array.len(), t.rows.len()));
            }
            for row in 0..t.rows.len() {
                let got = arrow_value(*array, row).map_err(|e| format!("{what}: {e}"))?;
                let want = expected_cell(t, row, c);
                if got != want {
                    return Err(format!("{what}: row {row}, column {c}: {got:?}, written {want:?}"));
                }
            }
        }
        Ok(())
    };
    let decoded = concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
    compare("decoded", &decoded.columns().iter().map(|a| a.as_ref()).collect::<Vec<_>>())?;

    let parquet = write(Format::Parquet, &schema, &plain, &batches);
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(parquet))
        .and_then(|b| b.build())
        .map_err(|e| format!("parquet: {e}"))?;
    let read_back: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(|e| format!("parquet: {e}"))?;
    let read_back = concat_batches(&schema, &read_back).map_err(|e| format!("parquet: {e}"))?;
    compare("parquet", &read_back.columns().iter().map(|a| a.as_ref()).collect::<Vec<_>>())?;

    let avro = write(Format::Avro, &schema, &plain, &batches);
    let reader = apache_avro::Reader::new(&avro[..]).map_err(|e| format!("avro header: {e}"))?;
    let mut rows = 0;
    for (row, record) in reader.enumerate() {
        let record = record.map_err(|e| format!("avro record {row}: {e}"))?;
        let apache_avro::types::Value::Record(fields) = record else {
            return Err(format!("avro record {row} is not a record"));
        };
        if fields.len() != ncols {
            return Err(format!("avro record {row} has {} fields", fields.len()));
        }
        for (c, (name, v)) in fields.iter().enumerate() {
            let got = avro_value(v)?;
            let want = expected_cell(t, row, c);
            if name != &names[c] || got != want {
                return Err(format!("avro: row {row}, column {c} ({name}): {got:?}, written {want:?}"));
            }
        }
        rows += 1;
    }
    if rows != t.rows.len() {
        return Err(format!("avro: {rows} records, written {}", t.rows.len()));
    }
    Ok(())
}

fn case_strategy() -> impl Strategy<Value = (WriteDialect, Table, ReadSettings)> {
    let read = (
        prop_oneof![3 => Just(None), 1 => (1usize..8).prop_map(Some)],
        prop_oneof![3 => Just(None), 1 => (1usize..50).prop_map(Some)],
    )
        .prop_map(|(sample_rows, batch_rows)| ReadSettings { sample_rows, batch_rows });
    (dialect_strategy(), read).prop_flat_map(|(d, read)| (Just(d.clone()), table_strategy(&d), Just(read)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_tables_in_random_dialects_convert_cell_for_cell((d, t, read) in case_strategy()) {
        if let Err(e) = check(&t, &d, &read) {
            let text = write_text(&t, &d);
            let shown: String = format!("{text:?}").chars().take(3000).collect();
            return Err(TestCaseError::fail(format!("{e}\nkey {}, {d:?}\n{read:?}\ntext: {shown}", d.key)));
        }
    }
}
