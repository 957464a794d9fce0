// Properties of the annotation codec and Node decoding (src/sources/node.ts, annotations.ts) and of
// the mesh loop over Nodes (decodeMeshInput).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ANNOTATIONS, type AnnotationSuffix, KILO_PREFIX, PREFIX } from '../../src/sources/annotations.js';
import { decodeMeshInput } from '../../src/sources/mesh-input.js';
import { decodeNode } from '../../src/sources/node.js';
import type { KubeObject } from '../../src/sources/objects.js';
import type { SourceObject } from '../../src/sources/source.js';
import { assertMeshInputAccounted } from './accounting.js';
import {
  PROTOTYPE_NAMES,
  REMOVE,
  kubeShaped,
  notACidr,
  notAKey,
  notAnEndpoint,
  notOneOf,
  otherThan,
  withOneFieldMutated,
  withValueAt,
} from './junk.js';
import { NODE_DECODE_OPTIONS as OPTS, nodeObject } from './objects.js';
import { fc } from './setup.js';
import { cidr, cidrV4, cidrV6, endpoint, wireGuardKey } from './values.js';
import { assertWellFormedNode } from './well-formed.js';

/** Not one CIDR per family: junk alone, junk beside a good CIDR, two of one family, three. */
const notCidrPerFamily = fc.oneof(
  notACidr,
  fc.tuple(cidr, notACidr).map(([good, bad]) => `${good},${bad}`),
  fc.tuple(cidrV4, cidrV4).map(([a, b]) => `${a},${b}`),
  fc.tuple(cidrV6, cidrV6).map(([a, b]) => `${a},${b}`),
  fc.tuple(cidrV4, cidrV6, cidr).map((three) => three.join(',')),
);

/** Not a string: what an unquoted number or a nested map in a cluster file's annotations becomes. */
const notAString = otherThan('string');

/** Values certainly invalid for each annotation. Any string is a location, and any value sets leader. */
const JUNK: Readonly<Record<AnnotationSuffix, fc.Arbitrary<unknown>>> = {
  [ANNOTATIONS.location]: notAString,
  [ANNOTATIONS.leader]: notAString,
  [ANNOTATIONS.tunnelsBroken]: notAString,
  // Any string is a value (a wrong one only announces nothing): junk is what is not one.
  [ANNOTATIONS.heartbeat]: notAString,
  [ANNOTATIONS.forceEndpoint]: fc.oneof(notAnEndpoint, notAString),
  [ANNOTATIONS.endpoint]: fc.oneof(notAnEndpoint, notAString),
  // '' and '-' mean "no internal IP".
  [ANNOTATIONS.forceInternalIP]: fc.oneof(
    notCidrPerFamily.filter((v) => v !== ''),
    notAString,
  ),
  [ANNOTATIONS.internalIP]: fc.oneof(notCidrPerFamily, notAString),
  [ANNOTATIONS.wireguardIP]: fc.oneof(notCidrPerFamily, notAString),
  // One CIDR: a list (even one per family) is no value here.
  [ANNOTATIONS.otherInternalIP]: fc.oneof(notCidrPerFamily, fc.tuple(cidrV4, cidrV6).map(([a, b]) => `${a},${b}`), notAString),
  [ANNOTATIONS.otherWireguardIP]: fc.oneof(notCidrPerFamily, fc.tuple(cidrV4, cidrV6).map(([a, b]) => `${a},${b}`), notAString),
  [ANNOTATIONS.persistentKeepalive]: fc.oneof(
    fc.constantFrom('', '-1', '1.5', ' 1', '0x10', '1e3', ...PROTOTYPE_NAMES),
    fc.integer({ min: 65536 }).map(String),
    notAString,
  ),
  // Bad entries of the list cost only themselves (see below); the whole value is junk only when it
  // is not a string at all.
  [ANNOTATIONS.allowedLocationIPs]: notAString,
  [ANNOTATIONS.key]: fc.oneof(notAKey, notAString),
  [ANNOTATIONS.lastSeen]: fc.oneof(
    fc.constantFrom('', '-1', '1.5', ' 1', ...PROTOTYPE_NAMES),
    fc.bigInt({ min: 10n ** 12n }).map(String),
    notAString,
  ),
  [ANNOTATIONS.discoveredEndpoints]: fc.oneof(
    fc.constantFrom('', '{', '[]', '1', 'null', '"x"', '{"a": "1.2.3.4:1"}'),
    fc.tuple(notAKey, endpoint).map(([k, e]) => JSON.stringify(Object.fromEntries([[k, e]]))),
    fc.tuple(wireGuardKey, fc.oneof(notAnEndpoint, otherThan('string', 'record'))).map(([k, e]) => JSON.stringify({ [k]: e })),
    notAString,
  ),
  [ANNOTATIONS.granularity]: fc.oneof(notOneOf(['location', 'data-center', 'full', 'node', 'cross']), fc.constant(null)),
};

function withAnnotation(object: KubeObject, name: string, value: unknown): KubeObject {
  return withValueAt(object, ['metadata', 'annotations', name], value) as KubeObject;
}

