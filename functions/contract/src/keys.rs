//! Output keys: `<out>/parquet/<rel>.parquet` and `<out>/avro/<rel>.avro`, where `<rel>` is the
//! input key relative to the input prefix with `.csv`, `.tsv`, `.csv.gz`, `.tsv.gz`, `.csv.zst` or
//! `.tsv.zst` stripped.
//! A key that would leave `<out>` is bad input.

use csvlake_engine::{BadInputKind, Error, Format, Result};

const STRIPPED: [&str; 6] = [".csv.gz", ".tsv.gz", ".csv.zst", ".tsv.zst", ".csv", ".tsv"];

/// A prefix as a folder: empty, or ending in `/`.
pub fn folder(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') { prefix.to_owned() } else { format!("{prefix}/") }
}

/// Joins a prefix and a relative path with exactly one `/` between them.
pub fn join(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') { format!("{prefix}{rel}") } else { format!("{prefix}/{rel}") }
}

/// `<rel>` of an input key.
pub fn relative(input_prefix: &str, key: &str) -> Result<String> {
    let invalid = |why: &str| Error::bad(BadInputKind::InvalidKey, format!("key {key:?} {why}"));
    let rel = key.strip_prefix(input_prefix).ok_or_else(|| invalid("is not under the input prefix"))?;
    let rel = rel.strip_prefix('/').filter(|_| !input_prefix.is_empty() && !input_prefix.ends_with('/')).unwrap_or(rel);
    let lower = rel.to_ascii_lowercase();
    let stem = STRIPPED.iter().find(|s| lower.ends_with(*s)).map_or(rel, |s| &rel[..rel.len() - s.len()]);
    if stem.is_empty() || stem.starts_with('/') {
        return Err(invalid("has an empty or absolute relative path"));
    }
    if stem.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(invalid("has an empty, '.' or '..' path segment"));
    }
    Ok(stem.to_owned())
}

/// The key without the suffix that [`relative`] strips: every key that maps to the same
/// outputs starts with this stem followed by a `.`.
pub fn stem(key: &str) -> &str {
    let lower = key.to_ascii_lowercase();
    STRIPPED.iter().find(|s| lower.ends_with(*s)).map_or(key, |s| &key[..key.len() - s.len()])
}

/// The output key of `format` for a relative path.
pub fn output_key(output_prefix: &str, format: Format, rel: &str) -> String {
    join(output_prefix, &format!("{}/{rel}{}", format.as_str(), format.extension()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keys_mirror_the_input_layout() {
        assert_eq!(relative("landing/", "landing/2026/a.csv").unwrap(), "2026/a");
        assert_eq!(relative("landing", "landing/a.TSV.GZ").unwrap(), "a");
        assert_eq!(relative("", "x/y.csv.gz").unwrap(), "x/y");
        assert_eq!(relative("", "notes.txt").unwrap(), "notes.txt");
        assert_eq!(output_key("converted/", Format::Parquet, "2026/a"), "converted/parquet/2026/a.parquet");
        assert_eq!(output_key("converted", Format::Avro, "a"), "converted/avro/a.avro");
        assert_eq!(output_key("", Format::Avro, "a"), "avro/a.avro");
    }

    #[test]
    fn keys_that_would_escape_are_rejected() {
        for bad in ["in/../x.csv", "in//x.csv", "in/./x.csv", "in/.csv", "other/x.csv", "in//"] {
            let e = relative("in/", bad).unwrap_err();
            assert!(matches!(e, Error::BadInput { kind: BadInputKind::InvalidKey, .. }), "{bad}: {e}");
        }
    }
}
