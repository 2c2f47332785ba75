//! Finding the inputs of a run: a paged listing of the input prefix filtered by suffix, and
//! grouping the files into batches.

use aws_sdk_s3::Client;

use std::collections::HashMap;

use crate::error::{BadInputKind, Error, Result};
use crate::keys;
use crate::payload::{FileRef, FileResult, InputLocation};
use crate::s3::sdk_error;

/// Whether a key is an input: it ends with one of the suffixes (ASCII case-insensitive).
pub fn is_input(key: &str, suffixes: &[String]) -> bool {
    let lower = key.to_ascii_lowercase();
    suffixes.iter().any(|s| lower.ends_with(&s.to_ascii_lowercase()))
}

/// Lists every input object under the prefix, following continuation tokens.
pub async fn list_inputs(client: &Client, input: &InputLocation) -> Result<Vec<FileRef>> {
    let mut pages = client.list_objects_v2().bucket(&input.bucket).prefix(&input.prefix).into_paginator().send();
    let mut files = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error("ListObjectsV2", &input.bucket, &input.prefix, e))?;
        for obj in page.contents() {
            let Some(key) = obj.key() else { continue };
            if is_input(key, &input.suffixes) {
                files.push(FileRef {
                    key: key.to_owned(),
                    size: obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                });
            }
        }
    }
    Ok(files)
}

/// Separates inputs whose outputs would collide: `a.csv`, `a.tsv` and `a.csv.gz` all map to
/// `a.parquet`. The first key in byte order keeps the outputs; each other one is a failed
/// result naming the key it collides with, so that no output is silently replaced.
pub fn without_collisions(files: Vec<FileRef>, input_prefix: &str) -> (Vec<FileRef>, Vec<FileResult>) {
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut sorted = files;
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut kept = Vec::with_capacity(sorted.len());
    let mut failed = Vec::new();
    for f in sorted {
        // Keys that cannot be mapped fail in the converter, with their own message.
        let Ok(rel) = keys::relative(input_prefix, &f.key) else {
            kept.push(f);
            continue;
        };
        match owner.get(&rel) {
            Some(first) => {
                let e = Error::bad(
                    BadInputKind::OutputCollision,
                    format!("{} would write the same outputs ({rel}) as {first}, which keeps them", f.key),
                );
                failed.push(FileResult::failed(&f.key, f.size, 0, e.to_file_error()));
            }
            None => {
                owner.insert(rel, f.key.clone());
                kept.push(f);
            }
        }
    }
    (kept, failed)
}

/// Splits files into consecutive batches of at most `max_files` files and `max_bytes` bytes;
/// a file larger than `max_bytes` gets a batch of its own.
pub fn batches(files: Vec<FileRef>, max_files: usize, max_bytes: u64) -> Vec<Vec<FileRef>> {
    let mut out: Vec<Vec<FileRef>> = Vec::new();
    let mut bytes = 0u64;
    for f in files {
        let full = out.last().is_none_or(|b| b.len() >= max_files.max(1) || bytes + f.size > max_bytes);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += f.size;
        if let Some(b) = out.last_mut() {
            b.push(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(key: &str, size: u64) -> FileRef {
        FileRef { key: key.into(), size }
    }

    #[test]
    fn batches_respect_both_bounds() {
        let files = vec![f("a", 10), f("b", 10), f("c", 100), f("d", 1), f("e", 1), f("g", 1)];
        let b = batches(files, 2, 50);
        let keys: Vec<Vec<&str>> = b.iter().map(|b| b.iter().map(|f| f.key.as_str()).collect()).collect();
        assert_eq!(keys, vec![vec!["a", "b"], vec!["c"], vec!["d", "e"], vec!["g"]]);
    }

    #[test]
    fn colliding_outputs_keep_the_first_key() {
        let files = vec![f("in/a.tsv", 1), f("in/a.csv", 2), f("in/b.csv", 3), f("in/a.csv.gz", 4)];
        let (kept, failed) = without_collisions(files, "in/");
        let kept: Vec<&str> = kept.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(kept, ["in/a.csv", "in/b.csv"]);
        let failed: Vec<(&str, &str)> =
            failed.iter().map(|r| (r.key.as_str(), r.error.as_ref().unwrap().kind.as_str())).collect();
        assert_eq!(failed, [("in/a.csv.gz", "bad_input.output_collision"), ("in/a.tsv", "bad_input.output_collision")]);
    }

    #[test]
    fn suffix_filter_ignores_case_and_other_keys() {
        let s = crate::payload::default_suffixes();
        assert!(is_input("x/A.CSV", &s));
        assert!(is_input("x/a.tsv.gz", &s));
        assert!(!is_input("x/a.json", &s));
        assert!(!is_input("x/a.csv.bak", &s));
    }
}
