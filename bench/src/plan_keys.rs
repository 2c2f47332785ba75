//! Planning benchmark: runs the planner's streaming core over a generated listing of N keys
//! (1,000,000 by default), in pages of 1,000 sorted keys as ListObjectsV2 returns them, and
//! prints the planning time and the peak RSS. The listing is generated in-process: the S3
//! server is not what is measured here. With `--incremental`, the table's index holds an entry
//! for every key (a compressed generation, as the reducer writes it), half of them current and
//! half for other content, and the plan reads it beside the listing.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use csvlake_contract::payload::{InputLocation, Job, OutputLocation, OutputRef, default_suffixes};
use csvlake_contract::run::BatchLimits;
use csvlake_contract::tables::IndexEntry;
use csvlake_engine::Format;
use csvlake_planner::plan::{Listed, Planner, TableIndex};
use csvlake_s3::tables::{IndexReader, IndexWriter};

#[derive(Parser)]
struct Args {
    /// Keys in the listing.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Read an index of every key beside the listing and skip the current half.
    #[arg(long)]
    incremental: bool,
}

/// The `i`th of `n` keys, spread over the days of a year: key order is index order, as a
/// listing (and an index) returns them, without sorting a million strings here.
fn key(i: usize, n: usize) -> String {
    let day = i * 336 / n.max(1);
    format!("landing/2026/{:02}/{:02}/part-{i:08}.csv", day / 28 + 1, day % 28 + 1)
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().strip_suffix("kB"));
    kib.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0) / 1024
}

fn etag(i: usize) -> String {
    format!("{:032x}", i as u128 * 0x9e37_79b9_7f4a_7c15)
}

fn size(i: usize) -> u64 {
    20_000 + (i as u64 * 7_919) % 2_000_000
}

fn main() -> Result<()> {
    let args = Args::parse();
    let job = Job::new(
        InputLocation {
            bucket: "raw".into(),
            prefix: "landing/".into(),
            scan: Vec::new(),
            suffixes: default_suffixes(),
        },
        OutputLocation { bucket: "lake".into(), prefix: "converted/".into() },
    );
    let fingerprint = job.fingerprint();
    // The generation the reducer would have written: every key, the odd ones since changed.
    let generation = if args.incremental {
        let mut w = IndexWriter::new(Vec::new())?;
        for i in 0..args.keys {
            let rel = key(i, args.keys);
            let rel = rel.trim_start_matches("landing/").trim_end_matches(".csv");
            w.push(&IndexEntry {
                key: key(i, args.keys),
                etag: if i % 2 == 0 { etag(i) } else { etag(i + 1) },
                size: size(i),
                fingerprint: fingerprint.clone(),
                outputs: Format::ALL
                    .iter()
                    .map(|&f| OutputRef {
                        format: f,
                        key: format!("converted/{}/{rel}{}", f.as_str(), f.extension()),
                        bytes: size(i) / 3,
                    })
                    .collect(),
                schema: Some(format!("{:032x}", 7)),
            })?;
        }
        Some(w.finish()?)
    } else {
        None
    };
    let index_mib = generation.as_ref().map_or(0.0, |g| g.len() as f64 / (1 << 20) as f64);

    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let reader = generation.map(|g| IndexReader::new(std::io::Cursor::new(g), "index")).transpose()?;
    let mut index = TableIndex::new(reader)?;
    let indexed = started.elapsed();
    let mut planner =
        Planner::new("landing/", "converted/", BatchLimits::default(), args.incremental.then(|| fingerprint.clone()));
    let mut manifest_bytes = 0usize;
    let mut orphaned = 0u64;
    let mut page = Vec::with_capacity(1_000);
    // Pages of 1,000 keys in key order, as ListObjectsV2 returns them.
    for start in (0..args.keys).step_by(1_000) {
        page.clear();
        page.extend((start..(start + 1_000).min(args.keys)).map(|i| Listed {
            key: key(i, args.keys),
            size: size(i),
            etag: etag(i),
        }));
        for obj in page.drain(..) {
            let known = index.seek(&obj.key, |_| {
                orphaned += 1;
                Ok(())
            })?;
            planner.add(obj, known.as_ref())?;
        }
        manifest_bytes += planner.take_manifest().len();
    }
    index.drain(|_| {
        orphaned += 1;
        Ok(())
    })?;
    let counts = planner.finish()?;
    manifest_bytes += planner.take_manifest().len();
    let elapsed = started.elapsed();
    println!(
        "keys={} incremental={} index_mib={:.1} files={} skipped={} orphaned={} batches={} manifest_mib={:.1} \
         index_open_s={:.2} total_s={:.2} peak_rss_mib={} (before {})",
        args.keys,
        args.incremental,
        index_mib,
        counts.files,
        counts.skipped,
        orphaned,
        counts.batches,
        manifest_bytes as f64 / (1 << 20) as f64,
        indexed.as_secs_f64(),
        elapsed.as_secs_f64(),
        peak_rss_mib(),
        rss_before,
    );
    anyhow::ensure!(counts.files + counts.skipped == args.keys as u64, "every key is planned or skipped");
    Ok(())
}
