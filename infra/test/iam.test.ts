/** Least privilege: every statement of every role, and no wildcard but where AWS demands one. */
import { Match } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import {
  Statement,
  actionsOf,
  allows,
  bucketArn,
  grants,
  logicalId,
  objectsArn,
  resourcesOf,
  roleIdOf,
  statementsOfRole,
  synth,
} from './synth';

/**
 * The only statements allowed `Resource: "*"`, each because AWS has no resource-level permission
 * for its actions: Step Functions' log delivery through CloudWatch Logs, and X-Ray tracing.
 */
const STAR_RESOURCE_ACTIONS = new Set([
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
]);

const { stack, template } = synth({ tracing: true, schedule: 'rate(1 hour)', alarmEmail: 'ops@example.com' });
const input = logicalId(stack.storage.inputBucket);
const output = logicalId(stack.storage.outputBucket);

function roleOf(fn: lambda.Function): string {
  const props = template.findResources('AWS::Lambda::Function')[logicalId(fn)].Properties;
  return roleIdOf(props.Role);
}

function allStatements(): Statement[] {
  const statements: Statement[] = [];
  for (const policy of Object.values(template.findResources('AWS::IAM::Policy'))) {
    statements.push(...policy.Properties.PolicyDocument.Statement);
  }
  for (const role of Object.values(template.findResources('AWS::IAM::Role'))) {
    for (const inline of role.Properties.Policies ?? []) statements.push(...inline.PolicyDocument.Statement);
  }
  return statements;
}

const logWrite = (fn: lambda.Function) => ({
  Effect: 'Allow',
  Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
  Resource: { 'Fn::GetAtt': [logicalId(fn.logGroup), 'Arn'] },
});

test('no action is a wildcard, and Resource "*" appears only for actions that have no resource', () => {
  const statements = allStatements();
  expect(statements.length).toBeGreaterThan(10);
  for (const statement of statements) {
    expect(statement.Effect).toBe('Allow');
    for (const action of actionsOf(statement)) expect(action).not.toContain('*');
    const resources = Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
    if (resources.includes('*')) {
      for (const action of actionsOf(statement)) expect(STAR_RESOURCE_ACTIONS).toContain(action);
    }
  }
});

test('no role carries a managed policy', () => {
  const roles = template.findResources('AWS::IAM::Role');
  expect(Object.keys(roles).length).toBe(6); // 3 functions, state machine, API, scheduler
  for (const role of Object.values(roles)) expect(role.Properties.ManagedPolicyArns).toBeUndefined();
});

test('the planner lists the input, the converted prefixes and the tables, reads tables\' state, writes only _runs/ and leases, aborts stale uploads', () => {
  expect(grants(statementsOfRole(template, roleOf(stack.functions.planner)))).toEqual(grants([
    logWrite(stack.functions.planner),
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn(input), Condition: { StringLike: { 's3:prefix': ['landing/*'] } } },
    {
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: bucketArn(output),
      Condition: { StringLike: { 's3:prefix': ['converted/parquet/*', 'converted/avro/*', 'converted/_tables/*'] } },
    },
    // ListMultipartUploads has no s3:prefix condition key: a condition would deny every listing.
    { Effect: 'Allow', Action: 's3:ListBucketMultipartUploads', Resource: bucketArn(output) },
    {
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
      Resource: objectsArn(output, 'converted/_runs/*'),
    },
    {
      Effect: 'Allow',
      Action: 's3:AbortMultipartUpload',
      Resource: [objectsArn(output, 'converted/parquet/*'), objectsArn(output, 'converted/avro/*')],
    },
    {
      Effect: 'Allow',
      Action: 's3:GetObject',
      Resource: [
        objectsArn(output, 'converted/_tables/*/current.json'),
        objectsArn(output, 'converted/_tables/*/index/*'),
        objectsArn(output, 'converted/_tables/*/lease.json'),
      ],
    },
    {
      Effect: 'Allow',
      Action: ['s3:PutObject', 's3:DeleteObject'],
      Resource: objectsArn(output, 'converted/_tables/*/lease.json'),
    },
  ]));
});

