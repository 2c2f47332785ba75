/**
 * `POST /reprocess`: an API Gateway REST API, authorized by AWS_IAM, that starts an execution of
 * the pipeline over the failed keys of an earlier run (or any list of keys). API Gateway checks
 * the body against a model and calls Step Functions' StartExecution itself; no Lambda sits in
 * between.
 */
import * as fs from 'fs';
import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { JsonObject, Schema, toDraft4 } from './json-schema';
import { acknowledge, findingValue } from './nag';
import { EXECUTION_INPUT_SCHEMA_FILE } from './settings';

/** The execution input's JSON Schema (draft-07), generated from the types the planner reads. */
const EXECUTION_INPUT: JsonObject = JSON.parse(fs.readFileSync(EXECUTION_INPUT_SCHEMA_FILE, 'utf8'));
const FIELDS = EXECUTION_INPUT.properties as Record<string, Schema>;
const DEFINITIONS = EXECUTION_INPUT.definitions as Record<string, Schema>;

/** The execution input fields the API sets itself from the request's shape. */
const SET_BY_THE_API = ['mode', 'keys', 'report'];
for (const field of SET_BY_THE_API) {
  if (!(field in FIELDS)) throw new Error(`${EXECUTION_INPUT_SCHEMA_FILE}: the execution input has no field ${field}`);
}

/** The options of an execution input that a `keys` request may carry under `input`: every other field. */
export const RUN_OPTIONS: readonly string[] = Object.keys(FIELDS).filter((field) => !SET_BY_THE_API.includes(field));

/** The execution input option that the deployment's `maxConcurrency` caps. */
export const MAX_CONCURRENCY_OPTION = 'max_concurrency';
if (!RUN_OPTIONS.includes(MAX_CONCURRENCY_OPTION)) {
  throw new Error(`${EXECUTION_INPUT_SCHEMA_FILE}: the execution input has no field ${MAX_CONCURRENCY_OPTION}`);
}

/** A part of the execution input's schema, in the draft-04 form API Gateway reads. */
function draft4(schema: Schema): apigw.JsonSchema {
  return toDraft4(schema, DEFINITIONS) as apigw.JsonSchema;
}

/** A definition of the execution input's schema. */
function definition(name: string): Schema {
  const schema = DEFINITIONS[name];
  if (schema === undefined) throw new Error(`${EXECUTION_INPUT_SCHEMA_FILE}: no definition ${name}`);
  return schema;
}

/**
 * The schema of `max_concurrency` with its maximum lowered to the deployment's ceiling. The
 * execution input's own schema gives it a numeric `maximum` (the Map's own limit); a schema of
 * another shape is an error, rather than a ceiling silently left unchecked.
 */
function cappedConcurrency(ceiling: number): apigw.JsonSchema {
  const schema = draft4(FIELDS[MAX_CONCURRENCY_OPTION]) as JsonObject;
  if (typeof schema.maximum !== 'number' || schema.exclusiveMaximum !== undefined) {
    throw new Error(`${EXECUTION_INPUT_SCHEMA_FILE}: ${MAX_CONCURRENCY_OPTION} has no inclusive numeric maximum to lower`);
  }
  return { ...schema, maximum: Math.min(schema.maximum, ceiling) } as apigw.JsonSchema;
}

/**
 * The request model (JSON Schema draft 4): either `{"report": {"bucket", "key"}}`, the
 * failed-keys.json of an earlier run, or `{"keys": [...], "input": {...}}`, keys with the
 * execution input options they are converted with. The report location and the options are
 * checked against the execution input's own schema, so a request the model accepts is one the
 * planner reads; `max_concurrency` may not exceed the deployment's ceiling, `maxConcurrency`.
 */
export function reprocessRequestSchema(maxConcurrency: number): apigw.JsonSchema {
  return {
    schema: apigw.JsonSchemaVersion.DRAFT4,
    title: 'ReprocessRequest',
    description: 'Either {"report": {"bucket", "key"}} or {"keys": [...], "input": {"input": {...}, "output": {...}, ...}}',
    type: apigw.JsonSchemaType.OBJECT,
    oneOf: [
      {
        title: 'report',
        type: apigw.JsonSchemaType.OBJECT,
        required: ['report'],
        additionalProperties: false,
        properties: { report: draft4(definition('ObjectLocation')) },
      },
      {
        title: 'keys',
        type: apigw.JsonSchemaType.OBJECT,
        required: ['keys', 'input'],
        additionalProperties: false,
        properties: {
          keys: {
            type: apigw.JsonSchemaType.ARRAY,
            minItems: 1,
            items: { type: apigw.JsonSchemaType.STRING, minLength: 1 },
          },
          input: {
            type: apigw.JsonSchemaType.OBJECT,
            required: ['input', 'output'],
            additionalProperties: false,
            properties: Object.fromEntries(
              RUN_OPTIONS.map((option) => [option, option === MAX_CONCURRENCY_OPTION ? cappedConcurrency(maxConcurrency) : draft4(FIELDS[option])]),
            ),
            // The execution input lets mode report leave them out or null (the earlier run gives
            // them); keys have no earlier run, so both are locations.
            allOf: [{ properties: { input: { type: apigw.JsonSchemaType.OBJECT }, output: { type: apigw.JsonSchemaType.OBJECT } } }],
          },
        },
      },
    ],
  };
}

