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
  /** Whether new buckets keep object versions (noncurrent ones expire after 30 days). Default false. */
  readonly versioned?: boolean;
  /** The converter's memory in MiB; its conversion budget follows it. Default 2048. */
  readonly converterMemoryMiB?: number;
  /** Reserved concurrency of the converter. Default: none (the account's unreserved pool). */
  readonly converterReservedConcurrency?: number;
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
  /** How long the logs of the functions and the state machine are kept, in days. Default 30. */
  readonly logRetentionDays?: number;
  /**
   * The longest a run may take, in whole hours: the state machine's timeout, and the lifetime of
   * the table leases the planner takes (`CSVLAKE_LEASE_SECONDS`). A lease taken at Plan thus
   * expires no earlier than its run times out, so no run writes a table whose lease another run
   * may have taken over; and the lease of a run that died without releasing it (a timeout) lapses
   * then. Default 24; at most 8760 (a year, the longest a Standard execution runs).
   */
  readonly runTimeoutHours?: number;
}

/** The settings with every default applied and every value checked. */
export type ResolvedSettings = CsvlakeSettings &
  Required<
    Pick<CsvlakeSettings, 'inputPrefix' | 'outputPrefix' | 'versioned' | 'converterMemoryMiB' | 'tracing' | 'runTimeoutHours'>
  > & {
    readonly logRetention: logs.RetentionDays;
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
  schedule: 'schedule',
  scheduleTimeZone: 'scheduleTimeZone',
  tracing: 'tracing',
  alarmEmail: 'alarmEmail',
  logRetentionDays: 'logRetentionDays',
  runTimeoutHours: 'runTimeoutHours',
};

const NUMBERS = new Set<keyof CsvlakeSettings>([
  'converterMemoryMiB',
  'converterReservedConcurrency',
  'logRetentionDays',
  'runTimeoutHours',
]);
const BOOLEANS = new Set<keyof CsvlakeSettings>(['versioned', 'tracing']);

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
  const resolved: ResolvedSettings = {
    ...settings,
    inputPrefix: normalizePrefix('inputPrefix', settings.inputPrefix ?? 'landing/'),
    outputPrefix: normalizePrefix('outputPrefix', settings.outputPrefix ?? 'converted/'),
    versioned: settings.versioned ?? false,
    converterMemoryMiB: settings.converterMemoryMiB ?? 2048,
    tracing: settings.tracing ?? false,
    logRetention: retentionDays(settings.logRetentionDays ?? 30),
    runTimeoutHours: settings.runTimeoutHours ?? DEFAULT_RUN_TIMEOUT_HOURS,
  };
  if (resolved.converterMemoryMiB < 512 || resolved.converterMemoryMiB > 10240) {
    throw new Error(`converterMemoryMiB ${resolved.converterMemoryMiB}: Lambda allows 512 to 10240 for the converter`);
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