test('the converter reads the input prefix and its own outputs, and writes only the two formats, schemas and failing batches\' results', () => {
  expect(grants(statementsOfRole(template, roleOf(stack.functions.converter)))).toEqual(grants([
    logWrite(stack.functions.converter),
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn(input) },
    { Effect: 'Allow', Action: 's3:GetObject', Resource: objectsArn(input, 'landing/*') },
    {
      Effect: 'Allow',
      Action: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'],
      Resource: [objectsArn(output, 'converted/parquet/*'), objectsArn(output, 'converted/avro/*')],
    },
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn(output) },
    {
      Effect: 'Allow',
      Action: 's3:GetObject',
      Resource: [objectsArn(output, 'converted/parquet/*'), objectsArn(output, 'converted/avro/*')],
    },
    { Effect: 'Allow', Action: 's3:PutObject', Resource: objectsArn(output, 'converted/_tables/*/schemas/*') },
    {
      Effect: 'Allow',
      Action: 's3:GetObject',
      Resource: [objectsArn(output, 'converted/_tables/*/current.json'), objectsArn(output, 'converted/_tables/*/schemas/*')],
    },
    { Effect: 'Allow', Action: 's3:PutObject', Resource: objectsArn(output, 'converted/_runs/*/batches/*') },
  ]));
});

test('the reducer lists, reads and writes _runs/ and the tables\' state, aborts leftover uploads, and deletes orphaned outputs', () => {
  expect(grants(statementsOfRole(template, roleOf(stack.functions.reducer)))).toEqual(grants([
    logWrite(stack.functions.reducer),
    {
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: bucketArn(output),
      Condition: { StringLike: { 's3:prefix': ['converted/_runs/*', 'converted/_tables/*'] } },
    },
    { Effect: 'Allow', Action: 's3:ListBucketMultipartUploads', Resource: bucketArn(output) },
    {
      Effect: 'Allow',
      Action: 's3:AbortMultipartUpload',
      Resource: [objectsArn(output, 'converted/parquet/*'), objectsArn(output, 'converted/avro/*')],
    },
    {
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
      Resource: objectsArn(output, 'converted/_runs/*'),
    },
    {
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
      Resource: objectsArn(output, 'converted/_tables/*'),
    },
    {
      Effect: 'Allow',
      Action: 's3:DeleteObject',
      Resource: [objectsArn(output, 'converted/parquet/*'), objectsArn(output, 'converted/avro/*')],
    },
  ]));
});

