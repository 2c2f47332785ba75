/**
 * The example execution inputs (statemachine/examples) are valid against the execution input's
 * JSON Schema, generated from the types the planner reads; the stack starts its schedule and its
 * console backfill from them.
 */
import * as fs from 'fs';
import * as path from 'path';
import Ajv from 'ajv';
import { EXAMPLES } from '../lib/csvlake-stack';
import { EXAMPLES_DIR, EXECUTION_INPUT_SCHEMA_FILE } from '../lib/settings';
import { synth } from './synth';

const schema = JSON.parse(fs.readFileSync(EXECUTION_INPUT_SCHEMA_FILE, 'utf8'));
// The formats are schemars' names of integer and float widths, which no validator knows; the
// ranges that matter are minimum and maximum.
const formats = { uint: true, uint32: true, uint64: true, double: true } as const;
const validate = new Ajv({ allErrors: true, strict: true, formats }).compile(schema);
const examples = fs.readdirSync(EXAMPLES_DIR).filter((name) => name.endsWith('.json')).sort();
const read = (name: string) => JSON.parse(fs.readFileSync(path.join(EXAMPLES_DIR, name), 'utf8'));

test('the three examples include the two the stack starts runs from', () => {
  expect(examples).toEqual(['console-backfill.json', 'reprocess-failed-keys.json', 'scheduled-incremental.json']);
  for (const name of Object.values(EXAMPLES)) expect(examples).toContain(name);
});

test.each(examples)('%s is valid against execution-input.schema.json', (name) => {
  const valid = validate(read(name));
  expect(validate.errors ?? []).toEqual([]);
  expect(valid).toBe(true);
});

test('the schema refuses what the planner refuses: an unknown field, a table depth beyond 16', () => {
  const example = read(EXAMPLES.schedule);
  expect(validate({ ...example, tables: 1 })).toBe(false);
  expect(validate({ ...example, table_depth: 17 })).toBe(false);
  expect(validate({ ...example, table_depth: 2, delete_orphans: true })).toBe(true);
});

test('the inputs the stack starts runs from are valid too, with its catalog database', () => {
  const { stack } = synth({ inputBucketName: 'raw', outputBucketName: 'lake', catalogDatabase: 'lake' });
  for (const name of Object.values(EXAMPLES)) {
    const input = stack.exampleInput(name);
    expect(input.catalog).toEqual({ database: 'lake' });
    const valid = validate(input);
    expect([name, validate.errors ?? []]).toEqual([name, []]);
    expect(valid).toBe(true);
  }
});
