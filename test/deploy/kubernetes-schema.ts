// Kubernetes manifests checked against the API's OpenAPI definitions, as strictly as `kubectl apply`
// (its default --validate=strict: an unknown field is an error, not a silently dropped line).
//
// The definitions are data from the pinned devDependency kubernetes-models 3.1.0, Kubernetes 1.23's
// OpenAPI document split per definition: each `_schemas/<Id>.js` of it and of its
// @kubernetes-models/apimachinery holds one `const schema = {...}` in JSON (later releases ship
// compiled validators instead, which do not reject unknown fields). A kind's module names the
// definition of its objects. A manifest valid against 1.23 applies to later releases too: stable
// APIs only gain fields.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

interface Schema {
  readonly type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean' | 'null';
  readonly format?: string;
  readonly nullable?: boolean;
  readonly enum?: readonly unknown[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: Schema | boolean;
  readonly items?: Schema;
  readonly oneOf?: readonly Schema[];
  readonly $ref?: string;
}

const require = createRequire(import.meta.url);
const MODELS = dirname(dirname(require.resolve('kubernetes-models/v1/Namespace')));
const APIMACHINERY = dirname(createRequire(join(MODELS, 'package.json')).resolve('@kubernetes-models/apimachinery'));

const definitions = new Map<string, Schema>();

// The package's generator dropped every property named "description" or "x-kubernetes-*" (it took
// them for annotations of the schema): put back the ones the API has, with the API's types.
const JSON_SCHEMA_PROPS = 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps';
const DROPPED: Readonly<Record<string, Readonly<Record<string, Schema>>>> = {
  [JSON_SCHEMA_PROPS]: {
    description: { type: 'string' },
    'x-kubernetes-embedded-resource': { type: 'boolean' },
    'x-kubernetes-int-or-string': { type: 'boolean' },
    'x-kubernetes-list-map-keys': { type: 'array', items: { type: 'string' } },
    'x-kubernetes-list-type': { type: 'string' },
    'x-kubernetes-map-type': { type: 'string' },
    'x-kubernetes-preserve-unknown-fields': { type: 'boolean' },
    'x-kubernetes-validations': {
      type: 'array',
      items: { type: 'object', required: ['rule'], properties: { rule: { type: 'string' }, message: { type: 'string' } } },
    },
  },
  'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ExternalDocumentation': { description: { type: 'string' } },
  'io.k8s.api.scheduling.v1.PriorityClass': { description: { type: 'string' } },
};

/** "io.k8s.api.apps.v1.DaemonSetSpec" is in _schemas/IoK8sApiAppsV1DaemonSetSpec.js. */
function definition(id: string): Schema {
  const known = definitions.get(id);
  if (known !== undefined) return known;
  const file = `${id.split(/[.-]/).map((s) => s.charAt(0).toUpperCase() + s.slice(1)).join('')}.js`;
  const path = [MODELS, APIMACHINERY].map((dir) => join(dir, '_schemas', file)).find((p) => existsSync(p));
  const text = path === undefined ? undefined : readFileSync(path, 'utf8');
  const json = text?.includes(`register)("${id}", schema)`) ? /^const schema = (\{[\s\S]*?\n\});$/m.exec(text)?.[1] : undefined;
  if (json === undefined) throw new Error(`kubernetes-models has no definition ${id}`);
  const parsed = JSON.parse(json) as Schema;
  const schema = DROPPED[id] === undefined ? parsed : { ...parsed, properties: { ...parsed.properties, ...DROPPED[id] } };
  definitions.set(id, schema);
  return schema;
}

/** The definition of a kind's objects, or undefined when the API has no such apiVersion and kind. */
export function definitionOfKind(apiVersion: string, kind: string): string | undefined {
  if (!/^([a-z0-9.-]+\/)?v\w+$/.test(apiVersion) || !/^[A-Z]\w*$/.test(kind)) return undefined;
  const path = join(MODELS, apiVersion, `${kind}.js`);
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8');
  // Only a kind's module sets apiVersion and kind (DaemonSetSpec's, say, does not).
  if (!text.includes(`.apiVersion = "${apiVersion}";`) || !text.includes(`.kind = "${kind}";`)) return undefined;
  return /setSchema\)\(\w+, "([^"]+)"/.exec(text)?.[1];
}