/** Unescapes what `$util.escapeJavaScript` escapes but JSON does not allow escaped: `'`. */
const JSON_STRING = (expr: string) => `$util.escapeJavaScript(${expr}).replaceAll("\\\\'", "'")`;

/**
 * The request mapping template: the body becomes a StartExecution request whose input is an
 * execution input, `{"mode": "report", "report": ...}` or `{"mode": "keys", "keys": [...]}` plus
 * the options under `input`. The model has checked the body, so `input` is a non-empty object
 * and `keys` is present exactly when `report` is not. The execution's name, the run id, is the
 * request's id, which the access log records with the caller.
 */
export function startExecutionTemplate(stateMachineArn: string): string {
  return [
    "#set($keys = $input.path('$.keys'))",
    '{',
    `  "stateMachineArn": "${stateMachineArn}",`,
    '  "name": "$context.requestId",',
    '#if($keys && $keys.size() > 0)',
    // `{"input":...,"output":...}` without its `{`, after mode and keys.
    `  "input": "{\\"mode\\":\\"keys\\",\\"keys\\":${JSON_STRING("$input.json('$.keys')")},${JSON_STRING("$input.json('$.input').substring(1)")}"`,
    '#else',
    `  "input": "{\\"mode\\":\\"report\\",\\"report\\":${JSON_STRING("$input.json('$.report')")}}"`,
    '#end',
    '}',
  ].join('\n');
}

/** The body of a 400 for a request that fails the model: what failed, in the validator's words. */
export const BAD_REQUEST_BODY_TEMPLATE =
  '{"message": $context.error.messageString, "validation": "$context.error.validationErrorString"}';

/** The stage of the API. */
export const STAGE_NAME = 'v1';

/**
 * The access log's format, one JSON object per request: who called (the SigV4 signer's account,
 * principal and ARN, from where, with what), what they called, what API Gateway answered, and
 * the execution a 200 started: its name is the request id. `executionArnPrefix` is the
 * execution ARN without that name (`arn:…:execution:<state machine name>:`).
 */
export function accessLogFormat(executionArnPrefix: string): apigw.AccessLogFormat {
  const f = apigw.AccessLogField;
  const fields: Record<string, string> = {
    requestId: f.contextRequestId(),
    requestTime: f.contextRequestTime(),
    caller: f.contextIdentityCaller(),
    user: f.contextIdentityUser(),
    userArn: f.contextIdentityUserArn(),
    accountId: f.contextIdentityAccountId(),
    principalOrgId: f.contextIdentityPrincipalOrgId(),
    sourceIp: f.contextIdentitySourceIp(),
    userAgent: f.contextIdentityUserAgent(),
    httpMethod: f.contextHttpMethod(),
    resourcePath: f.contextResourcePath(),
    path: f.contextPath(),
    status: f.contextStatus(),
    responseLength: f.contextResponseLength(),
    responseLatency: f.contextResponseLatency(),
    errorResponseType: f.contextErrorResponseType(),
    errorMessage: f.contextErrorMessage(),
    integrationStatus: f.contextIntegrationStatus(),
    integrationLatency: f.contextIntegrationLatency(),
    // Step Functions' request id of the StartExecution call, as CloudTrail records it.
    stepFunctionsRequestId: f.contextAwsEndpointRequestId(),
    executionArn: `${executionArnPrefix}${f.contextRequestId()}`,
  };
  // Every value quoted, as AWS's own JSON format does, so that a missing one (`-`) leaves the line
  // valid JSON.
  const members = Object.entries(fields).map(([name, value]) => `"${name}":"${value}"`);
  return apigw.AccessLogFormat.custom(`{${members.join(',')}}`);
}

/** Settings of the reprocess API. */
export interface ReprocessApiProps {
  /** The state machine that requests start. */
  readonly stateMachine: sfn.StateMachine;
  /** X-Ray tracing of the stage. */
  readonly tracing: boolean;
  /** The highest `max_concurrency` a request may ask for. */
  readonly maxConcurrency: number;
  /** How long the access and execution logs are kept. */
  readonly logRetention: logs.RetentionDays;
  /**
   * Whether the stack sets the account's API Gateway CloudWatch Logs role; otherwise the account
   * must have one, or the stage's logging fails to deploy.
   */
  readonly apiGatewayCloudWatchRole: boolean;
}

