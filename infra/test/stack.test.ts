/** Resource counts, buckets, functions, the schedule, alarms and outputs. */
import * as fs from 'fs';
import * as path from 'path';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { IConstruct } from 'constructs';
import { BINARIES, CARGO_PROFILE, bundlingFor } from '../lib/functions';
import { EXAMPLES } from '../lib/csvlake-stack';
import { CONSTANTS_FILE, EXAMPLES_DIR, REPO_ROOT, WORKSPACE_MANIFEST } from '../lib/settings';
import { logicalId, synth } from './synth';

describe('by default', () => {
  const { stack, template } = synth();

  test('the stack holds two buckets and their log bucket, three functions, one state machine, one API, alarms, and no schedule or topic', () => {
    template.resourceCountIs('AWS::S3::Bucket', 3);
    template.resourceCountIs('AWS::Lambda::Function', 3);
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    template.resourceCountIs('AWS::ApiGateway::RestApi', 1);
    template.resourceCountIs('AWS::ApiGateway::Method', 1);
    template.resourceCountIs('AWS::CloudWatch::Alarm', 5);
    // The functions', the state machine's, and the API's access and execution logs.
    template.resourceCountIs('AWS::Logs::LogGroup', 6);
    template.resourceCountIs('AWS::ApiGateway::Account', 0);
    template.resourceCountIs('AWS::Scheduler::Schedule', 0);
    template.resourceCountIs('AWS::SNS::Topic', 0);
  });

  test('new buckets block public access, are encrypted, refuse plain HTTP and expire incomplete uploads', () => {
    const buckets = template.findResources('AWS::S3::Bucket');
    expect(Object.keys(buckets).sort()).toEqual(
      [stack.storage.inputBucket, stack.storage.outputBucket, stack.storage.accessLogsBucket!].map(logicalId).sort(),
    );
    for (const [id, bucket] of Object.entries(buckets)) {
      const p = bucket.Properties;
      expect(p.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(p.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
        { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
      ]);
      expect(p.OwnershipControls.Rules).toEqual([{ ObjectOwnership: 'BucketOwnerEnforced' }]);
      expect(bucket.DeletionPolicy).toBe('Retain');
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
            Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } } }),
          ]),
        },
      });
    }
  });

  test('the input bucket keeps versions and the output bucket not; both expire incomplete uploads', () => {
    const props = (bucket: IConstruct) => template.findResources('AWS::S3::Bucket')[logicalId(bucket)].Properties;
    const abort = { Id: 'abort-incomplete-multipart-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' };
    expect(props(stack.storage.inputBucket).VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(props(stack.storage.inputBucket).LifecycleConfiguration.Rules).toEqual([
      abort,
      { Id: 'expire-noncurrent-versions', NoncurrentVersionExpiration: { NoncurrentDays: 30 }, ExpiredObjectDeleteMarker: true, Status: 'Enabled' },
    ]);
    expect(props(stack.storage.outputBucket).VersioningConfiguration).toBeUndefined();
    expect(props(stack.storage.outputBucket).LifecycleConfiguration.Rules).toEqual([abort]);
  });

  test('the buckets log their requests to a log bucket whose logs expire with the log retention', () => {
    const buckets = template.findResources('AWS::S3::Bucket');
    const logBucket = logicalId(stack.storage.accessLogsBucket!);
    expect(buckets[logicalId(stack.storage.inputBucket)].Properties.LoggingConfiguration).toEqual({
      DestinationBucketName: { Ref: logBucket },
      LogFilePrefix: 'input/',
    });
    expect(buckets[logicalId(stack.storage.outputBucket)].Properties.LoggingConfiguration).toEqual({
      DestinationBucketName: { Ref: logBucket },
      LogFilePrefix: 'output/',
    });
    const logs = buckets[logBucket].Properties;
    expect(logs.LoggingConfiguration).toBeUndefined();
    expect(logs.VersioningConfiguration).toBeUndefined();
    expect(logs.LifecycleConfiguration.Rules).toEqual([{ Id: 'expire-access-logs', ExpirationInDays: 30, Status: 'Enabled' }]);
    // S3's log delivery writes through the bucket policy (the bucket has no ACLs): each bucket of
    // this account under its own prefix only.
    const policy = Object.values(template.findResources('AWS::S3::BucketPolicy')).find(
      (p) => JSON.stringify(p.Properties.Bucket) === JSON.stringify({ Ref: logBucket }),
    )!;
    const delivery = policy.Properties.PolicyDocument.Statement.filter(
      (st: { Principal?: { Service?: string } }) => st.Principal?.Service === 'logging.s3.amazonaws.com',
    );
    const from = (bucket: IConstruct, prefix: string) => ({
      Effect: 'Allow',
      Principal: { Service: 'logging.s3.amazonaws.com' },
      Action: 's3:PutObject',
      Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [logBucket, 'Arn'] }, `/${prefix}*`]] },
      Condition: {
        ArnLike: { 'aws:SourceArn': { 'Fn::GetAtt': [logicalId(bucket), 'Arn'] } },
        StringEquals: { 'aws:SourceAccount': '123456789012' },
      },
    });
    expect(delivery).toEqual([from(stack.storage.inputBucket, 'input/'), from(stack.storage.outputBucket, 'output/')]);
  });

  test('the functions are arm64 on provided.al2023, with JSON logs in their own log groups', () => {
    for (const fn of stack.functions.all()) {
      const props = template.findResources('AWS::Lambda::Function')[logicalId(fn)].Properties;
      expect(props.Runtime).toBe('provided.al2023');
      expect(props.Architectures).toEqual(['arm64']);
      expect(props.Handler).toBe('bootstrap');
      expect(props.Timeout).toBe(900);
      expect(props.LoggingConfig).toEqual({
        LogFormat: 'JSON',
        ApplicationLogLevel: 'INFO',
        SystemLogLevel: 'WARN',
        LogGroup: { Ref: logicalId(fn.logGroup) },
      });
      template.hasResourceProperties('AWS::Logs::LogGroup', Match.objectLike({ RetentionInDays: 30 }));
    }
    const props = (fn: keyof typeof BINARIES) =>
      template.findResources('AWS::Lambda::Function')[logicalId(stack.functions[fn])].Properties;
    expect(props('converter').MemorySize).toBe(2048);
    expect(props('converter').ReservedConcurrentExecutions).toBeUndefined();
    expect(props('planner').MemorySize).toBe(1024);
    expect(props('reducer').EphemeralStorage).toEqual({ Size: 2048 });
    expect(props('reducer').Environment.Variables).toEqual({ CSVLAKE_PIPELINE: 'Csvlake' });
    expect(props('converter').Environment).toBeUndefined();
  });

  test('the planner knows the roots of this stack and a lease as long as the run timeout', () => {
    const shared = JSON.parse(fs.readFileSync(CONSTANTS_FILE, 'utf8'));
    const planner = template.findResources('AWS::Lambda::Function')[logicalId(stack.functions.planner)].Properties;
    const root = (bucket: IConstruct, prefix: string) => ({ 'Fn::Join': ['', ['s3://', { Ref: logicalId(bucket) }, `/${prefix}`]] });
    expect(planner.Environment.Variables).toEqual({
      [shared.environment.input_root]: root(stack.storage.inputBucket, 'landing/'),
      [shared.environment.output_root]: root(stack.storage.outputBucket, 'converted/'),
      [shared.environment.lease_seconds]: '86400',
      [shared.environment.max_concurrency]: '100',
    });
  });

  test('the schedule is off', () => {
    expect(stack.schedule).toBeUndefined();
  });

  test('the outputs give the buckets, the state machine, the API URL and a backfill input', () => {
    template.hasOutput('StateMachineArn', { Value: { Ref: logicalId(stack.pipeline.stateMachine) } });
    template.hasOutput('ReprocessUrl', Match.anyValue());
    const backfill = template.toJSON().Outputs.BackfillInput.Value;
    const resolved = JSON.parse(
      JSON.stringify(backfill['Fn::Join'][1].map((part: unknown) => (typeof part === 'string' ? part : `<${JSON.stringify(part)}>`)).join('')),
    );
    const example = JSON.parse(fs.readFileSync(path.join(EXAMPLES_DIR, EXAMPLES.backfill), 'utf8'));
    const input = JSON.parse(resolved.replace(/"?<(\{.*?\})>"?/g, (_: string, ref: string) => JSON.stringify(JSON.parse(ref).Ref)));
    expect(input).toEqual({
      ...example,
      input: { ...example.input, bucket: logicalId(stack.storage.inputBucket), prefix: 'landing/' },
      output: { ...example.output, bucket: logicalId(stack.storage.outputBucket), prefix: 'converted/' },
    });
  });
});

