//! Dialect detection: which delimiter, quote and escape read a file's first bytes as a
//! consistent table, whether its first row is a header, and how many preamble lines precede it.
//!
//! Like DuckDB's sniffer, it reads the sample with every candidate dialect and keeps the one
//! under which the rows agree: every row after an optional preamble has the same number of
//! fields. Among consistent candidates it prefers several columns to one, then more consistent
//! rows, then more columns, then the usual dialect (`"` before `'` before no quoting; `,` before
//! `;`, tab and `|`, or tab first for `.tsv` keys). What the job gives is never detected.
//!
//! It never guesses silently: when no candidate reads the sample as a consistent table and some
//! delimiter splits its rows unevenly, the file fails as [`BadInputKind::AmbiguousDialect`],
//! naming what each candidate gave. A file is never read as one column when another delimiter
//! gives a consistent table of several; when a delimiter splits most rows alike, it is chosen,
//! and the decoder reports the rows that differ as ragged, with their lines.
//!
//! The header is detected from types: the first row is data when every typed column (integers,
//! dates, …) of the rows below also types its value in that row; otherwise it names the columns.

use crate::error::{BadInputKind, Error, Result};
use crate::records::{Limits, Record, RecordReader, Syntax};
use crate::schema::{Kind, classify};

/// Bytes of a file's start read to detect its dialect.
pub const SNIFF_BYTES: usize = 256 << 10;
/// Records read per candidate at most.
const SNIFF_RECORDS: usize = 2048;
/// Delimiters tried, in order of preference.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];
/// Rows below the first that header detection types.
const HEADER_ROWS: usize = 256;
/// Preamble lines detected at most.
const MAX_PREAMBLE: usize = 64;

/// The parts of a dialect that the job gives; `None` is detected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Given {
    /// The delimiter.
    pub delimiter: Option<u8>,
    /// The quote; `Some(None)` turns quoting off.
    pub quote: Option<Option<u8>>,
    /// The escape; `Some(None)` means quotes are escaped by doubling only.
    pub escape: Option<Option<u8>>,
    /// Whether the first row (after skipped lines) is a header.
    pub header: Option<bool>,
    /// Lines skipped before the header.
    pub skip_lines: Option<u64>,
    /// Comment prefix (never detected: lines that begin with it are skipped anywhere).
    pub comment: Option<Vec<u8>>,
}

/// A detected dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sniffed {
    /// The record syntax.
    pub syntax: Syntax,
    /// Whether the first row after the skipped lines is a header.
    pub header: bool,
    /// Physical lines skipped before it.
    pub skip_lines: u64,
}

/// What reading the sample with one candidate gave.
struct Reading {
    syntax: Syntax,
    /// Preference rank: lower is preferred.
    rank: usize,
    rows: Vec<Record>,
    /// Fields that began with the quote.
    quoted: u64,
    error: Option<Error>,
}

/// How well a reading forms a table.
#[derive(Debug)]
struct Shape {
    /// The number of fields most rows have.
    columns: usize,
    /// Index of the first row with that many fields (rows before it are preamble).
    start: usize,
    /// Rows from `start` on with that many fields.
    agreeing: usize,
    /// Rows from `start` on with another number of fields.
    differing: usize,
}

impl Reading {
    /// Rows that begin with `#` before the first other row.
    fn comments(&self) -> usize {
        self.rows.iter().take_while(|r| r.get(0).is_some_and(|f| f.starts_with(b"#"))).count()
    }

    /// The number of fields most rows after the leading comments have.
    fn modal_columns(&self) -> Option<usize> {
        let mut counts: Vec<(usize, usize)> = Vec::new();
        for r in &self.rows[self.comments()..] {
            match counts.iter_mut().find(|(n, _)| *n == r.len()) {
                Some(c) => c.1 += 1,
                None => counts.push((r.len(), 1)),
            }
        }
        counts.iter().copied().max_by_key(|&(n, c)| (c, n)).map(|(n, _)| n)
    }

    fn shape(&self, preamble: bool) -> Option<Shape> {
        if self.error.is_some() {
            return None;
        }
        let columns = self.modal_columns()?;
        // Leading lines that begin with `#` are preamble, whatever they split into; other rows
        // before the first of `columns` fields are preamble only when every row after agrees.
        let comments = if preamble { self.comments() } else { 0 };
        let first = comments + self.rows[comments..].iter().position(|r| r.len() == columns)?;
        let all_agree = self.rows[first..].iter().all(|r| r.len() == columns);
        let start = match (preamble, all_agree) {
            (false, _) => 0,
            (true, true) => first,
            (true, false) => comments,
        };
        if start > MAX_PREAMBLE {
            return None;
        }
        let rest = &self.rows[start..];
        let agreeing = rest.iter().filter(|r| r.len() == columns).count();
        Some(Shape { columns, start, agreeing, differing: rest.len() - agreeing })
    }

