//! `csvlake`: converts CSV objects to Parquet and Avro.
//!
//! - `run` and `reprocess` execute the state machine (statemachine/pipeline.asl.json) in this
//!   process, with the planner, converter and reducer handlers, over S3 or over local
//!   directories served by the embedded S3 endpoint.
//! - `start` starts an execution of the deployed state machine in AWS.
//!
//! Exit status: 0 when every file converted, 1 on a fatal error, 2 when some files failed.

mod args;
mod progress;
mod sfn;
mod summary;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use csvlake_cli::local::pipeline::{PlanObserver, observed_executor};
use csvlake_cli::local::{LocalBucket, LocalS3};
use csvlake_contract::errors::{CATALOG_ERROR, CONFORM_LIMIT, MAP_FAILED, OUTCOME_LOG_TARGET, TOLERANCE_EXCEEDED};
use csvlake_contract::payload::OutputLocation;
use csvlake_contract::run::{Mode, ObjectLocation, RunInput, names, run_key};
use csvlake_converter::Converter;
use csvlake_planner::PlannerConfig;
use csvlake_statemachine::ExecutionStatus;

use crate::args::{ConvertArgs, Location, input_at, read_keys, scan};

/// Bucket names under which local directories are served.
const LOCAL_INPUT: &str = "input";
const LOCAL_OUTPUT: &str = "output";

#[derive(Debug, Parser)]
#[command(name = "csvlake", version, about = "Convert CSV objects in S3 (or a local directory) to Parquet and Avro")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert the CSV files under the input: plan, convert and report, by the state machine
    /// executed in this process.
    Run(RunArgs),
    /// Convert again the failed keys of an earlier run (its failed-keys.json).
    Reprocess(ReprocessArgs),
    /// Start an execution of the deployed state machine in AWS Step Functions.
    Start(sfn::StartArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Input: a local directory, or s3://bucket/prefix.
    #[arg(long)]
    input: String,
    /// Output: a local directory, or s3://bucket/prefix.
    #[arg(long)]
    output: String,
    /// Convert only these input keys (relative to the bucket): a JSON array or one key per line.
    #[arg(long)]
    keys_file: Option<PathBuf>,
    #[command(flatten)]
    convert: ConvertArgs,
    #[command(flatten)]
    local: LocalArgs,
}

#[derive(Debug, Args)]
struct ReprocessArgs {
    /// The earlier run's failed-keys.json: a local path under its output directory, or s3://….
    #[arg(long)]
    report: String,
    /// The input directory of the earlier run, when its report is local.
    #[arg(long)]
    input: Option<PathBuf>,
    #[command(flatten)]
    convert: ConvertArgs,
    #[command(flatten)]
    local: LocalArgs,
}

