/** infra/cdk.json sets CDK's recommended feature flags, and the tests synthesize with them. */
import * as cxapi from 'aws-cdk-lib/cx-api';
import { CDK_JSON_CONTEXT, synth } from './synth';

test('cdk.json sets every flag that `cdk init` writes for the installed aws-cdk-lib, to its recommended value', () => {
  // A newer aws-cdk-lib recommends more: this fails until cdk.json has them (and the tests pass with them).
  const recommended = cxapi.CURRENTLY_RECOMMENDED_FLAGS as Record<string, unknown>;
  expect(Object.keys(recommended).length).toBeGreaterThan(50);
  for (const [flag, value] of Object.entries(recommended)) {
    expect([flag, CDK_JSON_CONTEXT[flag]]).toEqual([flag, value]);
  }
});

test('the tests synthesize with the flags of cdk.json', () => {
  const { stack } = synth();
  for (const flag of Object.keys(cxapi.CURRENTLY_RECOMMENDED_FLAGS)) {
    expect([flag, stack.node.tryGetContext(flag)]).toEqual([flag, CDK_JSON_CONTEXT[flag]]);
  }
});
