// Junk, three ways: arbitrary JSON (its keys include Object.prototype's members and the fields the
// decoders read), values of one format that are certainly not valid, and valid objects with one
// field replaced or removed.
import { fc } from './setup.js';
import { cidr, endpoint, ip, ipv4, ipv6, objectName, namespace, wireGuardKey } from './values.js';

/** Keys that reach Object.prototype when a decoder looks a string up in a plain object. */
export const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf'] as const;

const FIELD_NAMES = [
  'apiVersion', 'kind', 'metadata', 'name', 'namespace', 'labels', 'annotations', 'spec', 'status', 'items',
  'podCIDR', 'podCIDRs', 'allowedIPs', 'publicKey', 'endpoint', 'ports', 'port', 'protocol', 'clusterIP',
  'clusterIPs', 'type', 'addressType', 'endpoints', 'addresses', 'conditions', 'dnsOrIP', 'ip',
] as const;

const shortText = fc.oneof(fc.string({ maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 8 }));

/** Strings close to some format's values without being one: the junk a typo or a wrong field makes. */
const nearMiss: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', ' ', '-', 'None', '0', '-1', '65536', '1.5', 'null', 'true', '{}', 'tcp', 'IPv5', ...PROTOTYPE_NAMES),
  fc.tuple(fc.oneof(cidr, endpoint, ip, wireGuardKey), fc.nat(), shortText).map(([valid, at, text]) => {
    const i = at % (valid.length + 1);
    return valid.slice(0, i) + text + valid.slice(i + 1);
  }),
  shortText,
);

const jsonKey = fc.oneof(shortText, fc.constantFrom(...PROTOTYPE_NAMES, ...FIELD_NAMES));
const jsonLeaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  nearMiss,
);

/** Objects are built with Object.fromEntries so `__proto__` is an own key, as JSON.parse makes it. */
const tree = fc.letrec<{ value: unknown; list: unknown[]; record: Record<string, unknown> }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: 3 }, jsonLeaf, tie('list'), tie('record')),
  list: fc.array(tie('value'), { maxLength: 3 }),
  record: fc.array(fc.tuple(jsonKey, tie('value')), { maxLength: 4 }).map((entries) => Object.fromEntries(entries)),
}));
export const json: fc.Arbitrary<unknown> = tree.value;
const jsonRecord: fc.Arbitrary<Record<string, unknown>> = tree.record;

/** A JSON object shaped like a Kubernetes object, so junk reaches past the decoders' first checks. */
export const kubeShaped: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    apiVersion: json,
    kind: json,
    metadata: fc.oneof(
      json,
      fc.record(
        { name: fc.oneof(objectName, json), namespace: fc.oneof(namespace, json), labels: json, annotations: json },
        { requiredKeys: [] },
      ),
    ),
    spec: fc.oneof(json, jsonRecord),
    status: json,
    addressType: json,
    ports: json,
    endpoints: json,
  },
  { requiredKeys: [] },
);

// Values of the wrong JSON type. A list holding a valid value catches decoders that call String() on
// what should have been a string, and a record with its own `toString` catches them crashing on it.
const valueInAList = fc.oneof(cidr, ip, wireGuardKey, endpoint, fc.integer({ min: 1, max: 65535 })).map((v) => [v]);
const hostileRecord = fc.oneof(jsonRecord, fc.constant(Object.fromEntries([['toString', 1]])));
const fraction = fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d));
const WRONG_TYPE = {
  null: fc.constant(null),
  boolean: fc.boolean(),
  integer: fc.integer(),
  fraction,
  string: nearMiss,
  list: fc.oneof(valueInAList, fc.array(json, { maxLength: 2 })),
  record: hostileRecord,
} as const;
type JsonType = keyof typeof WRONG_TYPE;

/** JSON values of any type but the given ones. */
export function otherThan(...types: JsonType[]): fc.Arbitrary<unknown> {
  return fc.oneof(...(Object.keys(WRONG_TYPE) as JsonType[]).filter((t) => !types.includes(t)).map((t) => WRONG_TYPE[t]));
}

// Strings that no parser may accept as the format named. Each is invalid by construction: an
// out-of-range number, a character the format never holds, a missing part.
const withPercent = (arb: fc.Arbitrary<string>): fc.Arbitrary<string> => arb.map((v) => `${v}%`);
export const notAnIp = fc.oneof(
  fc.constantFrom('256.0.0.1', '1.2.3', '1.2.3.4/32', 'fe80::1%eth0', '::g', 'None', ...PROTOTYPE_NAMES),
  withPercent(ip),
  ipv6.map((a) => `[${a}]`),
);
export const notACidr = fc.oneof(
  fc.constantFrom('1.2.3.4', '1.2.3.4/', '/24', '10.0.0.0/-1', '::/129', '', ...PROTOTYPE_NAMES),
  fc.tuple(ipv4, fc.integer({ min: 33, max: 999 })).map(([a, bits]) => `${a}/${bits}`),
  fc.tuple(ipv6, fc.integer({ min: 129, max: 999 })).map(([a, bits]) => `${a}/${bits}`),
  withPercent(cidr),
);
export const notAKey = fc.oneof(
  fc.constantFrom('', 'not-a-key', ...PROTOTYPE_NAMES),
  fc.uint8Array({ minLength: 0, maxLength: 40 }).filter((b) => b.length !== 32).map((b) => Buffer.from(b).toString('base64')),
  // The 43rd character of a 32-byte key carries two zero bits; `B` sets one: not canonical.
  wireGuardKey.map((k) => `${k.slice(0, 42)}B=`),
  wireGuardKey.map((k) => k.slice(0, 43)),
);
export const notAnEndpoint = fc.oneof(
  fc.constantFrom('', 'host', '1.2.3.4', '1.2.3.4:0', '1.2.3.4:65536', '[1.2.3.4]:80', '::1:80', 'a b:80', '-a:80', ...PROTOTYPE_NAMES),
  withPercent(endpoint),
);
/** Not a whole number in [min, max]; strings of valid numbers included (a quoted YAML number). */
export function notAnIntegerIn(min: number, max: number): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.integer({ max: min - 1 }),
    fc.integer({ min: max + 1 }),
    fraction,
    fc.integer({ min, max }).map(String),
    otherThan('integer', 'fraction', 'null'),
  );
}
/** A string that is not one of `choices` (nor '', which reads as the default), or another type. */
export function notOneOf(choices: readonly string[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    nearMiss.filter((s) => s !== '' && !choices.includes(s)),
    fc.constantFrom(...choices).map((c) => c.toLowerCase() + 'x'),
    otherThan('string', 'null'),
  );
}

