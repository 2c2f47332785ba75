/**
 * Acknowledgments of cdk-nag's AwsSolutions findings that the stack keeps on purpose, each with
 * its reason. They are CDK's own `Validations.of(...).acknowledge`, which cdk-nag reads: the app
 * does not depend on cdk-nag, and test/nag.test.ts runs the AwsSolutions pack over the stack and
 * fails on any finding left unacknowledged, or on an acknowledgment that matches no finding.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/** Acknowledges the finding `rule` (an id such as `AwsSolutions-SF1`) on `scope` and everything under it. */
export function acknowledge(scope: IConstruct, rule: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: rule, reason });
}

/**
 * Acknowledges AwsSolutions-IAM5's finding for each of `resources`, ARNs with a wildcard in a
 * policy under `scope`: the finding is `AwsSolutions-IAM5[Resource::<arn>]`, the ARN spelled as
 * cdk-nag flattens the template's value, so that only these resources are acknowledged, never the
 * rule as a whole.
 */
export function acknowledgeWildcards(scope: IConstruct, resources: readonly string[], reason: string): void {
  for (const resource of resources) {
    acknowledge(scope, `AwsSolutions-IAM5[Resource::${findingValue(scope, resource)}]`, reason);
  }
}

/** A value (an ARN with tokens) as cdk-nag's findings spell it, resolved in `scope`'s stack. */
export function findingValue(scope: IConstruct, value: string): string {
  return flatten(Stack.of(scope).resolve(value));
}

/**
 * A template value as cdk-nag's findings spell it (its `flattenCfnReference`): `Fn::Join` joined,
 * `{"Fn::GetAtt": [id, attr]}` as `<id.attr>`, `{"Ref": id}` as `<id>`, `${x}` of `Fn::Sub` as `<x>`.
 */
export function flatten(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  const v = value as Record<string, unknown>;
  if (v['Fn::Join']) {
    const [delimiter, items] = v['Fn::Join'] as [string, unknown[]];
    return items.map(flatten).join(delimiter);
  }
  if (v['Fn::Sub']) return flatten(v['Fn::Sub']);
  if (v['Fn::GetAtt']) {
    const [resource, attribute] = v['Fn::GetAtt'] as [unknown, unknown];
    return `<${flatten(resource)}.${flatten(attribute)}>`;
  }
  if (v['Fn::ImportValue']) return flatten(v['Fn::ImportValue']);
  if (v.Ref) return `<${flatten(v.Ref)}>`;
  return JSON.stringify(value);
}
