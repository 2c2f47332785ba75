//! Planning benchmark: runs the planner's streaming core over a generated listing of N keys
//! (1,000,000 by default), in pages of 1,000 sorted keys as ListObjectsV2 returns them, and
//! prints the planning time and the peak RSS. The listing is generated in-process: the S3
//! server is not what is measured here. With `--incremental`, an output listing of the same
//! names is indexed first, with every other output older than its input.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use csvlake_contract::run::BatchLimits;
use csvlake_engine::Format;
use csvlake_planner::plan::{Listed, OutputIndex, Planner};

#[derive(Parser)]
struct Args {
    /// Keys in the listing.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Index an output listing first and skip up-to-date inputs.
    #[arg(long)]
    incremental: bool,
}

fn key(i: usize) -> String {
    format!("landing/2026/{:02}/{:02}/part-{i:08}.csv", i % 12 + 1, i / 1_000 % 28 + 1)
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().strip_suffix("kB"));
    kib.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0) / 1024
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let outputs = args.incremental.then(|| {
        let mut index = OutputIndex::new(&Format::ALL);
        for format in Format::ALL {
            let prefix = format!("converted/{}/", format.as_str());
            for i in 0..args.keys {
                let rel = key(i);
                let rel = rel.trim_start_matches("landing/").trim_end_matches(".csv");
                let modified = if i % 2 == 0 { 2_000 } else { 500 };
                index.add(format, &prefix, &format!("{prefix}{rel}{}", format.extension()), modified);
            }
        }
        index
    });
    let indexed = started.elapsed();
    let mut planner = Planner::new("landing/", "converted/", BatchLimits::default(), outputs);
    let mut manifest_bytes = 0usize;
    let mut page = Vec::with_capacity(1_000);
    // Keys generated out of order, then each page sorted, as a listing returns them.
    for start in (0..args.keys).step_by(1_000) {
        page.clear();
        page.extend((start..(start + 1_000).min(args.keys)).map(|i| Listed {
            key: key(i),
            size: 20_000 + (i as u64 * 7_919) % 2_000_000,
            modified_ms: 1_000,
        }));
        page.sort_by(|a, b| a.key.cmp(&b.key));
        for obj in page.drain(..) {
            planner.add(obj)?;
        }
        manifest_bytes += planner.take_manifest().len();
    }
    let counts = planner.finish()?;
    manifest_bytes += planner.take_manifest().len();
    let elapsed = started.elapsed();
    println!(
        "keys={} incremental={} files={} skipped={} batches={} manifest_mib={:.1} index_s={:.2} total_s={:.2} \
         peak_rss_mib={} (before {})",
        args.keys,
        args.incremental,
        counts.files,
        counts.skipped,
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
