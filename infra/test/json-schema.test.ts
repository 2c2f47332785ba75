/** JSON Schema draft-07 to draft-04, as API Gateway models need it. */
import Ajv from 'ajv-draft-04';
import { JsonObject, toDraft4 } from '../lib/json-schema';

const definitions: Record<string, JsonObject> = {
  Codec: {
    description: 'A codec.',
    oneOf: [
      { const: 'snappy', description: 'Snappy.', type: 'string' },
      { const: 'null', description: 'None.', type: 'string' },
    ],
  },
  Options: {
    additionalProperties: false,
    description: 'Options.',
    properties: {
      codec: { allOf: [{ $ref: '#/definitions/Codec' }], default: 'snappy', description: 'The codec.' },
      rows: { default: 10, format: 'uint', minimum: 0, type: 'integer' },
      when: { format: 'date-time', type: ['string', 'null'] },
    },
    type: 'object',
  },
};

test('inlines $ref, turns const into enum, and drops formats of its own and defaults', () => {
  const schema: JsonObject = { $schema: 'http://json-schema.org/draft-07/schema#', anyOf: [{ $ref: '#/definitions/Options' }, { type: 'null' }], description: 'Options, or none.' };
  expect(toDraft4(schema, definitions)).toEqual({
    anyOf: [
      {
        additionalProperties: false,
        description: 'Options.',
        properties: {
          codec: {
            allOf: [
              {
                description: 'A codec.',
                oneOf: [
                  { enum: ['snappy'], description: 'Snappy.', type: 'string' },
                  { enum: ['null'], description: 'None.', type: 'string' },
                ],
              },
            ],
            description: 'The codec.',
          },
          rows: { minimum: 0, type: 'integer' },
          when: { format: 'date-time', type: ['string', 'null'] },
        },
        type: 'object',
      },
      { type: 'null' },
    ],
    description: 'Options, or none.',
  });
});

test('gives draft-04 forms of exclusive bounds and boolean schemas, and converts every kind of subschema', () => {
  expect(toDraft4({ type: 'number', exclusiveMinimum: 0, maximum: 100 })).toEqual({ type: 'number', minimum: 0, exclusiveMinimum: true, maximum: 100 });
  expect(toDraft4({ type: 'number', minimum: 5, exclusiveMinimum: 0 })).toEqual({ type: 'number', minimum: 5 });
  expect(toDraft4({ type: 'number', maximum: 10, exclusiveMaximum: 10 })).toEqual({ type: 'number', maximum: 10, exclusiveMaximum: true });
  expect(toDraft4(true)).toEqual({});
  expect(toDraft4(false)).toEqual({ not: {} });
  const ref = { $ref: '#/definitions/Codec' };
  const codec = toDraft4(ref, definitions);
  expect(
    toDraft4(
      {
        items: [ref, true],
        additionalItems: ref,
        patternProperties: { '^x-': ref },
        dependencies: { a: ['b'], c: ref },
        not: ref,
        additionalProperties: ref,
        required: [],
      },
      definitions,
    ),
  ).toEqual({
    items: [codec, {}],
    additionalItems: codec,
    patternProperties: { '^x-': codec },
    dependencies: { a: ['b'], c: codec },
    not: codec,
    additionalProperties: codec,
  });
});

test('refuses what draft-04 cannot say, and definitions it cannot inline', () => {
  expect(() => toDraft4({ if: { type: 'string' }, then: { minLength: 1 } })).toThrow(/keyword if has no draft-04 form/);
  expect(() => toDraft4({ type: 'array', contains: { type: 'string' } })).toThrow(/keyword contains/);
  expect(() => toDraft4({ $ref: '#/definitions/Missing' }, definitions)).toThrow(/no such definition/);
  expect(() => toDraft4({ $ref: 'other.json#/definitions/Codec' }, definitions)).toThrow(/can be inlined/);
  const tree = { type: 'object', properties: { children: { type: 'array', items: { $ref: '#/definitions/Tree' } } } };
  expect(() => toDraft4({ $ref: '#/definitions/Tree' }, { Tree: tree })).toThrow(/recursive/);
});

test('its output is a valid draft-04 schema that checks what the source schema checks', () => {
  // Strict: an unknown keyword is an error. Formats are API Gateway's to check.
  const ajv = new Ajv({ strict: true, formats: { 'date-time': true } });
  const schema = toDraft4({ $ref: '#/definitions/Options' }, definitions);
  expect(ajv.validateSchema(schema)).toBe(true);
  const validate = ajv.compile(schema);
  expect(validate({ codec: 'null', rows: 5, when: null })).toBe(true);
  expect(validate({ codec: 'zstd' })).toBe(false);
  expect(validate({ rows: -1 })).toBe(false);
  expect(validate({ other: 1 })).toBe(false);
});