test('the function binaries are the [[bin]] names of the workspace', () => {
  for (const [dir, binary] of Object.entries(BINARIES)) {
    const manifest = fs.readFileSync(path.join(REPO_ROOT, 'functions', dir, 'Cargo.toml'), 'utf8');
    expect(manifest).toMatch(new RegExp(`\\[\\[bin\\]\\]\\s*name = "${binary}"`));
  }
});

test('cargo-lambda builds each binary of the workspace for arm64 with that profile', () => {
  // The command cargo-lambda-cdk runs (locally, or in its container) when bundling is on.
  const { Bundling } = require('cargo-lambda-cdk/lib/bundling');
  for (const binary of Object.values(BINARIES)) {
    const bundling = new Bundling(REPO_ROOT, {
      ...bundlingFor(binary),
      manifestPath: WORKSPACE_MANIFEST,
      binaryName: binary,
      architecture: lambda.Architecture.ARM_64,
    });
    expect(bundling.command).toEqual([
      'bash',
      '-c',
      `cargo lambda build --lambda-dir /asset-output --profile lambda --arm64 --bin ${binary} --flatten ${binary} --package ${binary}`,
    ]);
  }
});

test('the functions are built with a stripped release profile of the workspace', () => {
  const manifest = fs.readFileSync(path.join(REPO_ROOT, 'Cargo.toml'), 'utf8');
  const profile = manifest.slice(manifest.indexOf(`[profile.${CARGO_PROFILE}]`));
  expect(profile).toMatch(/^\[profile\.lambda\]\ninherits = "release"\ndebug = false\nstrip = true\n/);
});