const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;
const INT32 = 2 ** 31;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Appends "PATH: what is wrong" for each way `value` breaks `schema`. */
function check(value: unknown, schema: Schema, path: string, problems: string[]): void {
  if (schema.$ref !== undefined) return check(value, definition(schema.$ref.replace(/#$/, '')), path, problems);
  const at = path === '' ? '.' : path;
  if (schema.oneOf !== undefined) {
    const outcomes = schema.oneOf.map((alternative) => {
      const found: string[] = [];
      check(value, alternative, path, found);
      return found;
    });
    const matches = outcomes.filter((o) => o.length === 0).length;
    if (matches === 1) return;
    if (matches > 1) return void problems.push(`${at}: matches more than one of its alternatives`);
    // The closest alternative explains best: an object that is almost a Container, not "want null".
    const explaining = outcomes.filter((_, i) => value === null || schema.oneOf?.[i]?.type !== 'null');
    const fewest = Math.min(...explaining.map((o) => o.length));
    const closest = explaining.filter((o) => o.length === fewest);
    // A scalar that is none of its forms (IntOrString, Quantity): name them all.
    if (closest.length > 1 && fewest === 1) problems.push(`${at}: ${closest.map((o) => (o[0] as string).slice(at.length + 2)).join('; ')}`);
    else problems.push(...(closest[0] ?? []));
    return;
  }
  if (value === null) {
    if (schema.type !== 'null' && schema.nullable !== true) problems.push(`${at}: null, want ${schema.type ?? 'a value'}`);
    return;
  }
  if (schema.enum !== undefined && !schema.enum.includes(value)) {
    problems.push(`${at}: ${describe(value)} is not one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
    return;
  }
  switch (schema.type) {
    case 'object': {
      if (!isObject(value)) return void problems.push(`${at}: ${describe(value)}, want an object`);
      for (const field of schema.required ?? []) if (value[field] === undefined) problems.push(`${path}.${field}: required, missing`);
      // Neither properties nor additionalProperties: a free-form object (e.g. JSONSchemaPropsOrArray).
      const free = schema.properties === undefined && schema.additionalProperties === undefined;
      for (const [field, v] of Object.entries(value)) {
        const fieldSchema = schema.properties?.[field] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
        if (fieldSchema !== undefined) check(v, fieldSchema, `${path}.${field}`, problems);
        else if (!free && schema.additionalProperties !== true) problems.push(`${path}.${field}: unknown field`);
      }
      return;
    }
    case 'array':
      if (!Array.isArray(value)) return void problems.push(`${at}: ${describe(value)}, want an array`);
      if (schema.items !== undefined) value.forEach((item, i) => check(item, schema.items as Schema, `${path}[${i}]`, problems));
      return;
    case 'string':
      if (typeof value !== 'string') return void problems.push(`${at}: ${describe(value)}, want a string`);
      if (schema.format === 'quantity' && !QUANTITY.test(value)) problems.push(`${at}: "${value}" is not a quantity`);
      if (schema.format === 'byte' && !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) problems.push(`${at}: "${value}" is not base64`);
      return;
    case 'integer':
      if (!Number.isInteger(value)) return void problems.push(`${at}: ${describe(value)}, want an integer`);
      if (schema.format === 'int32' && ((value as number) < -INT32 || (value as number) >= INT32)) problems.push(`${at}: ${value as number} is not an int32`);
      return;
    case 'number':
      if (typeof value !== 'number') problems.push(`${at}: ${describe(value)}, want a number`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push(`${at}: ${describe(value)}, want true or false`);
      return;
    case 'null':
      return void problems.push(`${at}: ${describe(value)}, want null`);
    case undefined:
      return;
  }
}

/** What is wrong with one manifest, one "PATH: problem" line each; empty when the API accepts it. */
export function validateManifest(manifest: unknown): string[] {
  if (!isObject(manifest)) return [`.: ${describe(manifest)}, want an object`];
  const { apiVersion, kind } = manifest;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return ['.: apiVersion and kind are required strings'];
  const id = definitionOfKind(apiVersion, kind);
  if (id === undefined) return [`.: the API has no kind ${kind} in ${apiVersion}`];
  const problems: string[] = [];
  check(manifest, definition(id), '', problems);
  return problems;
}
