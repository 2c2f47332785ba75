/**
 * What a deployment of csvlake can change, from props or from CDK context (`-c name=value`).
 * Every setting has a default, so `npx cdk deploy` alone gives a working stack.
 */
import * as path from 'path';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Node } from 'constructs';

/** The repository root: the Cargo workspace, the state machine and its examples live there. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** The Cargo workspace manifest that cargo-lambda builds the three functions from. */
export const WORKSPACE_MANIFEST = path.join(REPO_ROOT, 'Cargo.toml');
/** The one state machine definition: `csvlake run` executes this file, and the stack deploys it. */
export const DEFINITION_FILE = path.join(REPO_ROOT, 'statemachine', 'pipeline.asl.json');
/** The example execution inputs. */
export const EXAMPLES_DIR = path.join(REPO_ROOT, 'statemachine', 'examples');
/** The JSON Schema (draft-07) of the execution input, generated from the types the planner reads. */
export const EXECUTION_INPUT_SCHEMA_FILE = path.join(REPO_ROOT, 'statemachine', 'execution-input.schema.json');
/**
 * The names the stack shares with the functions and the state machine (substitution variables,
 * metrics, environment variables, error names), generated from the functions' constants.
 */
export const CONSTANTS_FILE = path.join(REPO_ROOT, 'statemachine', 'constants.json');

/** Default `runTimeoutHours`: a day, the planner's own default lease. */
export const DEFAULT_RUN_TIMEOUT_HOURS = 24;
/** The longest `runTimeoutHours`: a year, the longest a Standard execution runs. */
export const MAX_RUN_TIMEOUT_HOURS = 365 * 24;

/** Settings of a csvlake stack. */
export interface CsvlakeSettings {
  /** An existing bucket to read CSV from. Default: a new bucket. */
  readonly inputBucketName?: string;
  /** An existing bucket to write Parquet, Avro and run reports to. Default: a new bucket. */
  readonly outputBucketName?: string;
  /**
   * The prefix runs read under (the planner's input root: it refuses a run that reads elsewhere);
   * the functions may read nothing else of the input bucket. Default `landing/`. An empty string
   * allows the whole bucket.
   */
  readonly inputPrefix?: string;
  /**
   * The output prefix of every run (`<prefix>parquet/`, `<prefix>avro/`, `<prefix>_runs/`, and the
   * tables' state under `<prefix>_tables/`), the planner's output root; the functions may write
   * nothing else. Default `converted/`.
   */
  readonly outputPrefix?: string;
  /**
   * Which new buckets keep object versions; noncurrent versions expire after 30 days, and delete
   * markers once no version is left behind them. Unset (the default): the input bucket only, so
   * that an overwritten or deleted CSV object can be recovered, while the output bucket, whose
   * keys every re-run overwrites, keeps none. `true`: both buckets. `false`: neither.
   */
  readonly versioned?: boolean;
  /** The converter's memory in MiB; its conversion budget follows it. Default 2048. */
  readonly converterMemoryMiB?: number;
  /**
   * Reserved concurrency of the converter. Default: none (the account's unreserved pool). When
   * set, it must be at least `maxConcurrency`: a Map allowed more converters at once than may run
   * would only have the rest throttled.
   */
  readonly converterReservedConcurrency?: number;
  /**
   * The most converters a run may have at once: the planner clamps a run's `max_concurrency` to it
   * (`CSVLAKE_MAX_CONCURRENCY`), and the reprocess API refuses a request over it. An integer from
   * 1 to 10000. Default 100, or `converterReservedConcurrency` when that is lower.
   */
  readonly maxConcurrency?: number;
  /**
   * An EventBridge Scheduler expression, `cron(...)` or `rate(...)`, that starts an incremental
   * scan. Default: no schedule.
   */
  readonly schedule?: string;
  /** The time zone of a `cron(...)` schedule (IANA name). Default UTC. */
  readonly scheduleTimeZone?: string;
  /** X-Ray tracing of the state machine and the reprocess API. Default false. */
  readonly tracing?: boolean;
  /** An email address that the alarms notify through a new SNS topic. Default: no topic. */
  readonly alarmEmail?: string;
  /**
   * How long the logs are kept, in days: the functions', the state machine's, the reprocess API's
   * (access and execution logs) and the buckets' server access logs in a log bucket the stack
   * creates. Default 30.
   */
  readonly logRetentionDays?: number;
  /**
   * Server access logging of the buckets the stack creates: every request to them, read, write or
   * delete, with its caller. Default true: the stack creates a log bucket, whose objects expire
   * after `logRetentionDays`, unless `serverAccessLogsBucket` names one. Without new buckets (both
   * imported), there is nothing to log.
   */
  readonly serverAccessLogs?: boolean;
  /**
   * An existing bucket that receives the server access logs, under `<stack name>/input/` and
   * `<stack name>/output/`, instead of a new log bucket. Its bucket policy must let the
   * `logging.s3.amazonaws.com` service principal put objects; the stack cannot change an imported
   * bucket's policy. Default: a new bucket.
   */
  readonly serverAccessLogsBucket?: string;
  /**
   * Whether the stack sets the account's API Gateway CloudWatch Logs role (one per account and
   * region, `AWS::ApiGateway::Account`), which the reprocess API's access and execution logs need.
   * Default false: the account already has one (`aws apigateway get-account` shows its
   * `cloudwatchRoleArn`). When true, the stack creates the role with AWS's managed policy
   * AmazonAPIGatewayPushToCloudWatchLogs and keeps it when the stack is deleted, since every API
   * of the account and region logs through it.
   */
  readonly apiGatewayCloudWatchRole?: boolean;
  /**
   * The longest a run may take, in whole hours: the state machine's timeout, and the lifetime of
   * the table leases the planner takes (`CSVLAKE_LEASE_SECONDS`). A lease taken at Plan thus
   * expires no earlier than its run times out, so no run writes a table whose lease another run
   * may have taken over; and the lease of a run that died without releasing it (a timeout) lapses
   * then. Default 24; at most 8760 (a year, the longest a Standard execution runs).
   */
  readonly runTimeoutHours?: number;
}

