/**
 * The names the stack shares with the functions and the state machine, read from
 * statemachine/constants.json. That file is generated from the functions' own constants and kept
 * current by their tests, so a name is spelled once, in Rust, and never repeated here.
 */
import * as fs from 'fs';
import { CONSTANTS_FILE } from './settings';

/** The contents of constants.json. */
export interface SharedNames {
  /** The substitution variables of pipeline.asl.json, one per function ARN. */
  readonly substitutions: {
    readonly planner: string;
    readonly converter: string;
    readonly reducer: string;
  };
  /** The reducer's EMF metrics: their namespace, their dimension and the metric names. */
  readonly metrics: {
    readonly namespace: string;
    readonly pipeline_dimension: string;
    readonly files_converted: string;
    readonly files_failed: string;
    readonly files_skipped: string;
    readonly bytes_in: string;
    readonly bytes_out: string;
    readonly rows: string;
  };
  /** Environment variables the functions read. */
  readonly environment: {
    /** The pipeline's name, the value of the metrics' dimension. */
    readonly pipeline: string;
    /** An S3 endpoint other than AWS's (a local S3). */
    readonly s3_endpoint_url: string;
    /** The planner's input root, `s3://bucket/prefix`: runs read under it. */
    readonly input_root: string;
    /** The planner's output root, `s3://bucket/prefix`: runs write under it. */
    readonly output_root: string;
    /** The lifetime of a table lease in seconds: the longest a run may take. */
    readonly lease_seconds: string;
    /** The planner's ceiling on a run's `max_concurrency`. */
    readonly max_concurrency: string;
  };
  /** The error names the functions raise and the state machine's Retry and Catch match. */
  readonly errors: {
    readonly transient: string;
    readonly internal: string;
    readonly tolerance_exceeded: string;
    readonly not_run: string;
    readonly batch_failed: string;
  };
}

/** Every name the stack expects in the file, group by group. */
const EXPECTED: { readonly [G in keyof SharedNames]: readonly (keyof SharedNames[G])[] } = {
  substitutions: ['planner', 'converter', 'reducer'],
  metrics: ['namespace', 'pipeline_dimension', 'files_converted', 'files_failed', 'files_skipped', 'bytes_in', 'bytes_out', 'rows'],
  environment: ['pipeline', 's3_endpoint_url', 'input_root', 'output_root', 'lease_seconds', 'max_concurrency'],
  errors: ['transient', 'internal', 'tolerance_exceeded', 'not_run', 'batch_failed'],
};

/**
 * Reads a constants file, and checks that every name the stack uses is there as a non-empty
 * string: a renamed or missing entry fails the synth rather than deploying `undefined`.
 */
export function loadSharedNames(file: string): SharedNames {
  const names: Record<string, Record<string, unknown> | undefined> = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const [group, keys] of Object.entries(EXPECTED)) {
    for (const key of keys as string[]) {
      const value = names[group]?.[key];
      if (typeof value !== 'string' || value === '') {
        throw new Error(`${file}: ${group}.${key} must be a non-empty string, got ${JSON.stringify(value)}`);
      }
    }
  }
  return names as unknown as SharedNames;
}

/** The shared names. */
export const SHARED_NAMES: SharedNames = loadSharedNames(CONSTANTS_FILE);