// ---- paths into a JSON tree ----

type Path = readonly (string | number)[];

/** Removes the field instead of replacing it. */
export const REMOVE: unique symbol = Symbol('remove');

/** Every path in a JSON tree, the root excluded, parents before children. */
function pathsOf(value: unknown, at: Path = []): Path[] {
  const children: [string | number, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : typeof value === 'object' && value !== null
      ? Object.entries(value)
      : [];
  return children.flatMap(([k, v]) => [[...at, k], ...pathsOf(v, [...at, k])]);
}

/** A copy of `value` with the field at `path` set (or removed); own keys such as `__proto__` survive. */
export function withValueAt(value: unknown, path: Path, replacement: unknown): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return replacement;
  if (Array.isArray(value)) {
    const copy = [...value];
    const i = head as number;
    if (rest.length === 0 && replacement === REMOVE) copy.splice(i, 1);
    else copy[i] = withValueAt(copy[i], rest, replacement);
    return copy;
  }
  const entries = Object.entries(typeof value === 'object' && value !== null ? value : {});
  const next = entries.flatMap(([k, v]): [string, unknown][] => {
    if (k !== head) return [[k, v]];
    if (rest.length === 0 && replacement === REMOVE) return [];
    return [[k, withValueAt(v, rest, replacement)]];
  });
  // A field the object lacks is added (replacing a field nobody set is setting it).
  if (replacement !== REMOVE && !entries.some(([k]) => k === head)) next.push([String(head), withValueAt(undefined, rest, replacement)]);
  return Object.fromEntries(next);
}

/** `spec.ports[0].port`, `metadata.labels[kubernetes.io/service-name]`: the decoders' notation. */
function formatField(path: Path): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z0-9_]+$/.test(p) ? `${i === 0 ? '' : '.'}${p}` : `[${p}]`))
    .join('');
}

/** `spec.ports.*.port`: the path with list indices left out. */
function patternOf(path: Path): string {
  return path.map((p) => (typeof p === 'number' ? '*' : p)).join('.');
}

/** A valid object with one field, anywhere in it, replaced by arbitrary junk or removed. */
export function withOneFieldMutated<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.tuple(valid, fc.nat(), fc.oneof(fc.constant(REMOVE), json, nearMiss)).map(([object, pick, junk]) => {
    const paths = pathsOf(object);
    const path = paths[pick % Math.max(paths.length, 1)];
    return path === undefined ? object : withValueAt(object, path, junk);
  });
}

/** How one field of a kind goes bad: the values certainly invalid there. */
export interface FieldJunk {
  /** The field's path with `*` for list indices: `spec.ports.*.port`. */
  readonly pattern: string;
  readonly junk: fc.Arbitrary<unknown>;
  /** Other fields a decoder may name for it (a parent, or a field checked against it). */
  readonly alsoReportedAs?: (path: Path) => string[];
}

export interface BadField {
  readonly object: unknown;
  /** The field made bad, in the decoders' notation. */
  readonly field: string;
  /** What a problem may name: the field, one inside it, or one of these. */
  readonly accepted: readonly string[];
}

/**
 * A valid object with one field from `table` (one it has; the table must list one every object
 * has) replaced by a value certainly invalid there.
 */
export function withOneBadField<T>(valid: fc.Arbitrary<T>, table: readonly FieldJunk[]): fc.Arbitrary<BadField> {
  return fc.tuple(valid, fc.nat(), fc.tuple(...table.map((t) => t.junk))).map(([object, pick, junks]) => {
    const candidates = pathsOf(object).flatMap((path) => {
      const i = table.findIndex((t) => t.pattern === patternOf(path));
      return i < 0 ? [] : [{ path, entry: table[i] as FieldJunk, junk: junks[i] }];
    });
    const chosen = candidates[pick % candidates.length];
    if (chosen === undefined) throw new Error('no field of the object is in the table');
    const field = formatField(chosen.path);
    return {
      object: withValueAt(object, chosen.path, chosen.junk),
      field,
      accepted: [field, ...(chosen.entry.alsoReportedAs?.(chosen.path) ?? [])],
    };
  });
}

/** Whether a problem's field names `bad` (the field itself, one inside it, or an accepted other). */
export function namesField(reported: string, bad: BadField): boolean {
  return bad.accepted.includes(reported) || reported.startsWith(`${bad.field}.`) || reported.startsWith(`${bad.field}[`);
}
