/**
 * The input and output buckets, created secure by default or imported by name, and the ARNs of
 * the prefixes that the functions and the state machine are allowed to touch.
 */
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge } from './nag';
import { ResolvedSettings } from './settings';

/** How long noncurrent versions of a versioned bucket are kept. */
export const NONCURRENT_VERSION_DAYS = 30;

/** Where a new bucket's server access logs go: a bucket, and the prefix of this bucket's logs. */
interface AccessLogs {
  readonly bucket: s3.IBucket;
  /** Prepended to the input's and the output's own prefixes. */
  readonly prefix: string;
}

/** The buckets of a csvlake stack. */
export class Storage extends Construct {
  /** Where the CSV objects are read. */
  public readonly inputBucket: s3.IBucket;
  /** Where Parquet, Avro, the run objects and the tables' state are written. */
  public readonly outputBucket: s3.IBucket;
  /** The input prefix (empty, or ending in `/`). */
  public readonly inputPrefix: string;
  /** The output prefix (empty, or ending in `/`). */
  public readonly outputPrefix: string;
  /**
   * Where the new buckets' server access logs go: a log bucket of the stack's, the
   * `serverAccessLogsBucket` setting, or none (no new bucket, or `serverAccessLogs` false).
   */
  public readonly accessLogsBucket?: s3.IBucket;

  constructor(scope: Construct, id: string, settings: ResolvedSettings) {
    super(scope, id);
    this.inputPrefix = settings.inputPrefix;
    this.outputPrefix = settings.outputPrefix;
    const createsBuckets = !settings.inputBucketName || !settings.outputBucketName;
    const accessLogs = createsBuckets && settings.serverAccessLogs ? this.accessLogs(settings) : undefined;
    this.accessLogsBucket = accessLogs?.bucket;
    this.inputBucket = settings.inputBucketName
      ? s3.Bucket.fromBucketName(this, 'Input', settings.inputBucketName)
      : this.newBucket('Input', settings.inputVersioned, accessLogs && { ...accessLogs, prefix: `${accessLogs.prefix}input/` });
    this.outputBucket = settings.outputBucketName
      ? s3.Bucket.fromBucketName(this, 'Output', settings.outputBucketName)
      : this.newBucket('Output', settings.outputVersioned, accessLogs && { ...accessLogs, prefix: `${accessLogs.prefix}output/` });
    if (createsBuckets && !settings.serverAccessLogs) {
      for (const bucket of [this.inputBucket, this.outputBucket]) {
        if (bucket instanceof s3.Bucket) {
          acknowledge(
            bucket,
            'AwsSolutions-S1',
            `server access logging of the ${bucket.node.id.toLowerCase()} bucket is turned off by the deployment's ` +
              'serverAccessLogs setting (default on)',
          );
        }
      }
    }
  }

  /**
   * The target of the server access logs: the `serverAccessLogsBucket` setting, under the stack's
   * name; otherwise a new log bucket, whose logs expire with the stack's log retention.
   */
  private accessLogs(settings: ResolvedSettings): AccessLogs {
    if (settings.serverAccessLogsBucket) {
      return {
        bucket: s3.Bucket.fromBucketName(this, 'AccessLogs', settings.serverAccessLogsBucket),
        prefix: `${Stack.of(this).stackName}/`,
      };
    }
    // The target of the logs logs nothing itself: its own requests are S3's log delivery's.
    const bucket = new s3.Bucket(this, 'AccessLogs', {
      ...SECURE_BUCKET,
      lifecycleRules:
        settings.logRetention === logs.RetentionDays.INFINITE
          ? undefined
          : [{ id: 'expire-access-logs', expiration: Duration.days(settings.logRetention) }],
    });
    return { bucket, prefix: '' };
  }

  /** `s3://<input bucket>/<inputPrefix>`: the planner refuses a run that reads outside it. */
  public inputRoot(): string {
    return `s3://${this.inputBucket.bucketName}/${this.inputPrefix}`;
  }

  /** `s3://<output bucket>/<outputPrefix>`: the planner refuses a run that writes outside it. */
  public outputRoot(): string {
    return `s3://${this.outputBucket.bucketName}/${this.outputPrefix}`;
  }

