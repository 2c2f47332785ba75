//! `csvlake start`: starts an execution of the deployed state machine with aws-sdk-sfn and,
//! with `--wait`, polls it to the end and prints the run's summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_sfn::types::ExecutionStatus;
use clap::Args;
use csvlake_contract::payload::OutputLocation;
use csvlake_contract::run::{Mode, RunInput, RunSummary};

use crate::args::{ConvertArgs, Location, input_at, scan};

/// `start` options.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The state machine's ARN.
    #[arg(long)]
    state_machine_arn: String,
    /// The execution input, a JSON file (see statemachine/examples/).
    #[arg(long, conflicts_with_all = ["prefix", "reprocess"])]
    input: Option<PathBuf>,
    /// Scan this input: s3://bucket/prefix (needs --output).
    #[arg(long, requires = "output", conflicts_with = "reprocess")]
    prefix: Option<String>,
    /// Output for --prefix: s3://bucket/prefix.
    #[arg(long)]
    output: Option<String>,
    /// Reprocess the failed keys of an earlier run: s3://bucket/…/failed-keys.json.
    #[arg(long)]
    reprocess: Option<String>,
    /// Execution name, which is the run id [default: chosen by Step Functions].
    #[arg(long)]
    name: Option<String>,
    /// Poll until the execution ends, then print its summary.
    #[arg(long)]
    wait: bool,
    /// Seconds between polls with --wait.
    #[arg(long, default_value_t = 5)]
    poll_seconds: u64,
    /// Step Functions endpoint (default: AWS, from the environment).
    #[arg(long)]
    sfn_endpoint_url: Option<String>,
    #[command(flatten)]
    convert: ConvertArgs,
}

fn s3(flag: &str, value: &str) -> Result<(String, String)> {
    match Location::parse(value)? {
        Location::S3 { bucket, key } => Ok((bucket, key)),
        Location::Local(_) => bail!("{flag} takes an s3:// location, not {value}"),
    }
}

/// The execution input `start` sends.
fn execution_input(args: &StartArgs) -> Result<RunInput> {
    let base = if let Some(path) = &args.input {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not an execution input", path.display()))?
    } else if let Some(prefix) = &args.prefix {
        let (ib, ip) = s3("--prefix", prefix)?;
        let (ob, op) = s3("--output", args.output.as_deref().unwrap_or_default())?;
        scan(input_at(&ib, &ip), OutputLocation { bucket: ob, prefix: op })
    } else if let Some(report) = &args.reprocess {
        let (bucket, key) = s3("--reprocess", report)?;
        RunInput {
            mode: Mode::Report,
            report: Some(csvlake_contract::run::ObjectLocation { bucket, key }),
            ..RunInput::default()
        }
    } else {
        bail!("name what to run: --input FILE, --prefix s3://… --output s3://…, or --reprocess s3://…");
    };
    args.convert.patch(base)
}

/// Starts the execution; with `--wait`, follows it to the end.
pub async fn start(args: StartArgs) -> Result<ExitCode> {
    let input = execution_input(&args)?;
    let client = aws_sdk_sfn::Client::new(&csvlake_s3::sdk_config(args.sfn_endpoint_url.as_deref()).await);
    let started = Instant::now();
    let out = client
        .start_execution()
        .state_machine_arn(&args.state_machine_arn)
        .set_name(args.name.clone())
        .input(serde_json::to_string(&input)?)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("StartExecution: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)))?;
    let arn = out.execution_arn().to_owned();
    println!("started {arn}");
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        let d = client
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DescribeExecution: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)))?;
        match d.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {
                tokio::time::sleep(Duration::from_secs(args.poll_seconds)).await;
            }
            ExecutionStatus::Succeeded => {
                let summary: RunSummary = serde_json::from_str(d.output().unwrap_or("null"))
                    .context("the execution's output is not a run summary")?;
                // The execution's own duration: the time polled here overshoots it by up to
                // --poll-seconds.
                let secs = match d.stop_date() {
                    Some(stop) => stop.as_secs_f64() - d.start_date().as_secs_f64(),
                    None => started.elapsed().as_secs_f64(),
                };
                crate::summary::print_totals(&summary.run_id, &summary.totals, secs);
                for (kind, n) in &summary.failures_by_kind {
                    println!("failed: {kind}: {n} files");
                }
                println!("report: {}", summary.report.uri());
                if let Some(k) = &summary.failed_keys {
                    println!("failed keys: {}", k.uri());
                    println!(
                        "after fixing them: csvlake start --state-machine-arn {} --reprocess {}",
                        args.state_machine_arn,
                        k.uri()
                    );
                }
                return Ok(if summary.totals.failed > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS });
            }
            status => {
                let (error, cause) = (d.error().unwrap_or("?"), d.cause().unwrap_or(""));
                println!("execution {status}: {error}: {cause}");
                if let Some(out) = &input.output {
                    let name = arn.rsplit(':').next().unwrap_or_default();
                    println!(
                        "report: s3://{}/{}",
                        out.bucket,
                        csvlake_contract::run::run_key(&out.prefix, name, "report.json")
                    );
                }
                // A run that exceeded its tolerance still converted what it could.
                return Ok(if error == crate::TOLERANCE_EXCEEDED { ExitCode::from(2) } else { ExitCode::from(1) });
            }
        }
    }
}