    /// Whether the rows read before a quote error agree on more than `columns` fields: then the
    /// file is a table of this dialect with a malformed quote, not a table of another dialect.
    fn failed_wider_than(&self, columns: usize) -> bool {
        let Some(Error::BadInput { kind: BadInputKind::MalformedQuote, .. }) = &self.error else { return false };
        let rows = &self.rows[self.comments()..];
        rows.len() >= 2 && rows.iter().all(|r| r.len() == rows[0].len()) && rows[0].len() > columns
    }

    fn describe(&self) -> String {
        let name = describe_syntax(&self.syntax);
        if let Some(e) = &self.error {
            return format!("{name}: {e}");
        }
        let mut counts: Vec<(usize, usize, u64)> = Vec::new();
        for r in &self.rows {
            match counts.iter_mut().find(|(n, _, _)| *n == r.len()) {
                Some(c) => c.1 += 1,
                None => counts.push((r.len(), 1, r.line())),
            }
        }
        counts.sort_by_key(|&(_, c, _)| std::cmp::Reverse(c));
        let parts: Vec<String> = counts
            .iter()
            .take(3)
            .map(|(n, c, line)| format!("{c} rows of {n} fields (first on line {line})"))
            .collect();
        format!("{name}: {}", parts.join(", "))
    }
}

/// How a syntax is named in messages.
fn describe_syntax(s: &Syntax) -> String {
    let d = match s.delimiter {
        b'\t' => "tab".to_owned(),
        b => format!("{:?}", char::from(b)),
    };
    match s.quote {
        Some(b'"') => format!("delimiter {d}"),
        Some(q) => format!("delimiter {d} with quote {:?}", char::from(q)),
        None => format!("delimiter {d} without quoting"),
    }
}

/// Detects what `given` leaves open from `sample`, the first bytes of the file (all of them when
/// `complete`). `tab_first` prefers a tab among equally good delimiters (for `.tsv` keys).
pub fn sniff(sample: &[u8], complete: bool, given: &Given, tab_first: bool) -> Result<Sniffed> {
    let mut delimiters: Vec<u8> = match given.delimiter {
        Some(d) => vec![d],
        None => {
            let mut ds: Vec<u8> = DELIMITERS.iter().copied().filter(|d| memchr::memchr(*d, sample).is_some()).collect();
            if tab_first && let Some(i) = ds.iter().position(|d| *d == b'\t') {
                let tab = ds.remove(i);
                ds.insert(0, tab);
            }
            if ds.is_empty() {
                ds.push(if tab_first { b'\t' } else { b',' });
            }
            ds
        }
    };
    delimiters.dedup();
    let mut readings = Vec::new();
    for (di, &delimiter) in delimiters.iter().enumerate() {
        for (qi, quote) in quote_candidates(sample, delimiter, given).into_iter().enumerate() {
            for (ei, escape) in escape_candidates(sample, quote, given).into_iter().enumerate() {
                let syntax = Syntax { delimiter, quote, escape, comment: given.comment.clone() };
                let rank = (di * 4 + qi) * 2 + ei;
                readings.push(read_sample(sample, complete, syntax, rank, given.skip_lines.unwrap_or(0)));
            }
        }
    }
    let preamble = given.skip_lines.is_none();
    let scored: Vec<(usize, Shape)> =
        readings.iter().enumerate().filter_map(|(i, r)| r.shape(preamble).map(|s| (i, s))).collect();
    // A reading whose quote opens fields explains them; one that reads the quotes as data only
    // agrees by accident when they hold line ends or delimiters.
    let consistent = scored.iter().filter(|(_, s)| s.differing == 0).max_by_key(|(i, s)| {
        let r = &readings[*i];
        (s.columns > 1, r.quoted > 0, s.agreeing, s.columns, std::cmp::Reverse(r.rank))
    });
    // A delimiter that splits most rows alike, though not all: the decoder names the rows that differ.
    let mostly = scored
        .iter()
        .filter(|(_, s)| s.columns > 1 && s.agreeing >= 2 * s.differing.max(1))
        .max_by_key(|(i, s)| (s.agreeing, s.columns, std::cmp::Reverse(readings[*i].rank)));
    let chosen = match (consistent, mostly) {
        (Some(c), _) if c.1.columns > 1 => c,
        (_, Some(m)) => m,
        (Some(c), None) => {
            // One column: only when no delimiter splits any row (leading comments aside).
            let split =
                readings.iter().any(|r| r.error.is_none() && r.rows[r.comments()..].iter().any(|row| row.len() > 1));
            if split {
                return Err(ambiguous(&readings));
            }
            c
        }
        (None, None) => {
            // Every candidate failed or disagreed: a quote error of the preferred delimiter is
            // the clearest cause.
            if let Some(i) = readings.iter().position(|r| r.error.is_some()) {
                return Err(readings.swap_remove(i).error.unwrap_or_else(|| ambiguous(&[])));
            }
            return Err(ambiguous(&readings));
        }
    };
    let (i, shape) = chosen;
    if let Some(failed) = readings.iter().position(|r| r.failed_wider_than(shape.columns)) {
        return Err(readings.swap_remove(failed).error.unwrap_or_else(|| ambiguous(&[])));
    }
    let reading = &readings[*i];
    let skip_lines = match given.skip_lines {
        Some(n) => n,
        None => reading.rows.get(shape.start).map_or(0, |r| r.line() - 1),
    };
    let header = match given.header {
        Some(h) => h,
        None => detect_header(&reading.rows[shape.start..]),
    };
    Ok(Sniffed { syntax: reading.syntax.clone(), header, skip_lines })
}

