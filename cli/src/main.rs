//! `csvlake`: converts CSV objects to Parquet and Avro, from S3 or from a local directory
//! served by the embedded S3 endpoint.
//!
//! Exit status: 0 when every file converted, 1 on a fatal error, 2 when some files failed.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use csvlake::Converter;
use csvlake::local::{LocalBucket, LocalS3};
use csvlake::options::{
    AvroCodec, AvroOptions, CsvOptions, Format, ParquetCompression, ParquetOptions, parse_schema_json,
};
use csvlake::payload::{ConvertBatch, FileResult, FileStatus, InputLocation, Job, OutputLocation, default_suffixes};
use indicatif::{ProgressBar, ProgressStyle};
use lambda_runtime::{Context as LambdaContext, LambdaEvent};

#[derive(Debug, Parser)]
#[command(name = "csvlake", version, about = "Convert CSV objects in S3 (or a local directory) to Parquet and Avro")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert every CSV under the input.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Input: a local directory, or s3://bucket/prefix.
    #[arg(long)]
    input: String,
    /// Output: a local directory, or s3://bucket/prefix.
    #[arg(long)]
    output: String,
    /// S3-compatible endpoint for s3:// locations (default: AWS, from the environment).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Output formats, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "parquet,avro")]
    formats: Vec<Format>,
    /// Input key suffixes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    suffixes: Option<Vec<String>>,
    /// Field delimiter (default `,`, or tab for .tsv).
    #[arg(long)]
    delimiter: Option<char>,
    /// Quote character.
    #[arg(long, default_value_t = '"')]
    quote: char,
    /// Escape character inside quoted fields (default: quotes are doubled).
    #[arg(long)]
    escape: Option<char>,
    /// The first row is data, not a header; columns are named column_1, column_2, ….
    #[arg(long)]
    no_header: bool,
    /// A field value read as null; repeat for several (default: the empty field).
    #[arg(long = "null-value")]
    null_values: Option<Vec<String>>,
    /// Explicit schema: a JSON file of column → type (boolean, int64, float64, date32,
    /// timestamp, timestamp_utc, utf8). Unlisted columns are inferred.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Parquet compression: snappy, zstd or none.
    #[arg(long, default_value = "snappy")]
    parquet_compression: ParquetCompression,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 131_072)]
    row_group_rows: usize,
    /// Avro codec: snappy, deflate, zstd or null.
    #[arg(long, default_value = "snappy")]
    avro_codec: AvroCodec,
    /// Most files in one batch.
    #[arg(long, default_value_t = 256)]
    batch_files: usize,
    /// Most bytes in one batch.
    #[arg(long, default_value_t = 512 << 20)]
    batch_bytes: u64,
    /// Most files converted at once.
    #[arg(long, default_value_t = 64)]
    max_files: usize,
    /// Memory budget for conversion, in MiB; bounds how many files convert at once.
    #[arg(long, default_value_t = 1024)]
    memory_mb: u32,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// A parsed `--input`/`--output`.
enum Location {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

fn location(s: &str) -> Result<Location> {
    if let Some(rest) = s.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("{s}: no bucket name");
        }
        return Ok(Location::S3 { bucket: bucket.into(), prefix: prefix.into() });
    }
    Ok(Location::Dir(PathBuf::from(s)))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CSVLAKE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("csvlake: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn job_from(args: &RunArgs, input: InputLocation, output: OutputLocation) -> Result<Job> {
    let schema = match &args.schema {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(parse_schema_json(&text).with_context(|| format!("in {}", path.display()))?)
        }
        None => None,
    };
    let csv = CsvOptions {
        delimiter: args.delimiter,
        quote: args.quote,
        escape: args.escape,
        header: !args.no_header,
        null_values: args.null_values.clone().unwrap_or_else(|| vec![String::new()]),
        schema,
    };
    let job = Job {
        input,
        output,
        formats: args.formats.clone(),
        csv,
        parquet: ParquetOptions { compression: args.parquet_compression, row_group_rows: args.row_group_rows },
        avro: AvroOptions { codec: args.avro_codec },
    };
    job.validate()?;
    Ok(job)
}

