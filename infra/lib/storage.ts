/**
 * The input and output buckets, created secure by default or imported by name, and the ARNs of
 * the prefixes that the functions and the state machine are allowed to touch.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ResolvedSettings } from './settings';

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

  constructor(scope: Construct, id: string, settings: ResolvedSettings) {
    super(scope, id);
    this.inputPrefix = settings.inputPrefix;
    this.outputPrefix = settings.outputPrefix;
    this.inputBucket = settings.inputBucketName
      ? s3.Bucket.fromBucketName(this, 'Input', settings.inputBucketName)
      : this.newBucket('Input', settings.versioned);
    this.outputBucket = settings.outputBucketName
      ? s3.Bucket.fromBucketName(this, 'Output', settings.outputBucketName)
      : this.newBucket('Output', settings.versioned);
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

  private newBucket(id: string, versioned: boolean): s3.Bucket {
    return new s3.Bucket(this, id, {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        // A converter that dies mid-file leaves its multipart upload behind; its parts are billed
        // until they are aborted.
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        // Every re-run overwrites the same output keys, so a versioned bucket would keep every
        // earlier conversion forever.
        ...(versioned ? [{ id: 'expire-noncurrent-versions', noncurrentVersionExpiration: Duration.days(30) }] : []),
      ],
    });
  }
}
