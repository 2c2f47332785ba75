/**
 * The csvlake stack: buckets, the three functions, the state machine loaded from
 * statemachine/pipeline.asl.json, an optional schedule, the reprocess API and alarms.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CfnOutput, Stack, StackProps, TimeZone } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';
import { PipelineAlarms } from './alarms';
import { PipelineFunctions } from './functions';
import { Pipeline } from './pipeline';
import { ReprocessApi } from './reprocess-api';
import { CsvlakeSettings, EXAMPLES_DIR, resolveSettings } from './settings';
import { Storage } from './storage';

/** Props of the csvlake stack: the stack's own and the settings. */
export interface CsvlakeStackProps extends StackProps, CsvlakeSettings {}

/** The example execution inputs the stack offers: the schedule's and the console's. */
export const EXAMPLES = {
  schedule: 'scheduled-incremental.json',
  backfill: 'console-backfill.json',
} as const;

/** The csvlake stack. */
export class CsvlakeStack extends Stack {
  public readonly storage: Storage;
  public readonly functions: PipelineFunctions;
  public readonly pipeline: Pipeline;
  public readonly api: ReprocessApi;
  public readonly alarms: PipelineAlarms;
  public readonly schedule?: scheduler.Schedule;

  constructor(scope: Construct, id: string, props: CsvlakeStackProps = {}) {
    super(scope, id, props);
    const settings = resolveSettings(props);
    this.storage = new Storage(this, 'Storage', settings);
    this.functions = new PipelineFunctions(this, 'Functions', this.storage, settings);
    this.pipeline = new Pipeline(this, 'Pipeline', this.functions, this.storage, settings);
    const stateMachine = this.pipeline.stateMachine;

    if (settings.schedule) {
      this.schedule = new scheduler.Schedule(this, 'Schedule', {
        description: 'csvlake: incremental scan of the input prefix',
        schedule: scheduler.ScheduleExpression.expression(
          settings.schedule,
          settings.scheduleTimeZone ? TimeZone.of(settings.scheduleTimeZone) : undefined,
        ),
        target: new targets.StepFunctionsStartExecution(stateMachine, {
          input: scheduler.ScheduleTargetInput.fromObject(this.exampleInput(EXAMPLES.schedule)),
          // A run that cannot start now is not worth starting an hour late: the next one covers it.
          retryAttempts: 2,
        }),
      });
      this.pipeline.startsExecutions(this.schedule);
    }

    this.api = new ReprocessApi(this, 'Reprocess', {
      stateMachine,
      tracing: settings.tracing,
      maxConcurrency: settings.maxConcurrency,
      logRetention: settings.logRetention,
      apiGatewayCloudWatchRole: settings.apiGatewayCloudWatchRole,
    });
    this.pipeline.startsExecutions(this.api);

    this.alarms = new PipelineAlarms(this, 'Alarms', {
      stateMachine,
      converter: this.functions.converter,
      alarmEmail: settings.alarmEmail,
    });

    new CfnOutput(this, 'InputBucketName', { value: this.storage.inputBucket.bucketName });
    new CfnOutput(this, 'OutputBucketName', { value: this.storage.outputBucket.bucketName });
    new CfnOutput(this, 'StateMachineArn', { value: stateMachine.stateMachineArn });
    new CfnOutput(this, 'ReprocessUrl', { value: this.api.url });
    new CfnOutput(this, 'BackfillInput', {
      description: 'An execution input for a backfill started from the console',
      value: this.toJsonString(this.exampleInput(EXAMPLES.backfill)),
    });
  }

  /**
   * An example execution input from statemachine/examples with this stack's buckets and prefixes
   * in place of the example's; every other option is the example's.
   */
  public exampleInput(name: string): Record<string, unknown> {
    const example = JSON.parse(fs.readFileSync(path.join(EXAMPLES_DIR, name), 'utf8'));
    return {
      ...example,
      input: { ...example.input, bucket: this.storage.inputBucket.bucketName, prefix: this.storage.inputPrefix },
      output: { ...example.output, bucket: this.storage.outputBucket.bucketName, prefix: this.storage.outputPrefix },
    };
  }
}
