/** The state machine is the definition file, deployed as it is, with the functions substituted. */
import * as fs from 'fs';
import * as path from 'path';
import { DEFINITION_FILE } from '../lib/settings';
import { SUBSTITUTIONS, withTimeout } from '../lib/pipeline';
import { actionsOf, logicalId, roleIdOf, statementsOfRole, synth } from './synth';

const { app, stack, template } = synth();
const stateMachine = () => template.findResources('AWS::StepFunctions::StateMachine')[logicalId(stack.pipeline.stateMachine)];

/** The definition the stack uploaded, as text. */
function staged(synthesized: { app: typeof app; stack: typeof stack; template: typeof template }): string {
  const sm = synthesized.template.findResources('AWS::StepFunctions::StateMachine')[logicalId(synthesized.stack.pipeline.stateMachine)];
  return fs.readFileSync(path.join(synthesized.app.outdir, `asset.${sm.Properties.DefinitionS3Location.Key}`), 'utf8');
}

test('the definition is pipeline.asl.json itself, with the run timeout, uploaded as an asset, never redefined', () => {
  const props = stateMachine().Properties;
  expect(props.DefinitionString).toBeUndefined();
  expect(props.Definition).toBeUndefined();
  const file = fs.readFileSync(DEFINITION_FILE, 'utf8');
  const deployed = staged({ app, stack, template });
  // One line added, every other byte the file's.
  expect(deployed).toBe(withTimeout(file, 24 * 3600));
  expect(deployed.replace('\n  "TimeoutSeconds": 86400,', '')).toBe(file);
  expect(JSON.parse(deployed)).toEqual({ ...JSON.parse(file), TimeoutSeconds: 86400 });
});

test('the run timeout is the state machine\'s TimeoutSeconds and the planner\'s lease lifetime', () => {
  const six = synth({ runTimeoutHours: 6 });
  expect(JSON.parse(staged(six)).TimeoutSeconds).toBe(21600);
  const planner = six.template.findResources('AWS::Lambda::Function')[logicalId(six.stack.functions.planner)].Properties;
  expect(planner.Environment.Variables.CSVLAKE_LEASE_SECONDS).toBe('21600');
  const year = synth({ runTimeoutHours: 8760 });
  expect(JSON.parse(staged(year)).TimeoutSeconds).toBe(31536000);
});

test('a definition that sets its own TimeoutSeconds, or that is not an object, is refused', () => {
  expect(() => withTimeout('{"StartAt": "A", "TimeoutSeconds": 5, "States": {}}', 60)).toThrow(/sets TimeoutSeconds/);
  expect(() => withTimeout('[]', 60)).toThrow(/not a JSON object/);
  expect(withTimeout('  {"StartAt": "A"}', 60)).toBe('  {\n  "TimeoutSeconds": 60,"StartAt": "A"}');
});

test('the definition holds the DISTRIBUTED Maps Convert and Conform, each with its ItemReader and ResultWriter', () => {
  const definition = JSON.parse(fs.readFileSync(DEFINITION_FILE, 'utf8'));
  const maps = Object.entries(definition.States).filter(([, s]) => (s as { Type: string }).Type === 'Map');
  expect(maps.map(([name]) => name)).toEqual(['Convert', 'Conform']);
  for (const [, m] of maps) {
    const map = m as Record<string, any>;
    expect(map.ItemProcessor.ProcessorConfig.Mode).toBe('DISTRIBUTED');
    expect(map.ItemReader.Resource).toBe('arn:aws:states:::s3:getObject');
    expect(map.ResultWriter.Resource).toBe('arn:aws:states:::s3:putObject');
    expect(map.MaxConcurrencyPath).toBeDefined();
    expect(map.ToleratedFailurePercentagePath).toBeDefined();
  }
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

test('Reduce catches into ReleaseLeases, the reducer again, then ReduceFailed; every function ARN resolves', () => {
  const definition = JSON.parse(staged({ app, stack, template }));
  const states = definition.States;
  expect(states.Reduce.Catch).toEqual([expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: 'ReleaseLeases' })]);
  expect(states.ReleaseLeases).toMatchObject({
    Type: 'Task',
    Resource: 'arn:aws:states:::lambda:invoke',
    Parameters: { FunctionName: `\${${SUBSTITUTIONS.reducer}}` },
    Next: 'ReduceFailed',
  });
  expect(states.ReleaseLeases.Catch).toEqual([expect.objectContaining({ Next: 'ReduceFailed' })]);
  expect(states.ReduceFailed).toMatchObject({ Type: 'Fail', ErrorPath: '$.reduce_error.Error', CausePath: '$.reduce_error.Cause' });

  // Every lambda:invoke task of the deployed definition, the Map's too, names a substitution that
  // resolves to one of the stack's functions, which the state machine's role may invoke.
  const substitutions = stateMachine().Properties.DefinitionSubstitutions;
  const role = roleIdOf(stateMachine().Properties.RoleArn);
  const invoked = statementsOfRole(template, role)
    .filter((s) => actionsOf(s).includes('lambda:InvokeFunction'))
    .flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]))
    .map((r) => JSON.stringify(r));
  const tasks: [string, string][] = [];
  const visit = (machine: { States: Record<string, any> }) => {
    for (const [name, state] of Object.entries(machine.States)) {
      if (state.Resource === 'arn:aws:states:::lambda:invoke') tasks.push([name, state.Parameters.FunctionName]);
      if (state.ItemProcessor) visit(state.ItemProcessor);
    }
  };
  visit(definition);
  expect(tasks.map(([name]) => name).sort()).toEqual(['ConformBatch', 'ConvertBatch', 'Join', 'Plan', 'Reduce', 'ReleaseLeases']);
  const functions: Record<string, string> = {
    [SUBSTITUTIONS.planner]: logicalId(stack.functions.planner),
    [SUBSTITUTIONS.converter]: logicalId(stack.functions.converter),
    [SUBSTITUTIONS.reducer]: logicalId(stack.functions.reducer),
  };
  for (const [name, functionName] of tasks) {
    const variable = /^\$\{(\w+)\}$/.exec(functionName)?.[1];
    expect([name, variable && functions[variable]]).toEqual([name, expect.any(String)]);
    const arn = { 'Fn::GetAtt': [functions[variable!], 'Arn'] };
    expect(substitutions[variable!]).toEqual(arn);
    expect(invoked).toContain(JSON.stringify(arn));
  }
});
