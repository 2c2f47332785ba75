/**
 * `POST /reprocess`: the method's authorization and validation, the request model against good
 * and bad bodies, and the mapping template rendered with a Velocity engine.
 */
import * as fs from 'fs';
import Ajv from 'ajv-draft-04';
import { render } from 'velocityjs';
import { BAD_REQUEST_BODY_TEMPLATE, RUN_OPTIONS, startExecutionTemplate } from '../lib/reprocess-api';
import { Synth } from './synth';
import { EXECUTION_INPUT_SCHEMA_FILE } from '../lib/settings';
import { logicalId, synth } from './synth';

const { stack, template } = synth();
const method = () => Object.values(template.findResources('AWS::ApiGateway::Method'))[0].Properties;
const model = () => Object.values(template.findResources('AWS::ApiGateway::Model'))[0].Properties;

test('POST /reprocess is authorized by AWS_IAM and validates its body against the model', () => {
  const m = method();
  expect(m.HttpMethod).toBe('POST');
  expect(m.AuthorizationType).toBe('AWS_IAM');
  const validators = template.findResources('AWS::ApiGateway::RequestValidator');
  expect(Object.values(validators).map((v) => v.Properties.ValidateRequestBody)).toEqual([true]);
  expect(Object.values(validators).map((v) => v.Properties.ValidateRequestParameters)).toEqual([true]);
  expect(m.RequestValidatorId).toEqual({ Ref: Object.keys(validators)[0] });
  expect(m.RequestModels).toEqual({ 'application/json': { Ref: Object.keys(template.findResources('AWS::ApiGateway::Model'))[0] } });
  template.hasResourceProperties('AWS::ApiGateway::Resource', { PathPart: 'reprocess' });
});

test('the integration is Step Functions StartExecution, directly, with its own role', () => {
  const integration = method().Integration;
  expect(integration.Type).toBe('AWS');
  expect(integration.IntegrationHttpMethod).toBe('POST');
  expect(JSON.stringify(integration.Uri)).toContain(':states:action/StartExecution');
  expect(integration.Credentials).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^ReprocessStartExecutionRole/), 'Arn'] });
  expect(integration.PassthroughBehavior).toBe('NEVER');
  expect(integration.IntegrationResponses).toEqual([
    { StatusCode: '200' },
    { StatusCode: '400', SelectionPattern: '4\\d{2}' },
    { StatusCode: '500', SelectionPattern: '5\\d{2}' },
  ]);
  // The template names the state machine through its ARN.
  const request = integration.RequestTemplates['application/json'];
  expect(JSON.stringify(request)).toContain(JSON.stringify({ Ref: logicalId(stack.pipeline.stateMachine) }));
  template.resourceCountIs('AWS::Lambda::Function', 3);
});

test('a body that fails the model gets a 400 that says why', () => {
  template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
    ResponseType: 'BAD_REQUEST_BODY',
    StatusCode: '400',
    ResponseTemplates: { 'application/json': BAD_REQUEST_BODY_TEMPLATE },
  });
  expect(BAD_REQUEST_BODY_TEMPLATE).toContain('$context.error.validationErrorString');
});

/** The stage's properties. */
function stageOf(synthesized: Pick<Synth, 'template'>) {
  const stages = Object.values(synthesized.template.findResources('AWS::ApiGateway::Stage'));
  expect(stages).toHaveLength(1);
  return stages[0];
}

/** The access log's format with its tokens (the state machine's name) spelled `<id.attr>`. */
function accessLogFormat(synthesized: Pick<Synth, 'template'>): string {
  const format = stageOf(synthesized).Properties.AccessLogSetting.Format;
  if (typeof format === 'string') return format;
  return (format['Fn::Join'][1] as unknown[])
    .map((part) => (typeof part === 'string' ? part : `<${(part as { 'Fn::GetAtt': string[] })['Fn::GetAtt'].join('.')}>`))
    .join(format['Fn::Join'][0]);
}