test('versioned: true versions both buckets, false neither; noncurrent versions expire', () => {
  const both = synth({ versioned: true });
  const buckets = [both.stack.storage.inputBucket, both.stack.storage.outputBucket].map(
    (b) => both.template.findResources('AWS::S3::Bucket')[logicalId(b)],
  );
  for (const bucket of buckets) {
    expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.Properties.LifecycleConfiguration.Rules).toContainEqual({
      Id: 'expire-noncurrent-versions',
      NoncurrentVersionExpiration: { NoncurrentDays: 30 },
      ExpiredObjectDeleteMarker: true,
      Status: 'Enabled',
    });
  }
  const neither = synth({ versioned: false });
  for (const bucket of Object.values(neither.template.findResources('AWS::S3::Bucket'))) {
    expect(bucket.Properties.VersioningConfiguration).toBeUndefined();
    expect(JSON.stringify(bucket.Properties.LifecycleConfiguration)).not.toContain('Noncurrent');
  }
});

describe('server access logs', () => {
  test('can be turned off: no log bucket, no logging', () => {
    const { stack, template } = synth({ serverAccessLogs: false });
    expect(stack.storage.accessLogsBucket).toBeUndefined();
    const buckets = Object.values(template.findResources('AWS::S3::Bucket'));
    expect(buckets).toHaveLength(2);
    for (const bucket of buckets) expect(bucket.Properties.LoggingConfiguration).toBeUndefined();
  });

  test('go to an existing bucket under the stack\'s name, when one is given', () => {
    const { stack, template } = synth({ serverAccessLogsBucket: 'central-logs' });
    const buckets = template.findResources('AWS::S3::Bucket');
    expect(Object.keys(buckets)).toHaveLength(2);
    expect(buckets[logicalId(stack.storage.inputBucket)].Properties.LoggingConfiguration).toEqual({
      DestinationBucketName: 'central-logs',
      LogFilePrefix: 'Csvlake/input/',
    });
    expect(buckets[logicalId(stack.storage.outputBucket)].Properties.LoggingConfiguration).toEqual({
      DestinationBucketName: 'central-logs',
      LogFilePrefix: 'Csvlake/output/',
    });
  });

  test('concern only the buckets the stack creates, and keep logs forever with an infinite retention', () => {
    const { stack, template } = synth({ outputBucketName: 'lake', logRetentionDays: 9999 });
    const buckets = template.findResources('AWS::S3::Bucket');
    expect(Object.keys(buckets).sort()).toEqual([stack.storage.inputBucket, stack.storage.accessLogsBucket!].map(logicalId).sort());
    expect(buckets[logicalId(stack.storage.accessLogsBucket!)].Properties.LifecycleConfiguration).toBeUndefined();
    const imported = synth({ inputBucketName: 'raw', outputBucketName: 'lake' });
    expect(imported.stack.storage.accessLogsBucket).toBeUndefined();
    imported.template.resourceCountIs('AWS::S3::Bucket', 0);
  });
});

