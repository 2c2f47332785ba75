/**
 * `POST /reprocess`: an API Gateway REST API, authorized by AWS_IAM, that starts an execution of
 * the pipeline over the failed keys of an earlier run (or any list of keys). API Gateway checks
 * the body against a model and calls Step Functions' StartExecution itself; no Lambda sits in
 * between.
 */
import * as fs from 'fs';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { JsonObject, Schema, toDraft4 } from './json-schema';
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
 * The request model (JSON Schema draft 4): either `{"report": {"bucket", "key"}}`, the
 * failed-keys.json of an earlier run, or `{"keys": [...], "input": {...}}`, keys with the
 * execution input options they are converted with. The report location and the options are
 * checked against the execution input's own schema, so a request the model accepts is one the
 * planner reads.
 */
export const REPROCESS_REQUEST_SCHEMA: apigw.JsonSchema = {
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
          properties: Object.fromEntries(RUN_OPTIONS.map((option) => [option, draft4(FIELDS[option])])),
          // The execution input lets mode report leave them out or null (the earlier run gives
          // them); keys have no earlier run, so both are locations.
          allOf: [{ properties: { input: { type: apigw.JsonSchemaType.OBJECT }, output: { type: apigw.JsonSchemaType.OBJECT } } }],
        },
      },
    },
  ],
};

/** Unescapes what `$util.escapeJavaScript` escapes but JSON does not allow escaped: `'`. */
const JSON_STRING = (expr: string) => `$util.escapeJavaScript(${expr}).replaceAll("\\\\'", "'")`;

/**
 * The request mapping template: the body becomes a StartExecution request whose input is an
 * execution input, `{"mode": "report", "report": ...}` or `{"mode": "keys", "keys": [...]}` plus
 * the options under `input`. The model has checked the body, so `input` is a non-empty object
 * and `keys` is present exactly when `report` is not.
 */
export function startExecutionTemplate(stateMachineArn: string): string {
  return [
    "#set($keys = $input.path('$.keys'))",
    '{',
    `  "stateMachineArn": "${stateMachineArn}",`,
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

/** Settings of the reprocess API. */
export interface ReprocessApiProps {
  /** The state machine that requests start. */
  readonly stateMachine: sfn.IStateMachine;
  /** X-Ray tracing of the stage. */
  readonly tracing: boolean;
}

/** The reprocess API. */
export class ReprocessApi extends Construct {
  /** The REST API. */
  public readonly api: apigw.RestApi;
  /** `POST /reprocess`. */
  public readonly method: apigw.Method;

  constructor(scope: Construct, id: string, props: ReprocessApiProps) {
    super(scope, id);
    this.api = new apigw.RestApi(this, 'Api', {
      description: 'csvlake: reprocess the failed keys of a run',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      // No account-wide API Gateway logging role: it would carry a managed policy over every
      // log group of the account.
      cloudWatchRole: false,
      deployOptions: {
        stageName: 'v1',
        tracingEnabled: props.tracing,
        throttlingRateLimit: 10,
        throttlingBurstLimit: 20,
      },
    });
    this.api.addGatewayResponse('BadRequestBody', {
      type: apigw.ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      templates: { 'application/json': BAD_REQUEST_BODY_TEMPLATE },
    });

    const model = this.api.addModel('ReprocessRequest', {
      contentType: 'application/json',
      modelName: 'ReprocessRequest',
      schema: REPROCESS_REQUEST_SCHEMA,
    });
    const validator = this.api.addRequestValidator('Body', {
      requestValidatorName: 'reprocess-body',
      validateRequestBody: true,
      validateRequestParameters: false,
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
  }

  /** The URL of `POST /reprocess`. */
  public get url(): string {
    return this.api.urlForPath('/reprocess');
  }
}
