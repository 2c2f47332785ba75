/**
 * CloudWatch alarms: failed and timed-out executions, converter errors and throttles, and failed
 * files from the reducer's EMF metrics; optionally sent to an SNS topic with an email subscription.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { SHARED_NAMES } from './constants';

/** The namespace of the reducer's EMF metrics. */
export const METRICS_NAMESPACE = SHARED_NAMES.metrics.namespace;
/**
 * The dimension the reducer adds from the pipeline environment variable, so that two stacks keep
 * their metrics apart.
 */
export const PIPELINE_DIMENSION = SHARED_NAMES.metrics.pipeline_dimension;
/** The reducer's metric of failed files. */
export const FILES_FAILED_METRIC = SHARED_NAMES.metrics.files_failed;

/** What the alarms watch. */
export interface PipelineAlarmsProps {
  readonly stateMachine: sfn.StateMachine;
  readonly converter: lambda.Function;
  /** Where alarms are sent by email through a new topic. */
  readonly alarmEmail?: string;
}

/** The alarms of a csvlake stack. */
export class PipelineAlarms extends Construct {
  /** Every alarm. */
  public readonly alarms: cloudwatch.Alarm[] = [];
  /** The topic the alarms notify, when an email address was given. */
  public readonly topic?: sns.Topic;

  constructor(scope: Construct, id: string, props: PipelineAlarmsProps) {
    super(scope, id);
    const period = Duration.minutes(5);
    const filesFailed = new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: FILES_FAILED_METRIC,
      dimensionsMap: { [PIPELINE_DIMENSION]: Stack.of(this).stackName },
      statistic: cloudwatch.Stats.SUM,
      period,
    });
    const watched: [string, cloudwatch.IMetric, string][] = [
      ['ExecutionsFailed', props.stateMachine.metricFailed({ period }), 'A csvlake run failed (or exceeded its tolerance)'],
      ['ExecutionsTimedOut', props.stateMachine.metricTimedOut({ period }), 'A csvlake run timed out'],
      ['ConverterErrors', props.converter.metricErrors({ period }), 'The converter failed a batch (after Retry, the batch may still have converted)'],
      ['ConverterThrottles', props.converter.metricThrottles({ period }), "The converter was throttled: lower maxConcurrency, or raise the account's concurrency limit or converterReservedConcurrency"],
      ['FilesFailed', filesFailed, 'A csvlake run reported failed files; its report.json lists them'],
    ];
    for (const [name, metric, description] of watched) {
      this.alarms.push(
        new cloudwatch.Alarm(this, name, {
          metric,
          alarmDescription: description,
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }

    if (props.alarmEmail) {
      this.topic = new sns.Topic(this, 'Topic', { displayName: 'csvlake alarms', enforceSSL: true });
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
      const action = new actions.SnsAction(this.topic);
      for (const alarm of this.alarms) alarm.addAlarmAction(action);
    }
  }
}
