/** Synthesizes the stack for the tests, without building the functions. */
import * as fs from 'fs';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { IConstruct } from 'constructs';
import { CsvlakeStack, CsvlakeStackProps } from '../lib/csvlake-stack';

/** One synthesized stack. */
export interface Synth {
  readonly app: App;
  readonly stack: CsvlakeStack;
  readonly template: Template;
}

/**
 * The context of infra/cdk.json, the feature flags among it, which the CLI gives the app: the
 * tests synthesize with the same flags as `cdk synth` and `cdk deploy`.
 */
export const CDK_JSON_CONTEXT: Record<string, unknown> = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8'),
).context;

/** Synthesizes a stack with the given props; bundling (cargo-lambda) is skipped. */
export function synth(props: CsvlakeStackProps = {}): Synth {
  const app = new App({ context: { ...CDK_JSON_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  const stack = new CsvlakeStack(app, 'Csvlake', {
    env: { account: '123456789012', region: 'eu-west-1' },
    ...props,
  });
  return { app, stack, template: Template.fromStack(stack) };
}

/** The logical id of a construct's CloudFormation resource. */
export function logicalId(construct: IConstruct): string {
  const child = construct.node.defaultChild;
  if (!child) throw new Error(`${construct.node.path} has no CloudFormation resource`);
  return Stack.of(construct).getLogicalId(child as never);
}

/** An IAM statement as it appears in the template. */
export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

/** Every statement of every policy attached to the role, inline or as AWS::IAM::Policy. */
export function statementsOfRole(template: Template, roleId: string): Statement[] {
  const statements: Statement[] = [];
  for (const policy of Object.values(template.findResources('AWS::IAM::Policy'))) {
    const roles: unknown[] = policy.Properties.Roles ?? [];
    if (roles.some((r) => JSON.stringify(r) === JSON.stringify({ Ref: roleId }))) {
      statements.push(...policy.Properties.PolicyDocument.Statement);
    }
  }
  const role = template.findResources('AWS::IAM::Role')[roleId];
  if (!role) throw new Error(`no role ${roleId}`);
  for (const inline of role.Properties.Policies ?? []) statements.push(...inline.PolicyDocument.Statement);
  return statements;
}

/**
 * What statements grant, one line per effect, action, resource and condition, sorted and without
 * repeats: the same whether CDK merged the statements (`@aws-cdk/aws-iam:minimizePolicies`) or not.
 */
export function grants(statements: Statement[]): string[] {
  const lines = new Set<string>();
  for (const statement of statements) {
    const resources = Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
    for (const action of actionsOf(statement)) {
      for (const resource of resources) {
        lines.add(`${statement.Effect} ${action} ${JSON.stringify(resource)} ${JSON.stringify(statement.Condition ?? null)}`);
      }
    }
  }
  return [...lines].sort();
}

/** The role id behind a `{"Fn::GetAtt": [role, "Arn"]}`. */
export function roleIdOf(roleArn: unknown): string {
  const getAtt = (roleArn as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
  if (!getAtt) throw new Error(`not a role reference: ${JSON.stringify(roleArn)}`);
  return getAtt[0];
}

/** `arn:aws:s3:::bucket` of a bucket created by the stack, as the template spells it. */
export function bucketArn(bucketId: string): unknown {
  return { 'Fn::GetAtt': [bucketId, 'Arn'] };
}

/** The ARN of objects under `path` in a bucket created by the stack. */
export function objectsArn(bucketId: string, path: string): unknown {
  return { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, `/${path}`]] };
}

/** A list of actions, whether the template holds one or several. */
export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

/**
 * The text of an ARN as the template spells it, with the tokens read as IAM would see them for
 * the tests: `{"Fn::GetAtt": [id, "Arn"]}` as `arn:aws:s3:::<id>` (the buckets of the stack are
 * named by their logical id), `{"Ref": "AWS::Partition"}` as `aws`, any other `{"Ref": id}` as `id`.
 */
export function arnText(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, any>;
  if (v['Fn::Join']) return (v['Fn::Join'][1] as unknown[]).map(arnText).join(v['Fn::Join'][0]);
  if (v['Fn::GetAtt']) return `arn:aws:s3:::${v['Fn::GetAtt'][0]}`;
  if (v.Ref === 'AWS::Partition') return 'aws';
  if (v.Ref) return v.Ref;
  throw new Error(`no text for ${JSON.stringify(value)}`);
}

/** Whether an IAM pattern (`*` any run of characters, `?` one) matches `text`. */
export function iamMatch(pattern: string, text: string): boolean {
  const regex = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${regex}$`).test(text);
}

/** The resources of a statement, as text. */
export function resourcesOf(statement: Statement): string[] {
  return (Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource]).map(arnText);
}

/**
 * Whether the Allow statements grant `action` on the object `key` of bucket `bucketId`, or, for
 * `s3:ListBucket` and `s3:ListBucketMultipartUploads`, a listing of the bucket with `key` as its
 * prefix (undefined: a request that has no prefix, such as the 403-or-404 decision of a GET or
 * HEAD). Conditions other than a `StringLike` on `s3:prefix` are not expected, and fail the test.
 */
export function allows(statements: Statement[], action: string, bucketId: string, key?: string): boolean {
  const list = action === 's3:ListBucket' || action === 's3:ListBucketMultipartUploads';
  const arn = list ? `arn:aws:s3:::${bucketId}` : `arn:aws:s3:::${bucketId}/${key}`;
  return statements.some((statement) => {
    if (statement.Effect !== 'Allow' || !actionsOf(statement).includes(action)) return false;
    if (!resourcesOf(statement).some((pattern) => iamMatch(pattern, arn))) return false;
    if (statement.Condition === undefined) return true;
    const condition = statement.Condition as Record<string, Record<string, string | string[]>>;
    const keys = Object.keys(condition);
    if (keys.length !== 1 || keys[0] !== 'StringLike' || Object.keys(condition.StringLike).join() !== 's3:prefix') {
      throw new Error(`unexpected condition ${JSON.stringify(condition)}`);
    }
    if (key === undefined) return false;
    const prefixes = ([] as string[]).concat(condition.StringLike['s3:prefix']);
    return prefixes.some((pattern) => iamMatch(pattern, key));
  });
}