  /** Input objects that runs may read. */
  public inputObjects(): string {
    return this.inputBucket.arnForObjects(`${this.inputPrefix}*`);
  }

  /** The Parquet and Avro objects that the converter writes. */
  public convertedObjects(): string[] {
    return this.convertedPrefixes().map((prefix) => this.outputBucket.arnForObjects(prefix));
  }

  /** The run objects: manifest, rejected files, ResultWriter files, report, failed keys. */
  public runObjects(): string {
    return this.outputBucket.arnForObjects(this.runsPrefix());
  }

  /**
   * The per-file results that a failing batch records, `<outputPrefix>_runs/<run id>/batches/<n>.json`,
   * or `<outputPrefix>_runs/<run id>/conform/batches/<n>.json` for a batch of the Conform Map
   * (functions/contract/src/run.rs, `names::BATCHES` and `names::CONFORM_BATCHES`); IAM's `*` spans
   * the `/` between them.
   */
  public batchResultObjects(): string {
    return this.outputBucket.arnForObjects(`${this.outputPrefix}_runs/*/batches/*`);
  }

  /** The `s3:prefix` pattern of listings under the run objects. */
  public runsPrefix(): string {
    return `${this.outputPrefix}_runs/*`;
  }

  /**
   * Every object of the tables' state, `<outputPrefix>_tables/<table>/…`: current.json, the index
   * generations, lease.json and the schemas (the root's own table is `_tables/_root/`).
   */
  public tableState(): string {
    return this.outputBucket.arnForObjects(this.tablesPrefix());
  }

  /**
   * The objects named `name` in every table's state: `<outputPrefix>_tables/`, any table folder,
   * then `name`, which may end in `*` for a folder (`index/*`, `schemas/*`). A table's folder may
   * be several levels deep (`table_depth`), and the wildcard spans them.
   */
  public tableObjects(name: string): string {
    return this.outputBucket.arnForObjects(`${this.outputPrefix}_tables/*/${name}`);
  }

  /** The `s3:prefix` pattern of listings under the tables' state. */
  public tablesPrefix(): string {
    return `${this.outputPrefix}_tables/*`;
  }

  /** The `s3:prefix` patterns of listings of the converted objects (incremental runs). */
  public convertedPrefixes(): string[] {
    return ['parquet', 'avro'].map((format) => `${this.outputPrefix}${format}/*`);
  }

  private newBucket(id: string, versioned: boolean, accessLogs?: AccessLogs): s3.Bucket {
    const bucket = new s3.Bucket(this, id, {
      ...SECURE_BUCKET,
      versioned,
      serverAccessLogsBucket: accessLogs?.bucket,
      serverAccessLogsPrefix: accessLogs?.prefix,
      lifecycleRules: [
        // A converter that dies mid-file leaves its multipart upload behind; its parts are billed
        // until they are aborted.
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        // Every re-run overwrites the same output keys, and a replaced input leaves its old
        // version behind: without an expiry a versioned bucket would keep them all forever. Once
        // the last noncurrent version of a deleted key expires, its delete marker goes too, so
        // that listings of the input prefix do not wade through markers.
        ...(versioned
          ? [
              {
                id: 'expire-noncurrent-versions',
                noncurrentVersionExpiration: Duration.days(NONCURRENT_VERSION_DAYS),
                expiredObjectDeleteMarker: true,
              },
            ]
          : []),
      ],
    });
    if (accessLogs && !(accessLogs.bucket instanceof s3.Bucket)) {
      Validations.of(bucket).acknowledge({
        id: '@aws-cdk/aws-s3:accessLogsPolicyNotAdded',
        reason: "serverAccessLogsBucket is an existing bucket: its owner lets logging.s3.amazonaws.com write through its bucket policy, as the README's settings say",
      });
    }
    return bucket;
  }
}

/** What every new bucket is: private, encrypted, TLS 1.2 only, without ACLs, kept when the stack goes. */
const SECURE_BUCKET: s3.BucketProps = {
  blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
  encryption: s3.BucketEncryption.S3_MANAGED,
  enforceSSL: true,
  minimumTLSVersion: 1.2,
  objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
  removalPolicy: RemovalPolicy.RETAIN,
};
