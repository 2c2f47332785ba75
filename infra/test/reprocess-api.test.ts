/**
 * `POST /reprocess`: the method's authorization and validation, the request model against good
 * and bad bodies, and the mapping template rendered with a Velocity engine.
 */
import * as fs from 'fs';
import Ajv from 'ajv-draft-04';
import { render } from 'velocityjs';
import { BAD_REQUEST_BODY_TEMPLATE, RUN_OPTIONS, startExecutionTemplate } from '../lib/reprocess-api';
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
  ])('refuses %s', (_, body) => {
    expect(validate(body)).toBe(false);
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

function startExecutionRequest(body: unknown): { stateMachineArn: string; input: string } {
  const at = (p: string) => p.replace(/^\$\.?/, '').split('.').filter(Boolean).reduce<any>((o, k) => (o == null ? undefined : o[k]), body);
  const context = {
    input: { path: (p: string) => at(p), json: (p: string) => new JavaString(JSON.stringify(at(p)) ?? '') },
    util: { escapeJavaScript },
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
