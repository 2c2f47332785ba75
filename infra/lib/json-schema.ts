/**
 * JSON Schema draft-07 to draft-04, the version API Gateway models are written in: the execution
 * input's schema is generated as draft-07 and the reprocess API checks requests against parts of it.
 */

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | JsonObject;
/** A JSON object. */
export interface JsonObject {
  [key: string]: Json;
}
/** A schema: an object, or (from draft-06 on) `true`, which allows anything, or `false`, which allows nothing. */
export type Schema = JsonObject | boolean;

/** Draft-04 keywords whose value is not a schema: copied as they are. */
const COPIED = new Set([
  'title',
  'description',
  'type',
  'enum',
  'multipleOf',
  'maximum',
  'minimum',
  'maxLength',
  'minLength',
  'pattern',
  'maxItems',
  'minItems',
  'uniqueItems',
  'maxProperties',
  'minProperties',
  'required',
]);

/**
 * Keywords dropped: identifiers and annotations that draft-04 lacks or that do not validate
 * (`definitions` are inlined where they are referred to). `default` is dropped too: it validates
 * nothing, the descriptions give the defaults in words, and API Gateway's schema mapping would
 * walk its value as if it were a schema.
 */
const DROPPED = new Set([
  '$schema',
  '$id',
  '$comment',
  'definitions',
  'default',
  'examples',
  'readOnly',
  'writeOnly',
  'contentMediaType',
  'contentEncoding',
]);

/** Draft-04's formats; others (`uint32`, `double` and the like) are not JSON Schema's, and dropped. */
const DRAFT4_FORMATS = new Set(['date-time', 'email', 'hostname', 'ipv4', 'ipv6', 'uri']);

/** Where a draft-07 schema keeps its definitions. */
const DEFINITIONS_REF = '#/definitions/';

/**
 * The draft-04 form of a draft-07 schema:
 * - every `$ref` to `#/definitions/<name>` is replaced by that definition, itself converted (a
 *   definition that refers to itself, directly or not, cannot be inlined, and is an error);
 * - `const: v` becomes `enum: [v]`;
 * - a numeric `exclusiveMinimum`/`exclusiveMaximum` becomes the bound with the boolean flag;
 * - `true` and `false` as schemas become `{}` and `{"not": {}}`;
 * - non-standard `format`s, `default`, `$schema` and other annotations are dropped;
 * - every other draft-04 keyword is kept, and subschemas are converted in turn.
 * A keyword draft-04 has no form for (`if`, `contains`, `propertyNames`, …) is an error, so that
 * nothing is silently checked less than the source schema says.
 */
export function toDraft4(schema: Schema, definitions: Readonly<Record<string, Schema>> = {}): JsonObject {
  return convert(schema, definitions, []);
}

/** `toDraft4`, with the names of the definitions being inlined (to refuse recursion). */
function convert(schema: Schema, definitions: Readonly<Record<string, Schema>>, inlining: readonly string[]): JsonObject {
  if (schema === true) return {};
  if (schema === false) return { not: {} };
  const sub = (s: Json) => convert(s as Schema, definitions, inlining);

  // In draft-07, keywords beside `$ref` are ignored: the definition stands for the whole object.
  const ref = schema.$ref;
  if (ref !== undefined) {
    if (typeof ref !== 'string' || !ref.startsWith(DEFINITIONS_REF)) throw new Error(`$ref ${JSON.stringify(ref)}: only ${DEFINITIONS_REF}<name> can be inlined`);
    // A JSON Pointer segment: `~1` is `/`, `~0` is `~`.
    const name = decodeURIComponent(ref.slice(DEFINITIONS_REF.length)).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!Object.prototype.hasOwnProperty.call(definitions, name)) throw new Error(`$ref ${ref}: no such definition`);
    if (inlining.includes(name)) throw new Error(`$ref ${ref}: a recursive definition cannot be inlined`);
    return convert(definitions[name], definitions, [...inlining, name]);
  }

  const out: JsonObject = {};
  for (const [keyword, value] of Object.entries(schema)) {
    if (COPIED.has(keyword)) {
      // Draft-04 wants at least one name in `required`.
      if (keyword === 'required' && Array.isArray(value) && value.length === 0) continue;
      out[keyword] = value;
    } else if (DROPPED.has(keyword)) {
      continue;
    } else if (keyword === 'format') {
      if (typeof value === 'string' && DRAFT4_FORMATS.has(value)) out.format = value;
    } else if (keyword === 'const') {
      if ('enum' in schema) throw new Error('const beside enum has no single draft-04 form');
      out.enum = [value];
    } else if (keyword === 'exclusiveMinimum' || keyword === 'exclusiveMaximum') {
      // A boolean is already draft-04's form; a number is handled once `minimum`/`maximum` are in.
      if (typeof value === 'boolean') out[keyword] = value;
    } else if (keyword === 'properties' || keyword === 'patternProperties') {
      out[keyword] = mapValues(value as JsonObject, sub);
    } else if (keyword === 'dependencies') {
      // A list of property names, or a schema.
      out[keyword] = mapValues(value as JsonObject, (d) => (Array.isArray(d) ? d : sub(d)));
    } else if (keyword === 'items') {
      out[keyword] = Array.isArray(value) ? value.map(sub) : sub(value);
    } else if (keyword === 'additionalProperties' || keyword === 'additionalItems') {
      // Booleans are draft-04's own here (`false`: nothing more allowed).
      out[keyword] = typeof value === 'boolean' ? value : sub(value);
    } else if (keyword === 'allOf' || keyword === 'anyOf' || keyword === 'oneOf') {
      out[keyword] = (value as Json[]).map(sub);
    } else if (keyword === 'not') {
      out[keyword] = sub(value);
    } else {
      throw new Error(`JSON Schema keyword ${keyword} has no draft-04 form`);
    }
  }
  exclusiveBound(out, 'minimum', 'exclusiveMinimum', schema.exclusiveMinimum, (a, b) => a > b);
  exclusiveBound(out, 'maximum', 'exclusiveMaximum', schema.exclusiveMaximum, (a, b) => a < b);
  return out;
}

/**
 * Turns draft-06's `exclusiveMinimum: n` (value > n) into draft-04's `minimum: n,
 * exclusiveMinimum: true`, or keeps an inclusive bound that is already stricter; likewise for the
 * maximum. `stricter(a, b)` tells whether bound `a` excludes more than bound `b`.
 */
function exclusiveBound(
  out: JsonObject,
  bound: 'minimum' | 'maximum',
  flag: 'exclusiveMinimum' | 'exclusiveMaximum',
  exclusive: Json | undefined,
  stricter: (a: number, b: number) => boolean,
): void {
  if (typeof exclusive !== 'number') return;
  const inclusive = out[bound];
  if (typeof inclusive === 'number' && stricter(inclusive, exclusive)) return;
  out[bound] = exclusive;
  out[flag] = true;
}

function mapValues(object: JsonObject, f: (value: Json) => Json): JsonObject {
  return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, f(v)]));
}