describe('what each function may do with the tables\' state and the outputs', () => {
  const planner = () => statementsOfRole(template, roleOf(stack.functions.planner));
  const converter = () => statementsOfRole(template, roleOf(stack.functions.converter));
  const reducer = () => statementsOfRole(template, roleOf(stack.functions.reducer));
  /** Keys of the tables' state, of a table one folder deep, one two deep, and the root's own. */
  const TABLES = ['sales', 'sales/eu', '_root'];
  const current = (t: string) => `converted/_tables/${t}/current.json`;
  const index = (t: string) => `converted/_tables/${t}/index/00000000000000000007-run-1.jsonl.zst`;
  const lease = (t: string) => `converted/_tables/${t}/lease.json`;
  const schema = (t: string) => `converted/_tables/${t}/schemas/0123456789abcdef.json`;
  const OUTPUTS = ['converted/parquet/sales/2026/a.parquet', 'converted/avro/sales/2026/a.avro'];
  const WRITES = ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'];

  test('the planner reads current.json, the index and the lease, lists them, and writes and deletes only the lease', () => {
    const s = planner();
    for (const t of TABLES) {
      for (const key of [current(t), index(t), lease(t)]) expect(allows(s, 's3:GetObject', output, key)).toBe(true);
      expect(allows(s, 's3:ListBucket', output, current(t))).toBe(true);
      expect(allows(s, 's3:PutObject', output, lease(t))).toBe(true);
      expect(allows(s, 's3:DeleteObject', output, lease(t))).toBe(true);
      for (const key of [current(t), index(t), schema(t)]) {
        for (const action of WRITES) expect(allows(s, action, output, key)).toBe(false);
      }
    }
    // Of an output, it may only abort an upload (below).
    for (const key of OUTPUTS) for (const action of ['s3:PutObject', 's3:DeleteObject']) expect(allows(s, action, output, key)).toBe(false);
    // Nor a listing of the whole output prefix.
    expect(allows(s, 's3:ListBucket', output, 'converted/')).toBe(false);
    expect(allows(s, 's3:ListBucket', output, undefined)).toBe(false);
  });

  test('the planner lists the output bucket\'s uploads and aborts those under the outputs and _runs/, nothing else', () => {
    const s = planner();
    // abort_stale lists `<out>parquet/<table>/`, `<out>avro/<table>/` (`<out>parquet/` and
    // `<out>avro/` for the root's table) and `<out>_runs/`, then aborts the stale uploads it finds.
    for (const prefix of ['converted/parquet/sales/', 'converted/avro/sales/eu/', 'converted/parquet/', 'converted/_runs/']) {
      expect(allows(s, 's3:ListBucketMultipartUploads', output, prefix)).toBe(true);
    }
    for (const key of [...OUTPUTS, 'converted/parquet/a.parquet', 'converted/_runs/run-1/manifest.jsonl']) {
      expect(allows(s, 's3:AbortMultipartUpload', output, key)).toBe(true);
    }
    for (const t of TABLES) {
      for (const key of [current(t), index(t), lease(t), schema(t)]) expect(allows(s, 's3:AbortMultipartUpload', output, key)).toBe(false);
    }
    for (const key of ['converted/a.parquet', 'elsewhere/a.parquet']) expect(allows(s, 's3:AbortMultipartUpload', output, key)).toBe(false);
    expect(allows(s, 's3:ListBucketMultipartUploads', input, 'landing/')).toBe(false);
    expect(allows(s, 's3:AbortMultipartUpload', input, 'landing/sales/a.csv')).toBe(false);
    // Aborting is all it may do to an output.
    for (const key of OUTPUTS) {
      for (const action of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']) expect(allows(s, action, output, key)).toBe(false);
    }
  });

  test('the converter aborts its own uploads of outputs and lists none; the reducer lists the output bucket\'s and aborts those of outputs, _runs/ and the tables\' state', () => {
    const c = converter();
    for (const key of OUTPUTS) expect(allows(c, 's3:AbortMultipartUpload', output, key)).toBe(true);
    expect(allows(c, 's3:AbortMultipartUpload', output, 'converted/_runs/run-1/manifest.jsonl')).toBe(false);
    for (const bucket of [input, output]) expect(allows(c, 's3:ListBucketMultipartUploads', bucket, 'converted/')).toBe(false);
    const r = reducer();
    expect(allows(r, 's3:AbortMultipartUpload', output, 'converted/_runs/run-1/files.jsonl')).toBe(true);
    expect(allows(r, 's3:AbortMultipartUpload', output, index('sales'))).toBe(true);
    for (const key of OUTPUTS) expect(allows(r, 's3:AbortMultipartUpload', output, key)).toBe(true);
    for (const key of ['converted/a.parquet', 'elsewhere/a.parquet']) expect(allows(r, 's3:AbortMultipartUpload', output, key)).toBe(false);
    expect(allows(r, 's3:ListBucketMultipartUploads', output, 'converted/parquet/sales/')).toBe(true);
    expect(allows(r, 's3:ListBucketMultipartUploads', input, 'landing/')).toBe(false);
    expect(allows(r, 's3:AbortMultipartUpload', input, 'landing/sales/a.csv')).toBe(false);
  });

  test('the converter HEADs its outputs, writes schemas, reads current.json and schemas, and touches no lease or index', () => {
    const s = converter();
    for (const key of OUTPUTS) expect(allows(s, 's3:GetObject', output, key)).toBe(true);
    // A HEAD of a missing output is told apart from a forbidden one.
    expect(allows(s, 's3:ListBucket', output, undefined)).toBe(true);
    for (const t of TABLES) {
      expect(allows(s, 's3:PutObject', output, schema(t))).toBe(true);
      for (const key of [current(t), schema(t)]) expect(allows(s, 's3:GetObject', output, key)).toBe(true);
      for (const key of [lease(t), index(t)]) {
        for (const action of ['s3:GetObject', ...WRITES]) expect(allows(s, action, output, key)).toBe(false);
      }
      for (const action of WRITES) expect(allows(s, action, output, current(t))).toBe(false);
    }
    // Of _runs/, only the results a failing batch records for the reducer.
    expect(allows(s, 's3:PutObject', output, 'converted/_runs/run-1/batches/7.json')).toBe(true);
    for (const key of ['converted/_runs/run-1/report.json', 'converted/_runs/run-1/manifest.json', 'converted/_runs/run-1/tables.jsonl']) {
      expect(allows(s, 's3:PutObject', output, key)).toBe(false);
    }
    expect(allows(s, 's3:GetObject', output, 'converted/_runs/run-1/manifest.json')).toBe(false);
  });

  test('the reducer keeps the tables\' state and deletes orphaned outputs, but writes no output', () => {
    const s = reducer();
    for (const t of TABLES) {
      for (const key of [current(t), index(t), lease(t), schema(t)]) {
        for (const action of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']) expect(allows(s, action, output, key)).toBe(true);
      }
      expect(allows(s, 's3:ListBucket', output, `converted/_tables/${t}/index/`)).toBe(true);
    }
    for (const key of OUTPUTS) {
      expect(allows(s, 's3:DeleteObject', output, key)).toBe(true);
      expect(allows(s, 's3:PutObject', output, key)).toBe(false);
      expect(allows(s, 's3:GetObject', output, key)).toBe(false);
    }
  });

  test('no role writes or deletes outside the output prefix\'s own folders, nor bucket-wide', () => {
    const roles = Object.keys(template.findResources('AWS::IAM::Role'));
    const outside: [string, string][] = [
      [input, 'landing/sales/a.csv'],
      [input, 'elsewhere/a.csv'],
      [output, 'elsewhere/a.parquet'],
      [output, 'converted/a.parquet'],
      [output, 'converted/other/a.parquet'],
    ];
    for (const role of roles) {
      const statements = statementsOfRole(template, role);
      for (const [bucket, key] of outside) {
        for (const action of WRITES) {
          // The role, action and key are in the message of a failure.
          expect([role, action, key, allows(statements, action, bucket, key)]).toEqual([role, action, key, false]);
        }
      }
      for (const statement of statements) {
        if (!actionsOf(statement).some((a) => a.startsWith('s3:'))) continue;
        for (const action of actionsOf(statement)) expect(action).not.toBe('s3:*');
        if (!actionsOf(statement).some((a) => WRITES.includes(a))) continue;
        for (const resource of resourcesOf(statement)) {
          // An object ARN names a folder under the output prefix: never `<bucket>/*` or `<bucket>/converted/*`.
          expect(resource).toMatch(/^arn:aws:s3:::[^/]+\/converted\/(parquet|avro|_runs|_tables)\//);
        }
      }
    }
  });
});

test('the state machine invokes the three functions, reads the manifest, writes results, and runs its Map children', () => {
  const sm = logicalId(stack.pipeline.stateMachine);
  const role = roleIdOf(template.findResources('AWS::StepFunctions::StateMachine')[sm].Properties.RoleArn);
  const statements = statementsOfRole(template, role).filter(
    (s) => !actionsOf(s).every((a) => STAR_RESOURCE_ACTIONS.has(a)),
  );
  // The unqualified ARNs, which the definition's tasks name: no version or alias (`<arn>:*`).
  const invoke = (fn: lambda.Function) => ({
    Effect: 'Allow',
    Action: 'lambda:InvokeFunction',
    Resource: { 'Fn::GetAtt': [logicalId(fn), 'Arn'] },
  });
  expect(grants(statements)).toEqual(grants([
    invoke(stack.functions.planner),
    invoke(stack.functions.converter),
    invoke(stack.functions.reducer),
    {
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
      Resource: objectsArn(output, 'converted/_runs/*'),
    },
    { Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: sm } },
    {
      Effect: 'Allow',
      Action: ['states:DescribeExecution', 'states:StopExecution'],
      Resource: {
        'Fn::Join': ['', ['arn:aws:states:eu-west-1:123456789012:execution:', { 'Fn::GetAtt': [sm, 'Name'] }, '/*']],
      },
    },
  ]));
  // The star statements it does have are the log delivery and X-Ray ones, on "*".
  const star = statementsOfRole(template, role).filter((s) => actionsOf(s).every((a) => STAR_RESOURCE_ACTIONS.has(a)));
  expect(new Set(star.flatMap((s) => resourcesOf(s)))).toEqual(new Set(['*']));
  expect(new Set(star.flatMap(actionsOf))).toEqual(STAR_RESOURCE_ACTIONS);
});

test('the API and the schedule may only start executions of the pipeline', () => {
  const sm = logicalId(stack.pipeline.stateMachine);
  const apiRole = logicalId(stack.node.findChild('Reprocess').node.findChild('StartExecutionRole'));
  expect(statementsOfRole(template, apiRole)).toEqual([
    { Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: sm } },
  ]);
  template.hasResourceProperties('AWS::IAM::Role', {
    AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'scheduler.amazonaws.com' } })] },
  });
  const schedule = template.findResources('AWS::Scheduler::Schedule');
  const scheduleRole = roleIdOf(Object.values(schedule)[0].Properties.Target.RoleArn);
  expect(statementsOfRole(template, scheduleRole)).toEqual([
    { Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: sm } },
  ]);
});