async fn run(args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let suffixes = args.suffixes.clone().unwrap_or_else(default_suffixes);
    let (input, output) = (location(&args.input)?, location(&args.output)?);
    let (_server, client, input, output) = match (input, output) {
        (Location::Dir(i), Location::Dir(o)) => {
            if !i.is_dir() {
                bail!("{}: not a directory", i.display());
            }
            let server = LocalS3::start(&[
                LocalBucket { name: "input".into(), dir: i },
                LocalBucket { name: "output".into(), dir: o },
            ])
            .await?;
            let client = server.client();
            (
                Some(server),
                client,
                InputLocation { bucket: "input".into(), prefix: String::new(), suffixes },
                OutputLocation { bucket: "output".into(), prefix: String::new() },
            )
        }
        (Location::S3 { bucket: ib, prefix: ip }, Location::S3 { bucket: ob, prefix: op }) => (
            None,
            csvlake::s3::env_client(args.endpoint_url.as_deref()).await,
            InputLocation { bucket: ib, prefix: ip, suffixes },
            OutputLocation { bucket: ob, prefix: op },
        ),
        _ => bail!("--input and --output must both be local directories or both be s3:// locations"),
    };
    let job = job_from(&args, input, output)?;
    let listed = csvlake::plan::list_inputs(&client, &job.input).await?;
    let limits = csvlake::run::BatchLimits { max_files: args.batch_files, max_bytes: args.batch_bytes };
    let mut planner = csvlake::plan::Planner::new(&job.input.prefix, limits, None);
    for f in listed {
        planner.add(csvlake::plan::Listed { key: f.key, size: f.size, modified_ms: 0 })?;
    }
    planner.finish()?;
    let batches: Vec<csvlake::run::ManifestBatch> = serde_json::from_slice(&planner.take_manifest())?;
    let collided: Vec<FileResult> =
        String::from_utf8(planner.take_rejected())?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let files: Vec<_> = batches.iter().flat_map(|b| b.files.iter().cloned()).collect();
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let nfiles = files.len() + collided.len();
    if nfiles == 0 {
        eprintln!("csvlake: no input under {} with a suffix of {}", args.input, job.input.suffixes.join(", "));
    }

    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(total_bytes);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = {
        let (bar, done) = (bar.clone(), done.clone());
        Arc::new(move |r: &FileResult| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.inc(r.bytes_in);
            bar.set_message(format!("{n}/{nfiles} files"));
        })
    };
    let converter = Converter::new(client)
        .with_memory_budget_mib(args.memory_mb)
        .with_max_files(args.max_files)
        .with_progress(progress);

    let mut results = collided;
    for b in batches {
        let event = LambdaEvent::new(
            ConvertBatch { job: job.clone(), batch: Some(b.batch), files: b.files },
            LambdaContext::default(),
        );
        let out = csvlake_converter::handle(event, &converter).await?;
        results.extend(out.files);
    }
    bar.finish_and_clear();
    Ok(summarize(&results, started.elapsed().as_secs_f64()))
}

fn summarize(results: &[FileResult], secs: f64) -> ExitCode {
    let converted: Vec<&FileResult> = results.iter().filter(|r| r.status == FileStatus::Converted).collect();
    let failed: Vec<&FileResult> = results.iter().filter(|r| r.status == FileStatus::Failed).collect();
    let rows: u64 = converted.iter().map(|r| r.rows).sum();
    let bytes_in: u64 = results.iter().map(|r| r.bytes_in).sum();
    let bytes_out: u64 = converted.iter().flat_map(|r| &r.outputs).map(|o| o.bytes).sum();
    let mb = bytes_in as f64 / 1e6;
    println!(
        "{} files: {} converted, {} failed · {rows} rows · {mb:.1} MB in, {:.1} MB out · {secs:.2} s · {:.1} MB/s · {:.0} files/min{}",
        results.len(),
        converted.len(),
        failed.len(),
        bytes_out as f64 / 1e6,
        mb / secs.max(1e-9),
        results.len() as f64 * 60.0 / secs.max(1e-9),
        peak_rss_mib().map(|m| format!(" · peak memory {m} MiB")).unwrap_or_default(),
    );
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    let mut by_kind: BTreeMap<&str, Vec<&FileResult>> = BTreeMap::new();
    for r in &failed {
        by_kind.entry(r.error.as_ref().map_or("unknown", |e| e.kind.as_str())).or_default().push(r);
    }
    for (kind, files) in by_kind {
        println!("failed: {kind}: {} files", files.len());
        for r in files.iter().take(50) {
            println!("  {}: {}", r.key, r.error.as_ref().map_or("", |e| e.message.as_str()));
        }
        if files.len() > 50 {
            println!("  … and {} more", files.len() - 50);
        }
    }
    ExitCode::from(2)
}

/// Peak resident memory of this process (`VmHWM`), where the platform reports it.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