describe('the stage v1', () => {
  test('writes a JSON access log, with the stack\'s log retention, of who called what, the answer, and the execution', () => {
    const stage = stageOf({ template }).Properties;
    expect(stage.StageName).toBe('v1');
    const accessLogs = logicalId(stack.api.accessLogs);
    // The group's ARN without the `:*` of its streams (`@aws-cdk/aws-apigateway:logGroupDestinationArnWithoutWildcard`).
    expect(stage.AccessLogSetting.DestinationArn).toEqual({
      'Fn::Join': ['', ['arn:aws:logs:eu-west-1:123456789012:log-group:', { Ref: accessLogs }]],
    });
    expect(template.findResources('AWS::Logs::LogGroup')[accessLogs].Properties.RetentionInDays).toBe(30);

    const format = accessLogFormat({ template });
    // A line as API Gateway writes it, each variable replaced by a value; a missing one is `-`.
    const line = format
      .replace(/\$context\.error\.message/g, 'Invalid request body')
      .replace(/\$context\.requestId/g, '0f6c2cbb-6a3e-4a6b-8f25-2b2b8a1d9c11')
      .replace(/\$context\.[A-Za-z.]+/g, '-');
    const entry = JSON.parse(line);
    expect(Object.keys(entry).sort()).toEqual(
      [
        'requestId', 'requestTime', 'caller', 'user', 'userArn', 'accountId', 'principalOrgId', 'sourceIp', 'userAgent', 'httpMethod',
        'resourcePath', 'path', 'status', 'responseLength', 'responseLatency', 'errorResponseType', 'integrationStatus',
        'integrationLatency', 'stepFunctionsRequestId', 'executionArn', 'errorMessage',
      ].sort(),
    );
    expect(entry.errorMessage).toBe('Invalid request body');
    const fields = JSON.parse(format);
    expect(fields).toMatchObject({
      requestId: '$context.requestId',
      caller: '$context.identity.caller',
      userArn: '$context.identity.userArn',
      accountId: '$context.identity.accountId',
      sourceIp: '$context.identity.sourceIp',
      httpMethod: '$context.httpMethod',
      resourcePath: '$context.resourcePath',
      status: '$context.status',
      stepFunctionsRequestId: '$context.awsEndpointRequestId',
      errorMessage: '$context.error.message',
    });
    // The execution a 200 started is named by the request id.
    const sm = logicalId(stack.pipeline.stateMachine);
    expect(fields.executionArn).toBe(`arn:aws:states:eu-west-1:123456789012:execution:<${sm}.Name>:$context.requestId`);
  });

  test('logs errors, without bodies, to an execution log group made with the stack\'s retention', () => {
    const stage = stageOf({ template });
    expect(stage.Properties.MethodSettings).toEqual([
      {
        HttpMethod: '*',
        ResourcePath: '/*',
        LoggingLevel: 'ERROR',
        DataTraceEnabled: false,
        ThrottlingRateLimit: 10,
        ThrottlingBurstLimit: 20,
      },
    ]);
    const executionLogs = logicalId(stack.api.executionLogs);
    expect(template.findResources('AWS::Logs::LogGroup')[executionLogs].Properties).toEqual({
      LogGroupName: { 'Fn::Join': ['', ['API-Gateway-Execution-Logs_', { Ref: logicalId(stack.api.api) }, '/v1']] },
      RetentionInDays: 30,
    });
    // Made before the stage, so that API Gateway never makes it without a retention.
    expect(stage.DependsOn).toContain(executionLogs);
  });

  test('keeps its logs as long as logRetentionDays says', () => {
    const year = synth({ logRetentionDays: 365 });
    const groups = year.template.findResources('AWS::Logs::LogGroup');
    expect(groups[logicalId(year.stack.api.accessLogs)].Properties.RetentionInDays).toBe(365);
    expect(groups[logicalId(year.stack.api.executionLogs)].Properties.RetentionInDays).toBe(365);
  });

  test('sets no account-wide logging role unless asked, and keeps the one it sets', () => {
    template.resourceCountIs('AWS::ApiGateway::Account', 0);
    const withRole = synth({ apiGatewayCloudWatchRole: true });
    const accounts = Object.values(withRole.template.findResources('AWS::ApiGateway::Account'));
    expect(accounts).toHaveLength(1);
    expect(accounts[0].DeletionPolicy).toBe('Retain');
    const roleId = accounts[0].Properties.CloudWatchRoleArn['Fn::GetAtt'][0];
    const role = withRole.template.findResources('AWS::IAM::Role')[roleId];
    expect(role.DeletionPolicy).toBe('Retain');
    expect(JSON.stringify(role.Properties.ManagedPolicyArns)).toContain('service-role/AmazonAPIGatewayPushToCloudWatchLogs');
    // The stage's logging waits for the account's role.
    expect(stageOf(withRole).DependsOn).toContain(Object.keys(withRole.template.findResources('AWS::ApiGateway::Account'))[0]);
  });
});