test('imported buckets and other prefixes scope the same statements to them', () => {
  const other = synth({ inputBucketName: 'raw', outputBucketName: 'lake', inputPrefix: 'in', outputPrefix: '' });
  const s3Of = (fn: lambda.Function) => {
    const role = roleIdOf(other.template.findResources('AWS::Lambda::Function')[logicalId(fn)].Properties.Role);
    return statementsOfRole(other.template, role).filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
  };
  // The region is known, so the partition is a literal (`@aws-cdk/core:enablePartitionLiterals`).
  const arn = (rest: string) => `arn:aws:s3:::${rest}`;
  const outputs = [arn('lake/parquet/*'), arn('lake/avro/*')];
  expect(grants(s3Of(other.stack.functions.converter))).toEqual(grants([
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: arn('raw') },
    { Effect: 'Allow', Action: 's3:GetObject', Resource: arn('raw/in/*') },
    { Effect: 'Allow', Action: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'], Resource: outputs },
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: arn('lake') },
    { Effect: 'Allow', Action: 's3:GetObject', Resource: outputs },
    { Effect: 'Allow', Action: 's3:PutObject', Resource: arn('lake/_tables/*/schemas/*') },
    { Effect: 'Allow', Action: 's3:GetObject', Resource: [arn('lake/_tables/*/current.json'), arn('lake/_tables/*/schemas/*')] },
    { Effect: 'Allow', Action: 's3:PutObject', Resource: arn('lake/_runs/*/batches/*') },
  ]));
  expect(grants(s3Of(other.stack.functions.planner))).toEqual(grants([
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: arn('raw'), Condition: { StringLike: { 's3:prefix': ['in/*'] } } },
    {
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: arn('lake'),
      Condition: { StringLike: { 's3:prefix': ['parquet/*', 'avro/*', '_tables/*'] } },
    },
    { Effect: 'Allow', Action: 's3:ListBucketMultipartUploads', Resource: arn('lake') },
    { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'], Resource: arn('lake/_runs/*') },
    { Effect: 'Allow', Action: 's3:AbortMultipartUpload', Resource: outputs },
    {
      Effect: 'Allow',
      Action: 's3:GetObject',
      Resource: [arn('lake/_tables/*/current.json'), arn('lake/_tables/*/index/*'), arn('lake/_tables/*/lease.json')],
    },
    { Effect: 'Allow', Action: ['s3:PutObject', 's3:DeleteObject'], Resource: arn('lake/_tables/*/lease.json') },
  ]));
  expect(grants(s3Of(other.stack.functions.reducer))).toEqual(grants([
    {
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: arn('lake'),
      Condition: { StringLike: { 's3:prefix': ['_runs/*', '_tables/*'] } },
    },
    { Effect: 'Allow', Action: 's3:ListBucketMultipartUploads', Resource: arn('lake') },
    { Effect: 'Allow', Action: 's3:AbortMultipartUpload', Resource: outputs },
    { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'], Resource: arn('lake/_runs/*') },
    {
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
      Resource: arn('lake/_tables/*'),
    },
    { Effect: 'Allow', Action: 's3:DeleteObject', Resource: outputs },
  ]));
  // The planner's roots name the imported buckets.
  const planner = other.template.findResources('AWS::Lambda::Function')[logicalId(other.stack.functions.planner)];
  expect(planner.Properties.Environment.Variables).toEqual({
    CSVLAKE_INPUT_ROOT: 's3://raw/in/',
    CSVLAKE_OUTPUT_ROOT: 's3://lake/',
    CSVLAKE_LEASE_SECONDS: '86400',
    CSVLAKE_MAX_CONCURRENCY: '100',
  });
  other.template.resourceCountIs('AWS::S3::Bucket', 0);
});
