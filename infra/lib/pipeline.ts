/**
 * The state machine, loaded from statemachine/pipeline.asl.json (the file `csvlake run` executes)
 * with the function ARNs substituted and the run timeout added. Nothing of the definition is
 * repeated here; this construct only grants what the definition's states call.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isDeepStrictEqual } from 'util';
import { ArnFormat, Names, Stack, Stage } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { SHARED_NAMES } from './constants';
import { PipelineFunctions } from './functions';
import { acknowledge, acknowledgeWildcards } from './nag';
import { DEFINITION_FILE, ResolvedSettings, runTimeoutSeconds } from './settings';
import { Storage } from './storage';

/** The substitution variables of pipeline.asl.json, as the local executor names them too. */
export const SUBSTITUTIONS = SHARED_NAMES.substitutions;

/**
 * The definition the stack deploys: `text` (pipeline.asl.json) with a top-level `TimeoutSeconds`
 * inserted after its opening brace, and every other byte as it is. CloudFormation has no timeout
 * property of its own, and CDK's `timeout` prop is ignored for a definition read from a file, so
 * the timeout can only be part of the definition; the file itself leaves it out, since it is the
 * deployment's to choose.
 */
export function withTimeout(text: string, timeoutSeconds: number): string {
  const definition = JSON.parse(text);
  if (typeof definition !== 'object' || definition === null || Array.isArray(definition)) {
    throw new Error(`${DEFINITION_FILE}: the definition is not a JSON object`);
  }
  if ('TimeoutSeconds' in definition) {
    throw new Error(`${DEFINITION_FILE}: the definition sets TimeoutSeconds; the stack sets it from runTimeoutHours`);
  }
  const brace = text.indexOf('{');
  const timed = `${text.slice(0, brace + 1)}\n  "TimeoutSeconds": ${timeoutSeconds},${text.slice(brace + 1)}`;
  // The one field was added, and nothing else changed.
  const { TimeoutSeconds: added, ...rest } = JSON.parse(timed);
  if (added !== timeoutSeconds || !isDeepStrictEqual(rest, definition)) {
    throw new Error(`${DEFINITION_FILE}: TimeoutSeconds could not be added to the definition`);
  }
  return timed;
}

/** The csvlake state machine. */
export class Pipeline extends Construct {
  /** The state machine. */
  public readonly stateMachine: sfn.StateMachine;
  /**
   * The Distributed Map's rights over the state machine's own executions. They name the state
   * machine, so they live outside its role's default policy, which the state machine depends on.
   */
  public readonly mapPolicy: iam.Policy;