/// Options of the local execution itself.
#[derive(Debug, Args)]
struct LocalArgs {
    /// S3-compatible endpoint for s3:// locations (default: AWS, from the environment).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Run id (the execution name) [default: run-<UTC time>-<random>].
    #[arg(long)]
    run_id: Option<String>,
    /// Most files converted at once, across batches.
    #[arg(long, default_value_t = 64)]
    max_files: usize,
    /// Memory budget for conversion, in MiB; bounds how many files convert at once.
    #[arg(long, default_value_t = 1024)]
    memory_mb: u32,
    /// How long the run's table leases last, in seconds: the longest it may take. A run killed
    /// with its leases held blocks its tables until then [default: 86400].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    lease_seconds: Option<u64>,
    /// No progress display.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // The embedded endpoint's server (s3s) logs every error answer it gives, the 404s
            // and 412s the pipeline expects and the 501 of calls it does not implement
            // (ListMultipartUploads) among them; what matters of them reaches the run's result.
            tracing_subscriber::EnvFilter::try_from_env("CSVLAKE_LOG")
                .unwrap_or_else(|_| format!("warn,{OUTCOME_LOG_TARGET}=off,s3s=off").into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).await,
        Command::Reprocess(args) => reprocess(args).await,
        Command::Start(args) => sfn::start(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("csvlake: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Where a local run reads and writes: an embedded endpoint over directories, or S3.
struct Store {
    _server: Option<LocalS3>,
    client: aws_sdk_s3::Client,
    /// The directory served as the output bucket, for local runs.
    output_dir: Option<PathBuf>,
    input_dir: Option<PathBuf>,
}

impl Store {
    async fn local(input: &Path, output: &Path) -> Result<Self> {
        if !input.is_dir() {
            bail!("{}: not a directory", input.display());
        }
        let server = LocalS3::start(&[
            LocalBucket { name: LOCAL_INPUT.into(), dir: input.to_path_buf() },
            LocalBucket { name: LOCAL_OUTPUT.into(), dir: output.to_path_buf() },
        ])
        .await?;
        Ok(Self {
            client: server.client(),
            _server: Some(server),
            output_dir: Some(output.to_path_buf()),
            input_dir: Some(input.to_path_buf()),
        })
    }

    async fn s3(endpoint_url: Option<&str>) -> Self {
        Self { _server: None, client: csvlake_s3::env_client(endpoint_url).await, output_dir: None, input_dir: None }
    }

    /// How to show an output object to the user: its path for local runs.
    fn show(&self, at: &ObjectLocation) -> String {
        match &self.output_dir {
            Some(dir) => dir.join(&at.key).display().to_string(),
            None => at.uri(),
        }
    }
}

async fn run(args: RunArgs) -> Result<ExitCode> {
    let (input, output) = (Location::parse(&args.input)?, Location::parse(&args.output)?);
    let (store, base) = match (input, output) {
        (Location::Local(i), Location::Local(o)) => {
            let store = Store::local(&i, &o).await?;
            (
                store,
                scan(input_at(LOCAL_INPUT, ""), OutputLocation { bucket: LOCAL_OUTPUT.into(), prefix: String::new() }),
            )
        }
        (Location::S3 { bucket: ib, key: ip }, Location::S3 { bucket: ob, key: op }) => (
            Store::s3(args.local.endpoint_url.as_deref()).await,
            scan(input_at(&ib, &ip), OutputLocation { bucket: ob, prefix: op }),
        ),
        _ => bail!("--input and --output must both be local directories or both be s3:// locations"),
    };
    let mut base = RunInput { incremental: Some(true), ..base };
    if let Some(path) = &args.keys_file {
        base.mode = Mode::Keys;
        base.keys = read_keys(path)?;
    }
    let input = args.convert.patch(base)?;
    let output = input.output.clone().context("no output location")?;
    execute(&store, input, &output, &args.local).await
}

async fn reprocess(args: ReprocessArgs) -> Result<ExitCode> {
    let (store, report) = match Location::parse(&args.report)? {
        Location::S3 { bucket, key } => {
            (Store::s3(args.local.endpoint_url.as_deref()).await, ObjectLocation { bucket, key })
        }
        Location::Local(path) => {
            let input = args.input.as_deref().with_context(|| {
                format!("{} is local: name the directory its run read with --input DIR", path.display())
            })?;
            let (output_dir, key) = local_run_object(&path)?;
            (Store::local(input, &output_dir).await?, ObjectLocation { bucket: LOCAL_OUTPUT.into(), key })
        }
    };
    let earlier = csvlake_planner::plan::read_run_input(&store.client, &report).await?;
    let output = earlier.output.clone().with_context(|| format!("{} names no output location", args.report))?;
    // The options given here patch the earlier run's; the planner lays them over the file.
    let over =
        args.convert.patch(RunInput { mode: Mode::Report, report: Some(report), keys: Vec::new(), ..earlier })?;
    execute(&store, over, &output, &args.local).await
}

/// Splits `<dir>/_runs/<id>/<name>` into the output directory and the object key.
fn local_run_object(path: &Path) -> Result<(PathBuf, String)> {
    let parts: Vec<_> = path.components().collect();
    let n = parts.len();
    if n < 3 || parts[n - 3].as_os_str() != "_runs" {
        bail!("{}: expected <output dir>/_runs/<run id>/failed-keys.json", path.display());
    }
    let dir: PathBuf = parts[..n - 3].iter().collect();
    let key: Vec<String> = parts[n - 3..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    Ok((if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir }, key.join("/")))
}

fn run_id() -> String {
    let now = chrono::Utc::now();
    let noise = now.timestamp_subsec_nanos() ^ std::process::id().rotate_left(16);
    format!("run-{}-{:04x}", now.format("%Y%m%dT%H%M%SZ"), noise & 0xffff)
}

/// Executes the state machine on `input` and prints the report's summary.
async fn execute(store: &Store, input: RunInput, output: &OutputLocation, local: &LocalArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let run_id = local.run_id.clone().unwrap_or_else(run_id);
    csvlake_planner::plan::check_run_id(&run_id)?;
    let progress = Arc::new(progress::RunProgress::new(local.quiet || !std::io::stderr().is_terminal()));
    let converter = Converter::new(store.client.clone())
        .with_memory_budget_mib(local.memory_mb)
        .with_max_files(local.max_files)
        .with_progress(progress.clone());
    let on_plan: PlanObserver = {
        let progress = progress.clone();
        Arc::new(move |plan| progress.planned(plan.files, plan.bytes))
    };
    let executor = observed_executor(store.client.clone(), Arc::new(converter), planner_config(local), Some(on_plan))?;
    let execution = executor.execute(&run_id, serde_json::to_value(&input)?).await;
    progress.finish();
    let report_at =
        ObjectLocation { bucket: output.bucket.clone(), key: run_key(&output.prefix, &run_id, names::REPORT) };
    // A run that exceeded its tolerance fails after reporting; any other failure means that no
    // report of this run can be trusted (one found may be an earlier run's, or partly written).
    // A Map that failed on its own is reported too, and exits 1 after the summary.
    // So are a run over conform_limit and one whose catalog could not be written: the summary,
    // then the error.
    let reported = match &execution.status {
        ExecutionStatus::Failed(e) if [MAP_FAILED, CONFORM_LIMIT, CATALOG_ERROR].contains(&e.error.as_str()) => Some(e),
        _ => None,
    };
    if let ExecutionStatus::Failed(e) = &execution.status
        && e.error != TOLERANCE_EXCEEDED
        && reported.is_none()
    {
        eprintln!("csvlake: run {run_id} failed: {}: {}", e.error, lambda_message(&e.cause));
        return Ok(ExitCode::from(1));
    }
    let Some(report) = summary::read_report(&store.client, &report_at).await? else {
        bail!("run {run_id} wrote no report at {}", store.show(&report_at));
    };
    let reprocess_hint = |failed_keys: &ObjectLocation| match &store.input_dir {
        Some(dir) => format!("csvlake reprocess --report {} --input {}", store.show(failed_keys), dir.display()),
        None => format!("csvlake reprocess --report {}", failed_keys.uri()),
    };
    let shown = summary::Shown {
        report: store.show(&report_at),
        failed_keys: {
            let at = ObjectLocation { key: run_key(&output.prefix, &run_id, names::FAILED_KEYS), ..report_at.clone() };
            (report.totals.failed > 0).then(|| (store.show(&at), reprocess_hint(&at)))
        },
    };
    let code = summary::print(&report, &shown, started.elapsed().as_secs_f64());
    match reported {
        Some(e) if e.error != MAP_FAILED => {
            eprintln!("csvlake: run {run_id} failed: {}: {}", e.error, lambda_message(&e.cause));
            Ok(ExitCode::from(1))
        }
        Some(_) => Ok(ExitCode::from(1)),
        None => Ok(code),
    }
}

/// The planner's settings of a local run: the roots are the run's own, the lease as asked.
fn planner_config(local: &LocalArgs) -> PlannerConfig {
    let mut config = PlannerConfig::default();
    if let Some(seconds) = local.lease_seconds {
        config.lease_seconds = seconds;
    }
    config
}

/// A failed function's message: a Lambda error's cause is `{"errorType", "errorMessage"}`.
fn lambda_message(cause: &str) -> std::borrow::Cow<'_, str> {
    match serde_json::from_str::<serde_json::Value>(cause) {
        Ok(serde_json::Value::Object(o)) => match o.get("errorMessage").and_then(|m| m.as_str()) {
            Some(m) => m.to_owned().into(),
            None => cause.into(),
        },
        _ => cause.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_report_path_names_its_output_directory() {
        let (dir, key) = local_run_object(Path::new("out/_runs/r1/failed-keys.json")).unwrap();
        assert_eq!((dir, key.as_str()), (PathBuf::from("out"), "_runs/r1/failed-keys.json"));
        assert!(local_run_object(Path::new("out/failed-keys.json")).is_err());
    }

    #[test]
    fn lease_seconds_reach_the_planner() {
        let lease = |extra: &[&str]| {
            let cli = Cli::try_parse_from([&["csvlake", "run", "--input", "in", "--output", "out"], extra].concat())
                .expect("arguments");
            let Command::Run(args) = cli.command else { panic!("a run") };
            planner_config(&args.local).lease_seconds
        };
        assert_eq!(lease(&[]), PlannerConfig::default().lease_seconds);
        assert_eq!(lease(&["--lease-seconds", "60"]), 60);
        assert!(
            Cli::try_parse_from(["csvlake", "run", "--input", "i", "--output", "o", "--lease-seconds", "0"]).is_err()
        );
    }

    #[test]
    fn run_ids_are_valid_execution_names() {
        let id = run_id();
        assert!(id.starts_with("run-") && id.len() <= 80, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{id}");
    }
}
