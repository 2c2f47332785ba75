/** Least privilege: every statement of every role, and no wildcard but where AWS demands one. */
import { Match } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import {
  Statement,
  actionsOf,
  bucketArn,
  logicalId,
  objectsArn,
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

test('the planner lists the input and the converted prefixes, and reads and writes only _runs/', () => {
  expect(statementsOfRole(template, roleOf(stack.functions.planner))).toEqual([
    logWrite(stack.functions.planner),
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn(input), Condition: { StringLike: { 's3:prefix': ['landing/*'] } } },
    {
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: bucketArn(output),
      Condition: { StringLike: { 's3:prefix': ['converted/parquet/*', 'converted/avro/*'] } },
    },
    {
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
      Resource: objectsArn(output, 'converted/_runs/*'),
    },
  ]);
});

test('the converter reads the input prefix and writes only the two formats under the output prefix', () => {
  expect(statementsOfRole(template, roleOf(stack.functions.converter))).toEqual([
    logWrite(stack.functions.converter),
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn(input) },
    { Effect: 'Allow', Action: 's3:GetObject', Resource: objectsArn(input, 'landing/*') },
    {
      Effect: 'Allow',
      Action: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'],
      Resource: [objectsArn(output, 'converted/parquet/*'), objectsArn(output, 'converted/avro/*')],
    },
  ]);
});

test('the reducer lists, reads and writes only _runs/', () => {
  expect(statementsOfRole(template, roleOf(stack.functions.reducer))).toEqual([
    logWrite(stack.functions.reducer),
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn(output), Condition: { StringLike: { 's3:prefix': ['converted/_runs/*'] } } },
    {
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
      Resource: objectsArn(output, 'converted/_runs/*'),
    },
  ]);
});

test('the state machine invokes the three functions, reads the manifest, writes results, and runs its Map children', () => {
  const sm = logicalId(stack.pipeline.stateMachine);
  const role = roleIdOf(template.findResources('AWS::StepFunctions::StateMachine')[sm].Properties.RoleArn);
  const statements = statementsOfRole(template, role).filter(
    (s) => !actionsOf(s).every((a) => STAR_RESOURCE_ACTIONS.has(a)),
  );
  const invoke = (fn: lambda.Function) => ({
    Effect: 'Allow',
    Action: 'lambda:InvokeFunction',
    Resource: [
      { 'Fn::GetAtt': [logicalId(fn), 'Arn'] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [logicalId(fn), 'Arn'] }, ':*']] },
    ],
  });
  expect(statements).toEqual([
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
        'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':states:eu-west-1:123456789012:execution:', { 'Fn::GetAtt': [sm, 'Name'] }, '/*']],
      },
    },
  ]);
  // The star statements it does have are the log delivery and X-Ray ones, each on "*".
  const star = statementsOfRole(template, role).filter((s) => actionsOf(s).every((a) => STAR_RESOURCE_ACTIONS.has(a)));
  expect(star.map((s) => s.Resource)).toEqual(['*', '*']);
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
  const converterRole = roleIdOf(
    other.template.findResources('AWS::Lambda::Function')[logicalId(other.stack.functions.converter)].Properties.Role,
  );
  const s3 = statementsOfRole(other.template, converterRole).filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
  const arn = (rest: string) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:s3:::${rest}`]] });
  expect(s3).toEqual([
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: arn('raw') },
    { Effect: 'Allow', Action: 's3:GetObject', Resource: arn('raw/in/*') },
    {
      Effect: 'Allow',
      Action: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'],
      Resource: [arn('lake/parquet/*'), arn('lake/avro/*')],
    },
  ]);
  other.template.resourceCountIs('AWS::S3::Bucket', 0);
});