  constructor(scope: Construct, id: string, functions: PipelineFunctions, storage: Storage, settings: ResolvedSettings) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, 'Logs', {
      // Step Functions delivers logs through CloudWatch Logs' vended log delivery; the
      // /aws/vendedlogs/ prefix keeps the account's log resource policy small.
      logGroupName: `/aws/vendedlogs/states/${Stack.of(this).stackName}-pipeline`,
      retention: settings.logRetention,
    });

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      comment: 'csvlake: CSV objects in S3 to Parquet and Avro',
      stateMachineType: sfn.StateMachineType.STANDARD,
      // The execution times out after runTimeoutHours, the lifetime of the table leases that the
      // planner takes (CSVLAKE_LEASE_SECONDS), so that no run outlives its leases.
      definitionBody: sfn.DefinitionBody.fromFile(this.timedDefinitionFile(runTimeoutSeconds(settings))),
      definitionSubstitutions: {
        [SUBSTITUTIONS.planner]: functions.planner.functionArn,
        [SUBSTITUTIONS.converter]: functions.converter.functionArn,
        [SUBSTITUTIONS.reducer]: functions.reducer.functionArn,
      },
      // The log delivery permissions CDK adds for this (logs:CreateLogDelivery and the like) take
      // Resource "*": CloudWatch Logs' vended log delivery has no resource-level permissions.
      logs: { destination: logGroup, level: sfn.LogLevel.ERROR, includeExecutionData: true },
      // The X-Ray permissions CDK adds for this take Resource "*": X-Ray's PutTraceSegments,
      // PutTelemetryRecords, GetSamplingRules and GetSamplingTargets have no resource-level
      // permissions.
      tracingEnabled: settings.tracing,
    });
    const role = this.stateMachine.role;

    // Plan, ConvertBatch, Reduce and ReleaseLeases (the reducer again) are lambda:invoke tasks,
    // each naming its function by the unqualified ARN: no version or alias (`<arn>:*`, which
    // grantInvoke would add) is ever invoked.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: functions.all().map((fn) => fn.functionArn),
      }),
    );

    // The Map's ItemReader reads the manifest, and its ResultWriter writes the child results,
    // both under _runs/ (ResultWriter uploads in parts).
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
        resources: [storage.runObjects()],
      }),
    );

    // A Distributed Map starts each child as an execution of this state machine, and describes
    // and stops them.
    const stack = Stack.of(this);
    const executions = stack.formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${this.stateMachine.stateMachineName}/*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.mapPolicy = new iam.Policy(this, 'DistributedMapPolicy', {
      roles: [role],
      statements: [
        new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [this.stateMachine.stateMachineArn] }),
        new iam.PolicyStatement({ actions: ['states:DescribeExecution', 'states:StopExecution'], resources: [executions] }),
      ],
    });

    // What cdk-nag's AwsSolutions pack finds here, and why it stays.
    acknowledgeWildcards(
      this.mapPolicy,
      [executions],
      "the Distributed Map's policy: the Map's child executions of this state machine are named by Step Functions at run " +
        "time, so DescribeExecution and StopExecution can name them only as <state machine name>/*, this state machine's alone",
    );
    acknowledgeWildcards(
      role,
      ['*'],
      "the state machine's role: CDK adds logs:CreateLogDelivery, GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, " +
        'ListLogDeliveries, PutResourcePolicy, DescribeResourcePolicies and DescribeLogGroups for its logging, and, with ' +
        'tracing, xray:PutTraceSegments, PutTelemetryRecords, GetSamplingRules and GetSamplingTargets; none of these actions ' +
        'has resource-level permissions, so IAM accepts only Resource "*" for them (test/iam.test.ts checks that no other ' +
        'action has it)',
    );
    acknowledgeWildcards(
      role,
      [storage.runObjects()],
      "the state machine's role: the Map's ItemReader reads the run's manifest and its ResultWriter writes the child results " +
        'under <outputPrefix>_runs/<run id>/, and run ids are execution names chosen at start, so IAM can name them only ' +
        'under the _runs/ prefix',
    );
    acknowledge(
      this.stateMachine,
      'AwsSolutions-SF1',
      'the state machine logs at level ERROR with execution data, so every failed state is logged with its input; ALL would ' +
        "also log every state transition of each of the Distributed Map's child executions with its batch of keys (up to " +
        '256 KiB each), multiplying log ingestion by the number of batches, while Step Functions keeps the execution history ' +
        'of every run for 90 days anyway',
    );
    if (!settings.tracing) {
      acknowledge(
        this.stateMachine,
        'AwsSolutions-SF2',
        'X-Ray tracing of the state machine is the tracing setting, off by default: a Distributed Map run makes a trace of ' +
          'each of its child executions, thousands per run, billed per trace, while the execution history and the ' +
          "functions' logs already give each state's timing and error; `-c tracing=true` turns it on",
      );
    }
  }

  /**
   * Writes the definition with its timeout (see {@link withTimeout}) where the asset is staged
   * from: the cloud assembly's directory, under a name of this construct, so that two stacks of
   * one app keep theirs apart.
   */
  private timedDefinitionFile(timeoutSeconds: number): string {
    const outdir = Stage.of(this)?.outdir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'csvlake-'));
    fs.mkdirSync(outdir, { recursive: true });
    const file = path.join(outdir, `${Names.uniqueId(this)}.asl.json`);
    fs.writeFileSync(file, withTimeout(fs.readFileSync(DEFINITION_FILE, 'utf8'), timeoutSeconds));
    return file;
  }

  /**
   * Makes `dependent` wait for the Map's policy, so that nothing starts an execution whose Map
   * cannot start its children yet.
   */
  public startsExecutions(dependent: Construct): void {
    dependent.node.addDependency(this.mapPolicy);
  }
}
