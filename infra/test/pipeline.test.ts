/** The state machine is the definition file, deployed as it is, with the functions substituted. */
import * as fs from 'fs';
import * as path from 'path';
import { DEFINITION_FILE } from '../lib/settings';
import { SUBSTITUTIONS } from '../lib/pipeline';
import { logicalId, synth } from './synth';

const { app, stack, template } = synth();
const stateMachine = () => template.findResources('AWS::StepFunctions::StateMachine')[logicalId(stack.pipeline.stateMachine)];

test('the definition is pipeline.asl.json itself, uploaded as an asset, never redefined', () => {
  const props = stateMachine().Properties;
  expect(props.DefinitionString).toBeUndefined();
  expect(props.Definition).toBeUndefined();
  const key: string = props.DefinitionS3Location.Key;
  const staged = path.join(app.outdir, `asset.${key}`);
  expect(fs.readFileSync(staged, 'utf8')).toBe(fs.readFileSync(DEFINITION_FILE, 'utf8'));
});

test('the definition holds the DISTRIBUTED Map with its ItemReader and ResultWriter', () => {
  const definition = JSON.parse(fs.readFileSync(DEFINITION_FILE, 'utf8'));
  const maps = Object.entries(definition.States).filter(([, s]) => (s as { Type: string }).Type === 'Map');
  expect(maps).toHaveLength(1);
  const [, map] = maps[0] as [string, Record<string, any>];
  expect(map.ItemProcessor.ProcessorConfig.Mode).toBe('DISTRIBUTED');
  expect(map.ItemReader.Resource).toBe('arn:aws:states:::s3:getObject');
  expect(map.ResultWriter.Resource).toBe('arn:aws:states:::s3:putObject');
  expect(map.MaxConcurrencyPath).toBeDefined();
  expect(map.ToleratedFailurePercentagePath).toBeDefined();
});

test('every ${...} of the definition is substituted with a function ARN, and nothing else is', () => {
  const text = fs.readFileSync(DEFINITION_FILE, 'utf8');
  const variables = new Set([...text.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]));
  expect([...variables].sort()).toEqual(Object.values(SUBSTITUTIONS).sort());
  expect(stateMachine().Properties.DefinitionSubstitutions).toEqual({
    [SUBSTITUTIONS.planner]: { 'Fn::GetAtt': [logicalId(stack.functions.planner), 'Arn'] },
    [SUBSTITUTIONS.converter]: { 'Fn::GetAtt': [logicalId(stack.functions.converter), 'Arn'] },
    [SUBSTITUTIONS.reducer]: { 'Fn::GetAtt': [logicalId(stack.functions.reducer), 'Arn'] },
  });
});

test('the state machine is STANDARD, logs errors to its own log group, and traces only when asked', () => {
  const props = stateMachine().Properties;
  expect(props.StateMachineType).toBe('STANDARD');
  expect(props.LoggingConfiguration).toEqual({
    Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [expect.any(String), 'Arn'] } } }],
    IncludeExecutionData: true,
    Level: 'ERROR',
  });
  expect(props.TracingConfiguration).toEqual({ Enabled: false });
  template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: '/aws/vendedlogs/states/Csvlake-pipeline' });

  const traced = synth({ tracing: true });
  const tracedProps = Object.values(traced.template.findResources('AWS::StepFunctions::StateMachine'))[0].Properties;
  expect(tracedProps.TracingConfiguration).toEqual({ Enabled: true });
});

test('nothing that starts executions comes before the Map may start its children', () => {
  const withSchedule = synth({ schedule: 'rate(1 day)' });
  const policy = logicalId(withSchedule.stack.pipeline.mapPolicy);
  const method = Object.values(withSchedule.template.findResources('AWS::ApiGateway::Method'))[0];
  expect(method.DependsOn).toContain(policy);
  const schedule = Object.values(withSchedule.template.findResources('AWS::Scheduler::Schedule'))[0];
  expect(schedule.DependsOn).toContain(policy);
});