fn ambiguous(readings: &[Reading]) -> Error {
    let tried: Vec<String> = readings.iter().map(Reading::describe).collect();
    Error::bad(
        BadInputKind::AmbiguousDialect,
        format!(
            "no delimiter reads the first rows as a consistent table; set csv.delimiter (and csv.quote). Tried: {}",
            tried.join("; ")
        ),
    )
}

/// `"`; `'` when it opens a field; no quoting when `"` appears only inside fields.
fn quote_candidates(sample: &[u8], delimiter: u8, given: &Given) -> Vec<Option<u8>> {
    if let Some(q) = given.quote {
        return vec![q];
    }
    let mut out = vec![Some(b'"')];
    if opens_a_field(sample, delimiter, b'\'') {
        out.push(Some(b'\''));
    }
    if memchr::memchr(b'"', sample).is_some() && !opens_a_field(sample, delimiter, b'"') {
        out.push(None);
    }
    out
}

fn opens_a_field(sample: &[u8], delimiter: u8, quote: u8) -> bool {
    memchr::memchr_iter(quote, sample)
        .any(|i| i == 0 || matches!(sample[i - 1], b'\n' | b'\r') || sample[i - 1] == delimiter)
}

/// Doubling only; also a backslash when one precedes the quote somewhere.
fn escape_candidates(sample: &[u8], quote: Option<u8>, given: &Given) -> Vec<Option<u8>> {
    if let Some(e) = given.escape {
        return vec![e];
    }
    let mut out = vec![None];
    if let Some(q) = quote
        && memchr::memmem::find(sample, &[b'\\', q]).is_some()
    {
        out.push(Some(b'\\'));
    }
    out
}

fn read_sample(sample: &[u8], complete: bool, syntax: Syntax, rank: usize, skip_lines: u64) -> Reading {
    let mut reader = RecordReader::new(sample, syntax.clone(), Limits::default());
    let mut rows = Vec::new();
    let mut error = None;
    let mut record = Record::new();
    let mut full = false;
    match reader.skip_lines(skip_lines) {
        Ok(()) => loop {
            if rows.len() == SNIFF_RECORDS {
                full = true;
                break;
            }
            match reader.read(&mut record) {
                Ok(true) => rows.push(record.clone()),
                Ok(false) => break,
                Err(e) => {
                    // The sample may cut the last record short: an error at its end is not the file's.
                    let at_end = reader.consumed() as usize >= sample.len();
                    if complete || !at_end {
                        error = Some(e);
                    }
                    break;
                }
            }
        },
        Err(e) => error = Some(e),
    }
    if !complete && !full && error.is_none() && rows.len() > 1 {
        rows.pop();
    }
    let quoted = reader.quoted_fields();
    Reading { syntax, rank, rows, quoted, error }
}