/** Default `maxConcurrency`. */
export const DEFAULT_MAX_CONCURRENCY = 100;
/** The highest `maxConcurrency`: a Distributed Map runs at most 10,000 children at once. */
export const MAX_MAX_CONCURRENCY = 10000;

/** The settings with every default applied and every value checked. */
export type ResolvedSettings = CsvlakeSettings &
  Required<
    Pick<
      CsvlakeSettings,
      | 'inputPrefix'
      | 'outputPrefix'
      | 'converterMemoryMiB'
      | 'maxConcurrency'
      | 'tracing'
      | 'runTimeoutHours'
      | 'serverAccessLogs'
      | 'apiGatewayCloudWatchRole'
    >
  > & {
    readonly logRetention: logs.RetentionDays;
    /** Whether a new input bucket keeps versions. */
    readonly inputVersioned: boolean;
    /** Whether a new output bucket keeps versions. */
    readonly outputVersioned: boolean;
  };

/** The context names, one per setting. */
const CONTEXT_NAMES: { [K in keyof CsvlakeSettings]-?: string } = {
  inputBucketName: 'inputBucket',
  outputBucketName: 'outputBucket',
  inputPrefix: 'inputPrefix',
  outputPrefix: 'outputPrefix',
  versioned: 'versioned',
  converterMemoryMiB: 'converterMemory',
  converterReservedConcurrency: 'converterReservedConcurrency',
  maxConcurrency: 'maxConcurrency',
  schedule: 'schedule',
  scheduleTimeZone: 'scheduleTimeZone',
  tracing: 'tracing',
  alarmEmail: 'alarmEmail',
  logRetentionDays: 'logRetentionDays',
  runTimeoutHours: 'runTimeoutHours',
  serverAccessLogs: 'serverAccessLogs',
  serverAccessLogsBucket: 'serverAccessLogsBucket',
  apiGatewayCloudWatchRole: 'apiGatewayCloudWatchRole',
};

const NUMBERS = new Set<keyof CsvlakeSettings>([
  'converterMemoryMiB',
  'converterReservedConcurrency',
  'maxConcurrency',
  'logRetentionDays',
  'runTimeoutHours',
]);
const BOOLEANS = new Set<keyof CsvlakeSettings>(['versioned', 'tracing', 'serverAccessLogs', 'apiGatewayCloudWatchRole']);

/**
 * Reads the settings given as context. Values from `-c name=value` arrive as strings; numbers and
 * booleans are parsed, and a value that does not parse is an error that names it.
 */
export function settingsFromContext(node: Node): CsvlakeSettings {
  const settings: Record<string, unknown> = {};
  for (const [setting, name] of Object.entries(CONTEXT_NAMES) as [keyof CsvlakeSettings, string][]) {
    const raw: unknown = node.tryGetContext(name);
    if (raw === undefined || raw === null) continue;
    if (NUMBERS.has(setting)) {
      const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
      if (!Number.isInteger(n)) throw new Error(`context ${name}: expected an integer, got ${JSON.stringify(raw)}`);
      settings[setting] = n;
    } else if (BOOLEANS.has(setting)) {
      if (raw === true || raw === 'true') settings[setting] = true;
      else if (raw === false || raw === 'false') settings[setting] = false;
      else throw new Error(`context ${name}: expected true or false, got ${JSON.stringify(raw)}`);
    } else {
      settings[setting] = String(raw);
    }
  }
  return settings as CsvlakeSettings;
}

/** A prefix as the functions join it: empty, or ending in exactly one `/`. */
export function normalizePrefix(name: string, prefix: string): string {
  if (prefix.startsWith('/') || prefix.includes('//') || /[*?]/.test(prefix)) {
    throw new Error(`${name} ${JSON.stringify(prefix)}: a prefix must not start with '/', hold '//', '*' or '?'`);
  }
  return prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
}

