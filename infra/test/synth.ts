/** Synthesizes the stack for the tests, without building the functions. */
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

/** Synthesizes a stack with the given props; bundling (cargo-lambda) is skipped. */
export function synth(props: CsvlakeStackProps = {}): Synth {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
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