/** The reprocess API. */
export class ReprocessApi extends Construct {
  /** The REST API. */
  public readonly api: apigw.RestApi;
  /** `POST /reprocess`. */
  public readonly method: apigw.Method;
  /** The stage's access log: one JSON line per request. */
  public readonly accessLogs: logs.LogGroup;
  /** The stage's execution log (errors), the log group API Gateway writes to, made with a retention. */
  public readonly executionLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ReprocessApiProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: props.logRetention });
    const executionArnPrefix = stack.formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${props.stateMachine.stateMachineName}:`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.api = new apigw.RestApi(this, 'Api', {
      description: 'csvlake: reprocess the failed keys of a run',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      // The account-wide API Gateway logging role, which the stage's logs need, is the
      // account's unless apiGatewayCloudWatchRole asks the stack to set it. It is kept when the
      // stack is deleted: every API of the account and region logs through it.
      cloudWatchRole: props.apiGatewayCloudWatchRole,
      cloudWatchRoleRemovalPolicy: props.apiGatewayCloudWatchRole ? RemovalPolicy.RETAIN : undefined,
      deployOptions: {
        stageName: STAGE_NAME,
        tracingEnabled: props.tracing,
        throttlingRateLimit: 10,
        throttlingBurstLimit: 20,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: accessLogFormat(executionArnPrefix),
        // Execution logs of errors only, without request or response bodies.
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
      },
    });
    // API Gateway writes execution logs to this group, and would create it without a retention.
    this.executionLogs = new logs.LogGroup(this, 'ExecutionLogs', {
      logGroupName: `API-Gateway-Execution-Logs_${this.api.restApiId}/${STAGE_NAME}`,
      retention: props.logRetention,
    });
    this.api.deploymentStage.node.addDependency(this.executionLogs);
    this.api.addGatewayResponse('BadRequestBody', {
      type: apigw.ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      templates: { 'application/json': BAD_REQUEST_BODY_TEMPLATE },
    });

    const model = this.api.addModel('ReprocessRequest', {
      contentType: 'application/json',
      modelName: 'ReprocessRequest',
      schema: reprocessRequestSchema(props.maxConcurrency),
    });
    const validator = this.api.addRequestValidator('Body', {
      requestValidatorName: 'reprocess-body',
      validateRequestBody: true,
      // The method declares no required parameter, so this refuses nothing today; it keeps any
      // that a later change declares checked.
      validateRequestParameters: true,
    });

    const role = new iam.Role(this, 'StartExecutionRole', {
      assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
      description: 'csvlake reprocess API: starts executions of the pipeline',
    });
    props.stateMachine.grantStartExecution(role);

    const integration = new apigw.AwsIntegration({
      service: 'states',
      action: 'StartExecution',
      integrationHttpMethod: 'POST',
      options: {
        credentialsRole: role,
        // A body that is not JSON is refused (415) rather than passed to Step Functions.
        passthroughBehavior: apigw.PassthroughBehavior.NEVER,
        requestTemplates: { 'application/json': startExecutionTemplate(props.stateMachine.stateMachineArn) },
        integrationResponses: [
          // {"executionArn": ..., "startDate": ...}
          { statusCode: '200' },
          // Step Functions' own refusals (an input over 256 KiB, an unknown state machine) keep
          // their type and message.
          { statusCode: '400', selectionPattern: '4\\d{2}' },
          { statusCode: '500', selectionPattern: '5\\d{2}' },
        ],
      },
    });
    this.method = this.api.root.addResource('reprocess').addMethod('POST', integration, {
      authorizationType: apigw.AuthorizationType.IAM,
      requestValidator: validator,
      requestModels: { 'application/json': model },
      methodResponses: [{ statusCode: '200' }, { statusCode: '400' }, { statusCode: '500' }],
    });

    acknowledge(
      this.method,
      'AwsSolutions-COG4',
      'POST /reprocess is authorized by AWS_IAM: its callers are AWS principals (operators, pipelines) that sign with SigV4 and ' +
        'need execute-api:Invoke on the method; there are no end users for a Cognito user pool to hold',
    );
    acknowledge(
      this.api.deploymentStage,
      'AwsSolutions-APIG3',
      'stage v1 of the reprocess API takes only SigV4-signed requests of principals allowed execute-api:Invoke, throttled to ' +
        '10 per second (burst 20), each starting one execution; API Gateway refuses an unsigned request before the integration, ' +
        'so a WAFv2 web ACL would add a fixed monthly cost and guard nothing the IAM authorization does not',
    );
    if (props.apiGatewayCloudWatchRole) {
      const role = this.api.node.findChild('CloudWatchRole');
      const managed = iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs');
      acknowledge(
        role,
        `AwsSolutions-IAM4[Policy::${findingValue(role, managed.managedPolicyArn)}]`,
        "the account's API Gateway CloudWatch Logs role (apiGatewayCloudWatchRole) serves every REST API of the account and " +
          'region, whose log groups API Gateway creates and names itself; AWS documents AmazonAPIGatewayPushToCloudWatchLogs ' +
          'as the policy of this role, and no inline policy could name the log groups of APIs not yet made',
      );
    }
  }

  /** The URL of `POST /reprocess`. */
  public get url(): string {
    return this.api.urlForPath('/reprocess');
  }
}