/** Applies the defaults and checks the values. */
export function resolveSettings(settings: CsvlakeSettings): ResolvedSettings {
  const reserved = settings.converterReservedConcurrency;
  const resolved: ResolvedSettings = {
    ...settings,
    inputPrefix: normalizePrefix('inputPrefix', settings.inputPrefix ?? 'landing/'),
    outputPrefix: normalizePrefix('outputPrefix', settings.outputPrefix ?? 'converted/'),
    inputVersioned: settings.versioned ?? true,
    outputVersioned: settings.versioned ?? false,
    converterMemoryMiB: settings.converterMemoryMiB ?? 2048,
    maxConcurrency:
      settings.maxConcurrency ?? (reserved !== undefined && reserved >= 1 ? Math.min(reserved, DEFAULT_MAX_CONCURRENCY) : DEFAULT_MAX_CONCURRENCY),
    tracing: settings.tracing ?? false,
    logRetention: retentionDays(settings.logRetentionDays ?? 30),
    runTimeoutHours: settings.runTimeoutHours ?? DEFAULT_RUN_TIMEOUT_HOURS,
    serverAccessLogs: settings.serverAccessLogs ?? true,
    apiGatewayCloudWatchRole: settings.apiGatewayCloudWatchRole ?? false,
  };
  if (resolved.converterMemoryMiB < 512 || resolved.converterMemoryMiB > 10240) {
    throw new Error(`converterMemoryMiB ${resolved.converterMemoryMiB}: Lambda allows 512 to 10240 for the converter`);
  }
  if (
    !Number.isInteger(resolved.maxConcurrency) ||
    resolved.maxConcurrency < 1 ||
    resolved.maxConcurrency > MAX_MAX_CONCURRENCY
  ) {
    throw new Error(
      `maxConcurrency ${resolved.maxConcurrency}: expected an integer from 1 to ${MAX_MAX_CONCURRENCY} ` +
        '(a Distributed Map runs at most 10000 children at once)',
    );
  }
  if (reserved !== undefined && (!Number.isInteger(reserved) || reserved < resolved.maxConcurrency)) {
    // A Map that may start more converters than the function may run has the rest throttled:
    // each throttled batch waits out Retry's backoff, and fails once it runs out. The ceiling is
    // what limits a run; reserved concurrency only guarantees it.
    throw new Error(
      `converterReservedConcurrency ${reserved} is below maxConcurrency ${resolved.maxConcurrency}: a run could start ` +
        `more converters than may run at once, and the rest would be throttled. Set maxConcurrency to at most ${reserved}, ` +
        `or converterReservedConcurrency to at least ${resolved.maxConcurrency}`,
    );
  }
  if (resolved.serverAccessLogsBucket !== undefined) {
    if (!resolved.serverAccessLogs) {
      throw new Error('serverAccessLogsBucket is set but serverAccessLogs is false: leave one of them out');
    }
    if (resolved.inputBucketName !== undefined && resolved.outputBucketName !== undefined) {
      throw new Error('serverAccessLogsBucket: the stack creates no bucket (inputBucket and outputBucket are both given), so it has nothing to log');
    }
  }
  if (
    !Number.isInteger(resolved.runTimeoutHours) ||
    resolved.runTimeoutHours < 1 ||
    resolved.runTimeoutHours > MAX_RUN_TIMEOUT_HOURS
  ) {
    throw new Error(
      `runTimeoutHours ${resolved.runTimeoutHours}: expected whole hours from 1 to ${MAX_RUN_TIMEOUT_HOURS} ` +
        '(a Standard execution runs at most a year)',
    );
  }
  if (resolved.schedule !== undefined && !/^(cron|rate)\(.+\)$/.test(resolved.schedule)) {
    throw new Error(`schedule ${JSON.stringify(resolved.schedule)}: expected cron(...) or rate(...)`);
  }
  if (
    resolved.inputBucketName !== undefined &&
    resolved.inputBucketName === resolved.outputBucketName &&
    overlaps(resolved.inputPrefix, resolved.outputPrefix)
  ) {
    throw new Error('inputPrefix and outputPrefix overlap in one bucket: outputs would be read as inputs');
  }
  return resolved;
}

/** The run timeout in seconds: the state machine's TimeoutSeconds and the lease lifetime. */
export function runTimeoutSeconds(settings: ResolvedSettings): number {
  return settings.runTimeoutHours * 3600;
}

function overlaps(a: string, b: string): boolean {
  return a.startsWith(b) || b.startsWith(a);
}

/** The retention enum value of a number of days; CloudWatch Logs accepts only some. */
function retentionDays(days: number): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number');
  if (!allowed.includes(days)) {
    throw new Error(`logRetentionDays ${days}: CloudWatch Logs allows ${allowed.sort((a, b) => a - b).join(', ')}`);
  }
  return days as logs.RetentionDays;
}
