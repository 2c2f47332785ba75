/**
 * The planner, converter and reducer: three Rust binaries of one Cargo workspace, built by
 * cargo-lambda for arm64 and run on provided.al2023, each with its own role and log group.
 */
import { Duration, Size, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { BundlingOptions, RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { SHARED_NAMES } from './constants';
import { acknowledgeWildcards } from './nag';
import { ResolvedSettings, WORKSPACE_MANIFEST, runTimeoutSeconds } from './settings';
import { Storage } from './storage';

/** The binary names of the workspace (`[[bin]]` of functions/planner, converter and reducer). */
export const BINARIES = {
  planner: 'csvlake-planner',
  converter: 'csvlake-converter',
  reducer: 'csvlake-reducer',
} as const;

/**
 * The Cargo profile the functions are built with: the workspace's `[profile.lambda]`, a release
 * build without debug information (a fifth of the size).
 */
export const CARGO_PROFILE = 'lambda';

/** The environment variable that gives the reducer the pipeline's name, its metrics' dimension. */
export const PIPELINE_ENV = SHARED_NAMES.environment.pipeline;
/** The environment variable of the planner's input root, `s3://bucket/prefix/`. */
export const INPUT_ROOT_ENV = SHARED_NAMES.environment.input_root;
/** The environment variable of the planner's output root, `s3://bucket/prefix/`. */
export const OUTPUT_ROOT_ENV = SHARED_NAMES.environment.output_root;
/** The environment variable of the table leases' lifetime in seconds, the run timeout. */
export const LEASE_SECONDS_ENV = SHARED_NAMES.environment.lease_seconds;
/** The environment variable of the planner's ceiling on a run's `max_concurrency`. */
export const MAX_CONCURRENCY_ENV = SHARED_NAMES.environment.max_concurrency;

/**
 * The objects of a table's state (`<outputPrefix>_tables/<table>/`), as the contract names them
 * (functions/contract/src/tables.rs, `names`): the pointer to the latest index generation, the
 * index generations, the lease, and the schemas.
 */
const TABLE_CURRENT = 'current.json';
const TABLE_INDEX = 'index/*';
const TABLE_LEASE = 'lease.json';
const TABLE_SCHEMAS = 'schemas/*';

/** The three functions of a csvlake stack. */
export class PipelineFunctions extends Construct {
  /** Lists or reads the keys, skips up-to-date files and writes the batch manifest. */
  public readonly planner: lambda.Function;
  /** Converts one batch of files. */
  public readonly converter: lambda.Function;
  /** Turns the Map's results into the run report. */
  public readonly reducer: lambda.Function;

  constructor(scope: Construct, id: string, storage: Storage, settings: ResolvedSettings) {
    super(scope, id);
    const retention = settings.logRetention;

    this.planner = this.rustFunction('Planner', BINARIES.planner, retention, {
      description: 'csvlake planner: lists the input, skips up-to-date files, writes the batch manifest',
      // Listing a million keys takes about a thousand ListObjectsV2 pages; memory holds one
      // 24-byte entry per key for collision checks.
      memorySize: 1024,
      timeout: Duration.minutes(15),
      environment: {
        // The planner refuses a run that reads or writes outside this stack's prefixes, and roots
        // every run's output keys at the input prefix.
        [INPUT_ROOT_ENV]: storage.inputRoot(),
        [OUTPUT_ROOT_ENV]: storage.outputRoot(),
        // A lease lasts as long as the longest run (the state machine's timeout): a run that
        // times out holds its tables until then, and none outlives its leases.
        [LEASE_SECONDS_ENV]: String(runTimeoutSeconds(settings)),
        // The planner clamps a run's max_concurrency (the Map's MaxConcurrency) to it, so that no
        // run, whatever its input asks, starts more converters than the deployment allows.
        [MAX_CONCURRENCY_ENV]: String(settings.maxConcurrency),
      },
    });
    this.converter = this.rustFunction('Converter', BINARIES.converter, retention, {
      description: 'csvlake converter: streams the CSV files of one batch to Parquet and Avro',
      // The converter sizes its memory budget from AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
      memorySize: settings.converterMemoryMiB,
      timeout: Duration.minutes(15),
      // At least maxConcurrency when set (the settings check it), so that a run at the ceiling
      // is never throttled.
      reservedConcurrentExecutions: settings.converterReservedConcurrency,
    });
    this.reducer = this.rustFunction('Reducer', BINARIES.reducer, retention, {
      description: 'csvlake reducer: reads the Map results, writes the run report and failed keys',
      memorySize: 1024,
      timeout: Duration.minutes(15),
      // The report's list of failed files is spooled to a temporary file before it is uploaded.
      ephemeralStorageSize: Size.gibibytes(2),
      environment: { [PIPELINE_ENV]: Stack.of(this).stackName },
    });

    const input = storage.inputBucket;
    const output = storage.outputBucket;

    // The planner lists the input, the converted objects for incremental runs, and the tables'
    // state: it lists `<table>/current.json` as a prefix before reading it, to tell a new table
    // from a forbidden read. It reads each table's current.json, index generation and lease; it
    // creates and takes over lease.json, deletes the leases it took when the run stops at Plan,
    // and writes nothing else of a table. It reads failed-keys.json (mode report) and writes the
    // manifest and rejected files under _runs/.
    //
    // Before it plans, it aborts the multipart uploads that runs which died left behind: those
    // under `<outputPrefix>_runs/`, and under `<outputPrefix>parquet/<table>/` and
    // `<outputPrefix>avro/<table>/` of each table it leases. It finds them with
    // ListMultipartUploads, by prefix, which IAM authorizes as s3:ListBucketMultipartUploads on the
    // bucket. That action has no s3:prefix condition key (IAM sets it only for ListObjects and
    // ListObjectVersions), so a condition on it would deny every listing; the listing shows only
    // the keys and ids of uploads in progress, and the aborts are limited to the prefixes below.
    addStatements(this.planner, [
      listBucket(input.bucketArn, [`${storage.inputPrefix}*`]),
      listBucket(output.bucketArn, [...storage.convertedPrefixes(), storage.tablesPrefix()]),
      new iam.PolicyStatement({ actions: ['s3:ListBucketMultipartUploads'], resources: [output.bucketArn] }),
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
        resources: [storage.runObjects()],
      }),
      new iam.PolicyStatement({ actions: ['s3:AbortMultipartUpload'], resources: storage.convertedObjects() }),
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [TABLE_CURRENT, TABLE_INDEX, TABLE_LEASE].map((name) => storage.tableObjects(name)),
      }),
      new iam.PolicyStatement({
        actions: ['s3:PutObject', 's3:DeleteObject'],
        resources: [storage.tableObjects(TABLE_LEASE)],
      }),
    ]);
    // The converter reads the input and writes the two formats. DeleteObject removes a file's
    // first output when its second fails, so nothing is left half-written.
    addStatements(this.converter, [
      // Without s3:ListBucket, S3 answers a GET of a key deleted since planning with 403 instead
      // of 404, and the converter could not report that one file as not found. The permission
      // cannot carry an s3:prefix condition: a GET has no prefix, so the condition would never hold.
      new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [input.bucketArn] }),
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [storage.inputObjects()] }),
      new iam.PolicyStatement({
        actions: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'],
        resources: storage.convertedObjects(),
      }),
      // A retried batch HEADs its outputs (s3:GetObject) and skips the files whose provenance
      // metadata shows them done. Likewise, without s3:ListBucket S3 answers the HEAD of an output
      // not yet written with 403 instead of 404, and the permission cannot carry an s3:prefix
      // condition, which a HEAD never satisfies.
      new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [output.bucketArn] }),
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: storage.convertedObjects() }),
      // One object per distinct file schema of a table. It reads the table's schema, which its
      // files are written with: current.json names it, under schemas/. Nothing else of the
      // tables' state.
      new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [storage.tableObjects(TABLE_SCHEMAS)] }),
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [storage.tableObjects(TABLE_CURRENT), storage.tableObjects(TABLE_SCHEMAS)],
      }),
      // A batch about to fail records the per-file results it has in
      // `_runs/<run id>/batches/<n>.json`, which the reducer merges; nothing else of _runs/.
      new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [storage.batchResultObjects()] }),
    ]);
    // The reducer lists the ResultWriter files, reads them with the manifest, and writes the
    // report. It keeps the tables' state: it reads and writes current.json and the index
    // generations, deletes the generation a new one replaces, and releases the leases (also from
    // ReleaseLeases, when Reduce fails). With delete_orphans, it deletes the outputs of deleted
    // inputs. At the end of a run, which still holds its tables' leases, it aborts the multipart
    // uploads left in progress under those tables' outputs and its own _runs/ folder (an upload
    // whose CreateMultipartUpload answer was lost), with the planner's ListMultipartUploads.
    addStatements(this.reducer, [
      listBucket(output.bucketArn, [storage.runsPrefix(), storage.tablesPrefix()]),
      new iam.PolicyStatement({ actions: ['s3:ListBucketMultipartUploads'], resources: [output.bucketArn] }),
      new iam.PolicyStatement({ actions: ['s3:AbortMultipartUpload'], resources: storage.convertedObjects() }),
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
        resources: [storage.runObjects()],
      }),
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [storage.tableState()],
      }),
      new iam.PolicyStatement({ actions: ['s3:DeleteObject'], resources: storage.convertedObjects() }),
    ]);

    // cdk-nag's AwsSolutions-IAM5 finds every object ARN with a wildcard. Each is a folder the
    // function works in, whose keys are made at run time, so IAM can name them only by prefix.
    const runs = 'objects under <outputPrefix>_runs/, named by the run id that each execution is given at start';
    const tables =
      'objects of the tables\' state, <outputPrefix>_tables/<table>/..., whose table folders the planner derives from the ' +
      'input keys at run time and may be several levels deep (table_depth), so the table is a wildcard';
    const converted =
      'Parquet and Avro outputs under <outputPrefix>parquet/ and <outputPrefix>avro/, whose keys mirror the input keys ' +
      'that each run converts';
    acknowledgeWildcards(
      this.planner.role!,
      [storage.runObjects()],
      `the planner's role: it writes the manifest, reads failed-keys.json and aborts the uploads of runs which died, ${runs}`,
    );
    acknowledgeWildcards(
      this.planner.role!,
      storage.convertedObjects(),
      `the planner's role: it aborts the multipart uploads that runs which died left among the ${converted}`,
    );
    acknowledgeWildcards(
      this.planner.role!,
      [TABLE_CURRENT, TABLE_INDEX, TABLE_LEASE].map((name) => storage.tableObjects(name)),
      `the planner's role: it reads each table's current.json, index generations and lease.json, and writes and deletes only lease.json; ${tables}`,
    );
    acknowledgeWildcards(
      this.converter.role!,
      [storage.inputObjects()],
      "the converter's role: it reads the CSV objects of its batch under the input prefix, keys that each run lists or is " +
        'given at run time',
    );
    acknowledgeWildcards(this.converter.role!, storage.convertedObjects(), `the converter's role: it writes and HEADs its ${converted}`);
    acknowledgeWildcards(
      this.converter.role!,
      [storage.tableObjects(TABLE_SCHEMAS)],
      `the converter's role: it writes one object per file schema under each table's schemas/; ${tables}`,
    );
    acknowledgeWildcards(
      this.converter.role!,
      [storage.tableObjects(TABLE_CURRENT)],
      `the converter's role: it reads each table's current.json, which names the schema the table's files are written with; ${tables}`,
    );
    acknowledgeWildcards(
      this.converter.role!,
      [storage.batchResultObjects()],
      "the converter's role: a batch about to fail writes its per-file results to _runs/<run id>/batches/<n>.json, " +
        'named by the run id and the batch number that each execution makes at run time',
    );
    acknowledgeWildcards(this.reducer.role!, [storage.runObjects()], `the reducer's role: it reads the Map's results and writes the run report, ${runs}`);
    acknowledgeWildcards(
      this.reducer.role!,
      [storage.tableState()],
      `the reducer's role: it keeps current.json and the index generations and releases the leases; ${tables}`,
    );
    acknowledgeWildcards(this.reducer.role!, storage.convertedObjects(), `the reducer's role: with delete_orphans it deletes the ${converted}`);
  }

  /** The three functions. */
  public all(): lambda.Function[] {
    return [this.planner, this.converter, this.reducer];
  }

  private rustFunction(
    id: string,
    binaryName: string,
    retention: logs.RetentionDays,
    props: Partial<lambda.FunctionOptions>,
  ): lambda.Function {
    const logGroup = new logs.LogGroup(this, `${id}Logs`, { retention });
    // An explicit role instead of AWSLambdaBasicExecutionRole, whose log statements name every
    // log group of the account.
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `csvlake ${binaryName}`,
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    return new RustFunction(this, id, {
      manifestPath: WORKSPACE_MANIFEST,
      binaryName,
      bundling: bundlingFor(binaryName),
      runtime: 'provided.al2023',
      architecture: lambda.Architecture.ARM_64,
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      ...props,
    });
  }
}

/** How cargo-lambda builds one binary of the workspace. */
export function bundlingFor(binaryName: string): BundlingOptions {
  // The workspace's default member is the CLI, so `--bin` alone would not find the binary.
  return { profile: CARGO_PROFILE, cargoLambdaFlags: ['--package', binaryName] };
}

function addStatements(fn: lambda.Function, statements: iam.PolicyStatement[]): void {
  for (const statement of statements) fn.addToRolePolicy(statement);
}

/** `s3:ListBucket` limited to listings whose prefix matches one of `prefixes`. */
function listBucket(bucketArn: string, prefixes: string[]): iam.PolicyStatement {
  return new iam.PolicyStatement({
    actions: ['s3:ListBucket'],
    resources: [bucketArn],
    conditions: { StringLike: { 's3:prefix': prefixes } },
  });
}