test('no configuration leaves a CDK warning or error', () => {
  for (const props of [
    {},
    { serverAccessLogsBucket: 'central-logs' },
    { serverAccessLogs: false, versioned: false },
    { inputBucketName: 'raw', outputBucketName: 'lake', tracing: true, schedule: 'rate(1 day)', alarmEmail: 'ops@example.com' },
    { apiGatewayCloudWatchRole: true, converterReservedConcurrency: 50 },
  ]) {
    const { stack } = synth(props);
    const annotations = Annotations.fromStack(stack);
    expect([props, annotations.findWarning('*', Match.anyValue())]).toEqual([props, []]);
    expect([props, annotations.findError('*', Match.anyValue())]).toEqual([props, []]);
  }
});

test('the converter memory and reserved concurrency are props', () => {
  const { stack, template } = synth({ converterMemoryMiB: 4096, converterReservedConcurrency: 300 });
  const props = template.findResources('AWS::Lambda::Function')[logicalId(stack.functions.converter)].Properties;
  expect(props.MemorySize).toBe(4096);
  expect(props.ReservedConcurrentExecutions).toBe(300);
  expect(() => synth({ converterMemoryMiB: 128 })).toThrow(/converterMemoryMiB 128/);
});

describe('the concurrency ceiling', () => {
  const env = (props: Parameters<typeof synth>[0]) => {
    const { stack, template } = synth(props);
    return template.findResources('AWS::Lambda::Function')[logicalId(stack.functions.planner)].Properties.Environment.Variables;
  };
  const shared = JSON.parse(fs.readFileSync(CONSTANTS_FILE, 'utf8'));

  test('is the planner\'s, under the name constants.json gives it', () => {
    expect(shared.environment.max_concurrency).toBe('CSVLAKE_MAX_CONCURRENCY');
    expect(env({})[shared.environment.max_concurrency]).toBe('100');
    expect(env({ maxConcurrency: 2500 })[shared.environment.max_concurrency]).toBe('2500');
    expect(env({ maxConcurrency: 10000 })[shared.environment.max_concurrency]).toBe('10000');
  });

  test('defaults to the converter\'s reserved concurrency when that is lower, and may equal it', () => {
    expect(env({ converterReservedConcurrency: 40 })[shared.environment.max_concurrency]).toBe('40');
    expect(env({ converterReservedConcurrency: 400 })[shared.environment.max_concurrency]).toBe('100');
    expect(env({ converterReservedConcurrency: 400, maxConcurrency: 400 })[shared.environment.max_concurrency]).toBe('400');
  });

  test('above the converter\'s reserved concurrency fails the synth, and says what to change', () => {
    expect(() => synth({ converterReservedConcurrency: 50, maxConcurrency: 80 })).toThrow(
      'converterReservedConcurrency 50 is below maxConcurrency 80: a run could start more converters than may run at once, ' +
        'and the rest would be throttled. Set maxConcurrency to at most 50, or converterReservedConcurrency to at least 80',
    );
    expect(() => synth({ converterReservedConcurrency: 0 })).toThrow(/converterReservedConcurrency 0 is below maxConcurrency 100/);
  });
});

