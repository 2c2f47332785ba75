/**
 * cdk-nag's AwsSolutions pack over the stack, with and without the optional settings: no error or
 * warning may be left unacknowledged, and no acknowledgment may be left that matches no finding.
 */
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { CONFIGURATIONS } from './configurations';
import { synth } from './synth';

/** One finding: the rule (with its finding, `AwsSolutions-IAM5[Resource::…]`), where, how severe. */
interface Finding {
  readonly rule: string;
  readonly path: string;
  readonly severity: string;
}

/** The findings of the AwsSolutions pack over `scope`; with `ignoreAcknowledgments`, all of them. */
function findings(scope: IConstruct, ignoreAcknowledgments = false): Finding[] {
  const pack = new AwsSolutionsChecks(undefined, { verbose: true });
  // The pack's own check of acknowledgments, turned off to see what they acknowledge.
  if (ignoreAcknowledgments) (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
  const report = pack.validateScope(scope);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => ({ rule: v.ruleName, path: r.constructPath ?? r.resourceLogicalId ?? '', severity: v.severity ?? 'error' })),
  );
}

/** Every acknowledgment under `scope`: the rule, the construct it was made on, and its reason. */
function acknowledgments(scope: IConstruct): { rule: string; path: string; reason: string }[] {
  return scope.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) =>
        Object.entries(m.data as Record<string, string>).map(([rule, reason]) => ({
          rule: rule.replace(/^annotation::/i, ''),
          path: c.node.path,
          reason,
        })),
      ),
  );
}

describe.each(Object.entries(CONFIGURATIONS))('AwsSolutions with the configuration %s', (_, props) => {
  const { stack } = synth(props);

  test('leaves no error or warning unacknowledged', () => {
    expect(findings(stack)).toEqual([]);
  });

  test('has every acknowledgment match a finding, with a reason', () => {
    const all = findings(stack, true);
    for (const ack of acknowledgments(stack).filter((a) => a.rule.startsWith('AwsSolutions-'))) {
      // A finding on the acknowledged construct or below it.
      const matched = all.some((f) => f.rule === ack.rule && (f.path === ack.path || f.path.startsWith(`${ack.path}/`)));
      expect([ack.path, ack.rule, matched]).toEqual([ack.path, ack.rule, true]);
      expect(ack.reason.length).toBeGreaterThan(40);
    }
  });
});

test('the acknowledgments are of these rules only, and IAM5 only for named resources', () => {
  const { stack } = synth({ tracing: true, apiGatewayCloudWatchRole: true, serverAccessLogs: false });
  const rules = new Set(
    acknowledgments(stack)
      .map((a) => a.rule.replace(/\[.*$/, ''))
      .filter((rule) => rule.startsWith('AwsSolutions-')),
  );
  expect([...rules].sort()).toEqual(
    ['AwsSolutions-APIG3', 'AwsSolutions-COG4', 'AwsSolutions-IAM4', 'AwsSolutions-IAM5', 'AwsSolutions-S1', 'AwsSolutions-SF1'].sort(),
  );
  for (const ack of acknowledgments(stack)) {
    if (ack.rule.startsWith('AwsSolutions-IAM')) expect(ack.rule).toMatch(/^AwsSolutions-IAM[45]\[(Resource|Policy)::.+\]$/);
  }
});

test('the pack fails a stack that breaks a rule', () => {
  // The test above would pass on a pack that finds nothing: a bucket without logging is found.
  const { stack } = synth({ serverAccessLogs: true });
  const input = stack.storage.inputBucket.node.defaultChild as unknown as { loggingConfiguration?: unknown };
  input.loggingConfiguration = undefined;
  expect(findings(stack)).toEqual([{ rule: 'AwsSolutions-S1', path: 'Csvlake/Storage/Input/Resource', severity: 'error' }]);
});
