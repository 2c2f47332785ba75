//! Reading a run's report and printing its summary, with the exit status it implies.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use csvlake_contract::run::{FailedFile, ObjectLocation, Report, RunStatus, Totals};
use csvlake_engine::decode::Dialect;
use csvlake_engine::input::Compression;

/// Failed files printed per error kind.
const SHOWN_PER_KIND: usize = 20;

/// Dialects printed at most.
const SHOWN_DIALECTS: usize = 5;

/// A dialect in a few words: `delimiter ';', quote '"', header, windows-1252, gzip`.
fn describe(d: &Dialect) -> String {
    let mut parts = vec![match d.delimiter {
        '\t' => "delimiter tab".to_owned(),
        c => format!("delimiter {c:?}"),
    }];
    parts.push(match d.quote {
        Some(q) => format!("quote {q:?}"),
        None => "no quoting".to_owned(),
    });
    if let Some(e) = d.escape {
        parts.push(format!("escape {e:?}"));
    }
    parts.push(if d.header { "header".to_owned() } else { "no header".to_owned() });
    if d.skip_lines > 0 {
        parts.push(format!("{} lines skipped", d.skip_lines));
    }
    parts.push(d.encoding.clone());
    if d.compression != Compression::None {
        parts.push(d.compression.as_str().to_owned());
    }
    parts.join(", ")
}

/// Reads `report.json`, or `None` when the run wrote none. A body that breaks off is read again.
pub async fn read_report(client: &aws_sdk_s3::Client, at: &ObjectLocation) -> Result<Option<Report>> {
    let got = csvlake_s3::tables::get_json_tagged::<Report>(client, &at.bucket, &at.key, "a run report").await?;
    Ok(got.map(|(report, _)| report))
}

/// Where the run's objects are, as the user should see them.
pub struct Shown {
    /// `report.json`.
    pub report: String,
    /// `failed-keys.json` and the command that reprocesses it, when files failed.
    pub failed_keys: Option<(String, String)>,
}

/// Prints the summary and returns the exit status: 0 when every file converted, 2 when some
/// failed.
pub fn print(report: &Report, shown: &Shown, secs: f64) -> ExitCode {
    print_totals(&report.run_id, &report.totals, secs);
    if let Some(e) = &report.map_error {
        println!("the Map failed: {}: {}", e.error, e.cause);
    }
    for d in report.dialects.iter().take(SHOWN_DIALECTS) {
        println!("read as {}: {} file{}", describe(&d.dialect), d.files, if d.files == 1 { "" } else { "s" });
    }
    if report.dialects.len() > SHOWN_DIALECTS {
        println!("  … and {} more dialects", report.dialects.len() - SHOWN_DIALECTS);
    }
    for t in report.tables.iter().filter(|t| t.taken_over_from.is_some()) {
        let from = t.taken_over_from.as_deref().unwrap_or_default();
        println!("table {}: took over the expired lease of run {from}", t.name);
    }
    for t in report.tables.iter().filter(|t| t.widened || t.conformed > 0 || t.unconformed > 0) {
        let mut told = Vec::new();
        if t.widened {
            told.push(format!("schema widened to version {}", t.schema_version));
        }
        if t.conformed > 0 {
            told.push(format!(
                "{} file{} converted again with it",
                t.conformed,
                if t.conformed == 1 { "" } else { "s" }
            ));
        }
        if t.unconformed > 0 {
            told.push(format!("{} with another schema until the next run", t.unconformed));
        }
        println!("table {}: {}", t.name, told.join(", "));
    }
    if !report.orphaned.is_empty() {
        let deleted = report.orphaned.iter().filter(|o| o.deleted).count();
        let what =
            if deleted > 0 { "their outputs removed" } else { "their outputs kept; --delete-orphans removes them" };
        println!(
            "orphaned: {} input{} gone since converted, {what}",
            report.orphaned.len(),
            if report.orphaned.len() == 1 { "" } else { "s" }
        );
        for o in report.orphaned.iter().take(SHOWN_PER_KIND) {
            println!("  {}", o.key);
        }
        if report.orphaned.len() > SHOWN_PER_KIND {
            println!("  … and {} more", report.orphaned.len() - SHOWN_PER_KIND);
        }
    }
    let mut by_kind: BTreeMap<&str, Vec<&FailedFile>> = BTreeMap::new();
    for f in &report.failed {
        by_kind.entry(f.error.kind.as_str()).or_default().push(f);
    }
    for (kind, n) in &report.failures_by_kind {
        println!("failed: {kind}: {n} files");
        let files = by_kind.get(kind.as_str()).map_or(&[][..], Vec::as_slice);
        for f in files.iter().take(SHOWN_PER_KIND) {
            println!("  {}: {}", f.key, f.error.message);
        }
        if files.len() > SHOWN_PER_KIND {
            println!("  … and {} more", files.len() - SHOWN_PER_KIND);
        }
    }
    println!("report: {}", shown.report);
    if let Some((path, command)) = &shown.failed_keys {
        println!("failed keys: {path}");
        println!("after fixing them: {command}");
    }
    if let Some(e) = &report.conform_error {
        println!("the run failed: {e}");
    } else if report.status == RunStatus::Failed {
        println!("the run failed: more files failed than it tolerates");
    }
    if report.totals.failed > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

/// The one-line summary of a run's counts.
pub fn print_totals(run_id: &str, t: &Totals, secs: f64) {
    let processed = t.converted + t.failed;
    let mb = t.bytes_in as f64 / 1e6;
    println!(
        "{processed} files: {} converted, {} failed, {} up to date · {} rows · {mb:.1} MB in, {:.1} MB out · {secs:.2} s · \
         {:.0} files/min{} · run {run_id}",
        t.converted,
        t.failed,
        t.skipped,
        t.rows,
        t.bytes_out as f64 / 1e6,
        processed as f64 * 60.0 / secs.max(1e-9),
        peak_rss_mib().map(|m| format!(" · peak memory {m} MiB")).unwrap_or_default(),
    );
}

/// Peak resident memory of this process (`VmHWM`), where the platform reports it.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