interface JunkCase {
  /** The node with junk in it. */
  readonly bad: KubeObject;
  /** The same node without the junk. */
  readonly reference: KubeObject;
  /** The field the one problem must name; undefined when the junk is never read (see below). */
  readonly field: string | undefined;
}

const prefix = fc.constantFrom(PREFIX, KILO_PREFIX);

// The order the decoder reads an annotation's spellings in: ours, then Kilo's, and the forced value
// before the discovered one. A spelling is read only while none before it is there.
const READ_ORDER: readonly (readonly AnnotationSuffix[])[] = [
  [ANNOTATIONS.forceEndpoint, ANNOTATIONS.endpoint],
  [ANNOTATIONS.forceInternalIP, ANNOTATIONS.internalIP],
];

function readOrderOf(suffix: AnnotationSuffix): string[] {
  const chain = READ_ORDER.find((c) => c.includes(suffix)) ?? [suffix];
  return chain.flatMap((s) => [PREFIX + s, KILO_PREFIX + s]);
}

/**
 * The field a problem about junk in annotation `name` names. Junk in a spelling that is not read
 * (one before it is there, and good: the node is valid) is not reported, unless it is not even a
 * string, which the annotation map itself reports.
 */
function reportedField(node: KubeObject, name: string, suffix: AnnotationSuffix, junk: unknown): string | undefined {
  const annotations = node.metadata?.annotations ?? {};
  const order = readOrderOf(suffix);
  const shadowed = typeof junk === 'string' && order.slice(0, order.indexOf(name)).some((n) => n in annotations);
  return shadowed ? undefined : `annotation ${name}`;
}

// One annotation, under either prefix, set to junk; without it, the node is the same.
const junkAnnotation: fc.Arbitrary<JunkCase> = fc
  .tuple(nodeObject, prefix, fc.oneof(...Object.values(ANNOTATIONS).map((s) => fc.tuple(fc.constant(s), JUNK[s]))))
  .map(([node, p, [suffix, junk]]) => ({
    bad: withAnnotation(node, p + suffix, junk),
    reference: withAnnotation(node, p + suffix, REMOVE),
    field: reportedField(node, p + suffix, suffix, junk),
  }));

// One bad entry among good ones in allowed-location-ips: the good entries are kept.
const junkListEntry: fc.Arbitrary<JunkCase> = fc
  .tuple(nodeObject, prefix, fc.array(cidr, { maxLength: 3 }), notACidr.filter((v) => !v.includes(',') && v.trim() !== ''), fc.nat())
  .map(([node, p, good, junk, at]) => {
    const name = p + ANNOTATIONS.allowedLocationIPs;
    const entries = [...good];
    entries.splice(at % (good.length + 1), 0, junk);
    const bad = entries.join(',');
    return { bad: withAnnotation(node, name, bad), reference: withAnnotation(node, name, good.join(',')), field: reportedField(node, name, ANNOTATIONS.allowedLocationIPs, bad) };
  });

// The annotations as a whole not a map: the node is the same as one without annotations.
const junkAnnotationMap: fc.Arbitrary<JunkCase> = fc
  .tuple(nodeObject, otherThan('record', 'null'))
  .map(([node, junk]) => ({
    bad: withValueAt(node, ['metadata', 'annotations'], junk) as KubeObject,
    reference: withValueAt(node, ['metadata', 'annotations'], REMOVE) as KubeObject,
    field: 'metadata.annotations',
  }));

test('a Node built from valid values decodes without a problem', () => {
  fc.assert(
    fc.property(nodeObject, (object) => {
      const { node, problems } = decodeNode(object as KubeObject, OPTS);
      assert.deepEqual(problems, []);
      assertWellFormedNode(node);
      const annotations = (object as { metadata: { annotations: Record<string, string> } }).metadata.annotations;
      assert.equal(node.publicKey, annotations[PREFIX + ANNOTATIONS.key] ?? annotations[KILO_PREFIX + ANNOTATIONS.key]);
    }),
  );
});

test('a junk annotation costs only itself: the same node as without it, and one problem naming it', () => {
  fc.assert(
    fc.property(fc.oneof(junkAnnotation, junkListEntry, junkAnnotationMap), ({ bad, reference, field }) => {
      const expected = decodeNode(reference, OPTS);
      assert.deepEqual(expected.problems, [], 'the reference node is valid');
      const got = decodeNode(bad, OPTS);
      assert.deepEqual(got.node, expected.node);
      assert.deepEqual(
        got.problems.map((p) => [p.kind, p.object, p.field]),
        field === undefined ? [] : [['Node', expected.node.name, field]],
      );
    }),
  );
});

test('the mesh loop accounts for every Node, valid, with one field mutated, or arbitrary JSON', () => {
  const anyNode = fc.oneof(nodeObject, withOneFieldMutated(nodeObject), kubeShaped);
  fc.assert(
    fc.property(fc.array(anyNode, { maxLength: 6 }), (objects) => {
      const sources: SourceObject[] = objects.map((object, i) => ({ kind: 'Node', object: object as KubeObject, where: `document ${i + 1}` }));
      assertMeshInputAccounted(sources, decodeMeshInput(sources, OPTS));
    }),
  );
});