describe('the request model', () => {
  const validate = new Ajv({ allErrors: true }).compile(model().Schema);
  const location = { bucket: 'raw-bucket', prefix: 'landing/' };
  const out = { bucket: 'lake-bucket', prefix: 'converted/' };

  test.each([
    ['a report', { report: { bucket: 'lake-bucket', key: 'converted/_runs/r1/failed-keys.json' } }],
    ['keys with input and output', { keys: ['landing/a.csv'], input: { input: location, output: out } }],
    [
      'keys with every option',
      {
        keys: ['landing/a.csv', 'landing/b.csv.gz'],
        input: {
          input: location,
          output: out,
          incremental: false,
          formats: ['parquet'],
          batch: { max_files: 10 },
          max_concurrency: 5,
          tolerated_failure_percentage: 0,
          csv: { delimiter: ';' },
          parquet: { compression: 'zstd' },
          avro: { codec: 'null' },
        },
      },
    ],
    [
      'keys with nested options, as the planner reads them',
      {
        keys: ['landing/a.csv'],
        input: {
          input: { ...location, suffixes: ['.csv', '.txt'] },
          output: out,
          csv: { delimiter: ';', null_values: ['', 'NA'], schema: { id: 'int' } },
          parquet: { compression: 'zstd' },
          avro: { codec: 'deflate' },
          batch: { max_files: 10 },
        },
      },
    ],
    ['options that are null', { keys: ['a.csv'], input: { input: location, output: out, csv: null, formats: null, max_concurrency: null } }],
  ])('accepts %s', (_, body) => {
    const valid = validate(body);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  test.each([
    ['an empty body', {}],
    ['both shapes at once', { report: { bucket: 'lake-bucket', key: 'k' }, keys: ['a.csv'], input: { input: location, output: out } }],
    ['a report without a key', { report: { bucket: 'lake-bucket' } }],
    ['keys without input', { keys: ['a.csv'] }],
    ['no keys', { keys: [], input: { input: location, output: out } }],
    ['keys that are not strings', { keys: [1], input: { input: location, output: out } }],
    ['input without output', { keys: ['a.csv'], input: { input: location } }],
    ['a mode of its own', { keys: ['a.csv'], input: { input: location, output: out, mode: 'scan' } }],
    ['an unknown option', { keys: ['a.csv'], input: { input: location, output: out, speed: 'fast' } }],
    ['a tolerance over 100', { keys: ['a.csv'], input: { input: location, output: out, tolerated_failure_percentage: 101 } }],
    ['an input that is null', { keys: ['a.csv'], input: { input: null, output: out } }],
    ['an input without a bucket', { keys: ['a.csv'], input: { input: { prefix: 'landing/' }, output: out } }],
    ['an unknown CSV option', { keys: ['a.csv'], input: { input: location, output: out, csv: { delimiter: ';', separator: ';' } } }],
    ['a delimiter of two characters', { keys: ['a.csv'], input: { input: location, output: out, csv: { delimiter: ';;' } } }],
    ['a column type that is not a type name', { keys: ['a.csv'], input: { input: location, output: out, csv: { schema: { id: 'uuid' } } } }],
    ['an unknown Parquet compression', { keys: ['a.csv'], input: { input: location, output: out, parquet: { compression: 'gzip' } } }],
    ['an unknown Avro codec', { keys: ['a.csv'], input: { input: location, output: out, avro: { codec: 'brotli' } } }],
    ['an unknown format', { keys: ['a.csv'], input: { input: location, output: out, formats: ['orc'] } }],
    ['a negative batch size', { keys: ['a.csv'], input: { input: location, output: out, batch: { max_files: -1 } } }],
    ['a concurrency that is not an integer', { keys: ['a.csv'], input: { input: location, output: out, max_concurrency: 2.5 } }],
    ['a concurrency over the ceiling', { keys: ['a.csv'], input: { input: location, output: out, max_concurrency: 101 } }],
  ])('refuses %s', (_, body) => {
    expect(validate(body)).toBe(false);
  });

  test('allows max_concurrency up to the deployment\'s ceiling, maxConcurrency', () => {
    const body = (n: number) => ({ keys: ['a.csv'], input: { input: location, output: out, max_concurrency: n } });
    expect(validate(body(100))).toBe(true);
    expect(validate(body(101))).toBe(false);
    const capped = synth({ maxConcurrency: 20 });
    const cappedModel = Object.values(capped.template.findResources('AWS::ApiGateway::Model'))[0].Properties.Schema;
    const validateCapped = new Ajv({ allErrors: true }).compile(cappedModel);
    expect(validateCapped(body(20))).toBe(true);
    expect(validateCapped(body(21))).toBe(false);
    const keysShape = cappedModel.oneOf.find((s: { title: string }) => s.title === 'keys');
    expect(keysShape.properties.input.properties.max_concurrency.maximum).toBe(20);
    // The execution input's own bound stays where the ceiling is above it.
    const schema = JSON.parse(fs.readFileSync(EXECUTION_INPUT_SCHEMA_FILE, 'utf8'));
    expect(schema.properties.max_concurrency.maximum).toBe(10000);
    const top = Object.values(synth({ maxConcurrency: 10000 }).template.findResources('AWS::ApiGateway::Model'))[0].Properties.Schema;
    expect(top.oneOf.find((s: { title: string }) => s.title === 'keys').properties.input.properties.max_concurrency.maximum).toBe(10000);
  });

  test('allows exactly the execution input options besides mode, keys and report', () => {
    const keysShape = model().Schema.oneOf.find((s: { title: string }) => s.title === 'keys');
    const options = Object.keys(keysShape.properties.input.properties).sort();
    expect(options).toEqual([...RUN_OPTIONS].sort());
    // The execution input is defined once, by the schema generated from the planner's types.
    const fields = Object.keys(JSON.parse(fs.readFileSync(EXECUTION_INPUT_SCHEMA_FILE, 'utf8')).properties);
    expect(fields).toEqual(expect.arrayContaining(['mode', 'keys', 'report', 'input', 'output']));
    expect(options).toEqual(fields.filter((f) => !['mode', 'keys', 'report'].includes(f)).sort());
  });

  test('is draft-04 throughout: no $ref, const or draft-07 keyword is left', () => {
    const text = JSON.stringify(model().Schema);
    expect(model().Schema.$schema).toBe('http://json-schema.org/draft-04/schema#');
    const ajv = new Ajv();
    expect(ajv.validateSchema(model().Schema)).toBe(true);
    expect(ajv.errors ?? []).toEqual([]);
    for (const keyword of ['$ref', 'const', 'definitions', 'default', 'format']) expect(text).not.toContain(`"${keyword}":`);
    // The column types of csv.schema are inlined where they are used.
    const csv = model().Schema.oneOf.find((s: { title: string }) => s.title === 'keys').properties.input.properties.csv;
    const columnType = csv.anyOf[0].properties.schema.additionalProperties;
    expect(columnType.anyOf[0].enum).toEqual(expect.arrayContaining(['int', 'string', 'timestamp']));
    expect(new RegExp(columnType.anyOf[1].pattern).test('decimal(12, 2)')).toBe(true);
  });
});

/**
 * The subset of API Gateway's `$input` and `$util` that the template uses, with Java's String
 * methods where the template calls them (`substring`, and `replaceAll`, whose pattern is a regex).
 */
class JavaString {
  constructor(private readonly s: string) {}
  substring(begin: number, end?: number): JavaString {
    return new JavaString(this.s.substring(begin, end));
  }
  replaceAll(regex: string, replacement: string): JavaString {
    return new JavaString(this.s.replace(new RegExp(regex, 'g'), replacement));
  }
  toString(): string {
    return this.s;
  }
}

/** Java's StringEscapeUtils.escapeJavaScript, as `$util.escapeJavaScript` applies it. */
function escapeJavaScript(value: unknown): JavaString {
  const s = String(value);
  let out = '';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === '"' || ch === "'" || ch === '\\' || ch === '/') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (code < 0x20 || code > 0x7e) {
      for (const unit of ch.split('').map((c) => c.charCodeAt(0))) out += `\\u${unit.toString(16).toUpperCase().padStart(4, '0')}`;
    } else out += ch;
  }
  return new JavaString(out);
}