describe('with a schedule', () => {
  const { stack, template } = synth({ schedule: 'cron(0 2 * * ? *)', scheduleTimeZone: 'Europe/Paris' });

  test('EventBridge Scheduler starts an incremental scan with the example input and this stack\'s buckets', () => {
    template.resourceCountIs('AWS::Scheduler::Schedule', 1);
    const schedule = Object.values(template.findResources('AWS::Scheduler::Schedule'))[0];
    expect(schedule.Properties.ScheduleExpression).toBe('cron(0 2 * * ? *)');
    expect(schedule.Properties.ScheduleExpressionTimezone).toBe('Europe/Paris');
    expect(schedule.Properties.State).toBe('ENABLED');
    expect(schedule.Properties.Target.Arn).toEqual({ Ref: logicalId(stack.pipeline.stateMachine) });
    expect(schedule.DependsOn).toContain(logicalId(stack.pipeline.mapPolicy));

    const example = JSON.parse(fs.readFileSync(path.join(EXAMPLES_DIR, EXAMPLES.schedule), 'utf8'));
    expect(example.mode).toBe('scan');
    expect(example.incremental).toBe(true);
    const parts: unknown[] = schedule.Properties.Target.Input['Fn::Join'][1];
    const text = parts.map((p) => (typeof p === 'string' ? p : `"${(p as { Ref: string }).Ref}"`)).join('');
    const input = JSON.parse(text.replace(/""/g, '"'));
    expect(input).toEqual({
      ...example,
      input: { ...example.input, bucket: logicalId(stack.storage.inputBucket), prefix: 'landing/' },
      output: { ...example.output, bucket: logicalId(stack.storage.outputBucket), prefix: 'converted/' },
    });
  });
});

describe('alarms', () => {
  test('watch failed and timed-out executions, converter errors and throttles, and failed files', () => {
    const { stack, template } = synth();
    const sm = logicalId(stack.pipeline.stateMachine);
    const converter = logicalId(stack.functions.converter);
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const watched = alarms.map((a) => `${a.Namespace}/${a.MetricName} ${JSON.stringify(a.Dimensions)}`);
    expect(watched.sort()).toEqual(
      [
        `AWS/Lambda/Errors [{"Name":"FunctionName","Value":{"Ref":"${converter}"}}]`,
        `AWS/Lambda/Throttles [{"Name":"FunctionName","Value":{"Ref":"${converter}"}}]`,
        `AWS/States/ExecutionsFailed [{"Name":"StateMachineArn","Value":{"Ref":"${sm}"}}]`,
        `AWS/States/ExecutionsTimedOut [{"Name":"StateMachineArn","Value":{"Ref":"${sm}"}}]`,
        'csvlake/FilesFailed [{"Name":"Pipeline","Value":"Csvlake"}]',
      ].sort(),
    );
    for (const alarm of alarms) {
      expect(alarm.Threshold).toBe(1);
      expect(alarm.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
      expect(alarm.TreatMissingData).toBe('notBreaching');
      expect(alarm.AlarmActions).toBeUndefined();
    }
  });

  test('a run that reaches its timeout (runTimeoutHours) raises ExecutionsTimedOut within five minutes', () => {
    const { stack, template } = synth({ runTimeoutHours: 6 });
    const timedOut = Object.values(template.findResources('AWS::CloudWatch::Alarm'))
      .map((a) => a.Properties)
      .filter((a) => a.MetricName === 'ExecutionsTimedOut');
    expect(timedOut).toEqual([
      expect.objectContaining({
        Namespace: 'AWS/States',
        Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: logicalId(stack.pipeline.stateMachine) } }],
        Statistic: 'Sum',
        Period: 300,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        AlarmDescription: 'A csvlake run timed out',
      }),
    ]);
  });

  test('watch the metric the reducer emits: same namespace, metric, dimension and environment variable', () => {
    // constants.json is generated from the functions' constants.
    const shared = JSON.parse(fs.readFileSync(CONSTANTS_FILE, 'utf8'));
    const { stack, template } = synth();
    const filesFailed = Object.values(template.findResources('AWS::CloudWatch::Alarm'))
      .map((a) => a.Properties)
      .filter((a) => a.MetricName === shared.metrics.files_failed);
    expect(filesFailed).toHaveLength(1);
    expect(filesFailed[0].Namespace).toBe(shared.metrics.namespace);
    expect(filesFailed[0].Dimensions).toEqual([{ Name: shared.metrics.pipeline_dimension, Value: stack.stackName }]);
    const env = template.findResources('AWS::Lambda::Function')[logicalId(stack.functions.reducer)].Properties.Environment.Variables;
    expect(env).toEqual({ [shared.environment.pipeline]: stack.stackName });
  });

  test('notify an SNS topic with an email subscription when an address is given', () => {
    const { stack, template } = synth({ alarmEmail: 'ops@example.com' });
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
    const topic = logicalId(stack.alarms.topic!);
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topic }]);
    }
  });
});