/// Whether the first row names the columns (see the module doc).
fn detect_header(rows: &[Record]) -> bool {
    let Some((first, rest)) = rows.split_first() else { return true };
    if rest.is_empty() {
        return true;
    }
    let mut typed = false;
    for i in 0..first.len() {
        let kind = rest
            .iter()
            .take(HEADER_ROWS)
            .filter_map(|r| r.get(i))
            .filter(|v| !v.is_empty())
            .fold(Kind::Null, |k, v| k.join(classify(v).unwrap_or(Kind::Utf8)));
        if matches!(kind, Kind::Null | Kind::Utf8) {
            continue;
        }
        typed = true;
        let v = first.get(i).unwrap_or_default();
        if !v.is_empty() && kind.join(classify(v).unwrap_or(Kind::Utf8)) != kind {
            return true;
        }
    }
    !typed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniffed(text: &str) -> Sniffed {
        sniff(text.as_bytes(), true, &Given::default(), false).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn fails(text: &str) -> (BadInputKind, String) {
        match sniff(text.as_bytes(), true, &Given::default(), false) {
            Err(Error::BadInput { kind, message, .. }) => (kind, message),
            other => panic!("{text:?}: expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn delimiters() {
        assert_eq!(sniffed("a,b,c\n1,2,3\n").syntax.delimiter, b',');
        assert_eq!(sniffed("a;b;c\n1,5;2,5;3\n4,5;6;7\n").syntax.delimiter, b';');
        assert_eq!(sniffed("name\tnote\nx\ta, b, c\ny\td\n").syntax.delimiter, b'\t');
        assert_eq!(sniffed("a|b\n1|2\n").syntax.delimiter, b'|');
        assert_eq!(sniffed("only\n1\n2\n").syntax.delimiter, b',');
        assert_eq!(sniff(b"only\n1\n", true, &Given::default(), true).unwrap().syntax.delimiter, b'\t');
    }

    #[test]
    fn quotes_and_escapes() {
        let s = sniffed("a;b\n'x;y';2\n'z';3\n");
        assert_eq!((s.syntax.delimiter, s.syntax.quote), (b';', Some(b'\'')));
        let s = sniffed("name,size\nO'Brien,5\"\nx,7\"\n");
        assert_eq!(s.syntax.quote, None, "inch marks inside fields");
        let s = sniffed("a,b\n\"x \\\"y\\\"\",1\n");
        assert_eq!(s.syntax.escape, Some(b'\\'));
        assert_eq!(sniffed("a,b\n\"x \"\"y\"\"\",1\n").syntax.escape, None);
    }

    #[test]
    fn malformed_quotes_are_not_guessed_away() {
        let (kind, _) = fails("a,b\n\"abc\"def,1\n");
        assert_eq!(kind, BadInputKind::MalformedQuote);
    }

    #[test]
    fn headers() {
        assert!(sniffed("id,name\n1,x\n2,y\n").header);
        assert!(!sniffed("1,x\n2,y\n3,z\n").header);
        assert!(sniffed("a,b\nx,y\n").header, "all text: the first row names the columns");
        assert!(!sniffed("2024-01-01,5\n2024-01-02,6\n").header);
    }

    #[test]
    fn preambles_and_comments() {
        let s = sniffed("Report of sales\nGenerated 2024-01-01\nid;amount;who\n1;2;x\n3;4;y\n");
        assert_eq!((s.syntax.delimiter, s.skip_lines, s.header), (b';', 2, true));
        let s = sniffed("# made by tool, version 2\n# second, comment\nid,a,b\n1,2,3\n");
        assert_eq!((s.skip_lines, s.header), (2, true));
    }

    #[test]
    fn leading_comments_do_not_count_as_rows() {
        let s = sniffed("#\n#\n#\na,b\n1,2\n");
        assert_eq!((s.syntax.delimiter, s.skip_lines), (b',', 3));
        let s = sniffed("# v, 2\n# v, 2\n# v, 2\nx,y,z\n1,2,3\n");
        assert_eq!((s.skip_lines, s.header), (3, true));
        assert_eq!(sniffed("# a, b\nname\nx\ny\n").skip_lines, 1);
    }

    #[test]
    fn a_quote_that_opens_fields_wins_over_reading_it_as_data() {
        let s = sniffed("a;b\n;'x\n;'\n");
        assert_eq!((s.syntax.delimiter, s.syntax.quote), (b';', Some(b'\'')));
    }

    #[test]
    fn a_quote_error_of_a_wider_table_is_the_files() {
        let text = "id\ttitle\tyear\tgenres\nt1\t\"Mr. Smith\"\t1939\tComedy,Drama\n\
                    t2\t\"Swing it\" magistern\t1940\tComedy,Music\nt3\tX\t1941\tDrama,War\n";
        let (kind, _) = fails(text);
        assert_eq!(kind, BadInputKind::MalformedQuote);
    }

    #[test]
    fn ragged_rows_keep_their_delimiter() {
        let s = sniffed("a,b\n1,2\n3\n4,5\n6,7\n");
        assert_eq!(s.syntax.delimiter, b',');
    }

    #[test]
    fn no_consistent_table_is_ambiguous() {
        let (kind, message) = fails("note\nhello, world\nfine\nyes; no, maybe\n");
        assert_eq!(kind, BadInputKind::AmbiguousDialect);
        assert!(message.contains("csv.delimiter"), "{message}");
    }

    #[test]
    fn a_cut_sample_ignores_its_last_record() {
        let s = sniff(b"a,b\n1,\"x\n2", false, &Given::default(), false).unwrap();
        assert_eq!(s.syntax.delimiter, b',');
    }

    #[test]
    fn given_options_win() {
        let given = Given { delimiter: Some(b';'), header: Some(false), ..Given::default() };
        let s = sniff(b"a,b\n1,2\n", true, &given, false).unwrap();
        assert_eq!((s.syntax.delimiter, s.header), (b';', false));
    }
}