/** The request id of the rendered requests. */
const REQUEST_ID = '0f6c2cbb-6a3e-4a6b-8f25-2b2b8a1d9c11';

function startExecutionRequest(body: unknown): { stateMachineArn: string; name: string; input: string } {
  const at = (p: string) => p.replace(/^\$\.?/, '').split('.').filter(Boolean).reduce<any>((o, k) => (o == null ? undefined : o[k]), body);
  const context = {
    input: { path: (p: string) => at(p), json: (p: string) => new JavaString(JSON.stringify(at(p)) ?? '') },
    util: { escapeJavaScript },
    context: { requestId: REQUEST_ID },
  };
  const rendered = render(startExecutionTemplate('arn:aws:states:eu-west-1:123456789012:stateMachine:csvlake'), context);
  return JSON.parse(rendered);
}

describe('the mapping template', () => {
  test('turns a report into an execution input in mode report', () => {
    const report = { bucket: 'lake-bucket', key: 'converted/_runs/2026-11-20/failed-keys.json' };
    const request = startExecutionRequest({ report });
    expect(request.stateMachineArn).toBe('arn:aws:states:eu-west-1:123456789012:stateMachine:csvlake');
    expect(JSON.parse(request.input)).toEqual({ mode: 'report', report });
    // The run id is the request id, which the access log records.
    expect(request.name).toBe(REQUEST_ID);
    expect(Object.keys(request).sort()).toEqual(['input', 'name', 'stateMachineArn']);
  });

  test('turns keys and options into an execution input in mode keys, whatever the keys hold', () => {
    const keys = ["landing/it's.csv", 'landing/"quoted"\\back/slash.csv', 'landing/été/日本.csv', 'landing/tab\there.csv'];
    const options = {
      input: { bucket: 'raw-bucket', prefix: 'landing/' },
      output: { bucket: 'lake-bucket', prefix: 'converted/' },
      formats: ['avro'],
      csv: { delimiter: ';', null_values: ['', 'N/A'] },
      tolerated_failure_percentage: 0,
    };
    const request = startExecutionRequest({ keys, input: options });
    expect(JSON.parse(request.input)).toEqual({ mode: 'keys', keys, ...options });
  });
});
