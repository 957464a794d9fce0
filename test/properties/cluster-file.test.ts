// Properties of the cluster-file parser (src/sources/file/cluster-file.ts) and of the file source's
// decoding path: text → parseClusterFile → decodeMeshInput / decodeServiceInput, and FileSource
// keeping the last good state when an edit breaks the file.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { createLogger } from '../../src/observability/logger.js';
import { ClusterFileError, ClusterFileReader, parseClusterFile } from '../../src/sources/file/cluster-file.js';
import { FileSource } from '../../src/sources/file/file-source.js';
import { decodeMeshInput } from '../../src/sources/mesh-input.js';
import { decodeServiceInput } from '../../src/sources/service-input.js';
import { assertMeshInputAccounted, assertServiceInputAccounted } from './accounting.js';
import { kubeShaped, withOneFieldMutated } from './junk.js';
import { NODE_DECODE_OPTIONS as OPTS, endpointSliceObject, nodeObject, peerObject, serviceObject } from './objects.js';
import { fc } from './setup.js';
import { freeText, objectName } from './values.js';

const KIND_OF = {
  'v1/Node': 'Node',
  'v1/Service': 'Service',
  'discovery.k8s.io/v1/EndpointSlice': 'EndpointSlice',
  'wirelane.io/v1alpha1/Peer': 'Peer',
  'kilo.squat.ai/v1alpha1/Peer': 'Peer',
} as const;
type TypeMeta = keyof typeof KIND_OF;

/** Any object of a supported kind with a name: junk inside, but the file reads it. */
const junkOfAKind = fc
  .tuple(fc.constantFrom(...(Object.keys(KIND_OF) as TypeMeta[])), objectName, kubeShaped)
  .map(([typeMeta, name, junk]) => {
    const slash = typeMeta.lastIndexOf('/');
    const metadata = typeof junk['metadata'] === 'object' && junk['metadata'] !== null && !Array.isArray(junk['metadata']) ? junk['metadata'] : {};
    return { ...junk, apiVersion: typeMeta.slice(0, slash), kind: typeMeta.slice(slash + 1), metadata: { ...metadata, name } };
  });

/** Objects a file holds and reads, decodable or not: valid ones, mutated ones that kept their kind and name. */
const readableObject: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  nodeObject,
  peerObject,
  serviceObject,
  endpointSliceObject,
  junkOfAKind,
  fc.oneof(nodeObject, peerObject, serviceObject, endpointSliceObject).chain((o) =>
    withOneFieldMutated(fc.constant(o.spec ?? {})).map((spec) => ({ ...o, spec })),
  ),
);

/** A document: one object, a `kind: List` of them, or empty (a stray `---`). */
type Document = { readonly object: Record<string, unknown> } | { readonly list: Record<string, unknown>[] } | null;
const document: fc.Arbitrary<Document> = fc.oneof(
  { weight: 4, arbitrary: readableObject.map((object) => ({ object })) },
  { weight: 1, arbitrary: fc.array(readableObject, { maxLength: 2 }).map((list) => ({ list })) },
  { weight: 1, arbitrary: fc.constant(null) },
);

function render(documents: readonly Document[]): string {
  return documents
    .map((d) => `---\n${d === null ? '' : stringify('object' in d ? d.object : { apiVersion: 'v1', kind: 'List', items: d.list })}`)
    .join('');
}

const stream = fc.array(document, { maxLength: 3 });

// Text the parser must survive: YAML-ish token soup (anchors, aliases, tags, directives, prototype
// names), streams with random edits, alias bombs and self-referencing aliases.
const TOKENS = [
  'apiVersion: v1\n', 'apiVersion: wirelane.io/v1alpha1\n', 'kind: Node\n', 'kind: Peer\n', 'kind: List\n', 'kind: Service\n',
  'items:\n', '- ', '  ', '---\n', '...\n', 'metadata:\n', 'metadata: {name: a}\n', 'name: b\n', 'spec: ', '&a ', '*a', '&b ',
  '*b', '!!binary ', '!!str ', '!!map ', '!!set ', '!!timestamp ', '%YAML 1.1\n', '%TAG ! tag:x,2000:\n', '{', '}', '[', ']',
  ', ', ': ', '"', "'", '\t', '\n', '#', '|\n', '>\n', 'toString: 1\n', '__proto__: {a: 1}\n', 'kind: {toString: 1}\n',
  '<<: *a\n', '1e999', '.nan', '-.inf', '0x1F', '2001-12-14', 'y', 'null', '~',
];
const tokenSoup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 30 }).map((t) => t.join(''));
const editedStream = fc
  .tuple(stream.map(render), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 8 }), fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 3 }))), { minLength: 1, maxLength: 3 }))
  .map(([text, edits]) =>
    edits.reduce((t, [at, cut, insert]) => {
      const i = at % (t.length + 1);
      return t.slice(0, i) + insert + t.slice(i + cut);
    }, text),
  );
const aliasBomb = fc.tuple(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 5 })).map(([width, depth]) => {
  const levels = [`l0: &l0 [${Array<string>(width).fill('x').join(', ')}]`];
  for (let d = 1; d <= depth; d++) levels.push(`l${d}: &l${d} [${Array<string>(width).fill(`*l${d - 1}`).join(', ')}]`);
  return `apiVersion: v1\nkind: Node\nmetadata: {name: n}\n${levels.join('\n')}\n`;
});
// A field that contains itself: kubectl never writes anchors, but YAML lets a file say this.
const selfReference = fc
  .tuple(readableObject, fc.constantFrom('spec', 'status', 'ports', 'endpoints', 'metadata'))
  .map(([object, field]) => {
    const rest = Object.fromEntries(Object.entries(object).filter(([k]) => k !== field));
    const cycle = field === 'metadata' ? '{name: n, labels: *c}' : '{self: *c, ports: [*c], allowedIPs: [*c], externalIPs: *c, podCIDRs: [*c]}';
    return `${stringify(rest)}${field}: &c ${cycle}\n`;
  });
const anyText = fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), tokenSoup, editedStream, aliasBomb, selfReference);

/** A tree of JSON values only: what both sources promise the decoders (no cycles, dates or bytes). */
function assertPlainJson(value: unknown, at = 'object', above: readonly unknown[] = []): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') return assert.ok(Number.isFinite(value), `${at}: ${value}`);
  assert.ok(Array.isArray(value) || Object.getPrototypeOf(value) === Object.prototype, `${at}: not JSON`);
  assert.ok(!above.includes(value), `${at}: contains itself`);
  for (const [k, v] of Object.entries(value as object)) assertPlainJson(v, `${at}.${k}`, [...above, value]);
}

/** Decodes what a parse returned as the agent would, checking every object is accounted for. */
function assertDecodesAccounted(objects: ReturnType<typeof parseClusterFile>): void {
  assertMeshInputAccounted(objects, decodeMeshInput(objects, OPTS));
  assertServiceInputAccounted(objects, decodeServiceInput(objects));
}

test('any text either parses or throws ClusterFileError, and what parses decodes without throwing', () => {
  fc.assert(
    fc.property(anyText, (text) => {
      let objects;
      try {
        objects = parseClusterFile(text, 'f');
      } catch (err) {
        if (err instanceof ClusterFileError) return;
        throw err;
      }
      for (const o of objects) {
        assert.ok(Object.values(KIND_OF).includes(o.kind));
        assert.match(o.where, /^document \d+(, item \d+)? \((Node|Peer|Service|EndpointSlice) ".+"\)$/s);
        assertPlainJson(o.object);
      }
      assertDecodesAccounted(objects);
    }),
  );
});

test('a stream of objects parses back to those objects, in order, each with its place, and each is accounted for', () => {
  fc.assert(
    fc.property(stream, (documents) => {
      const objects = parseClusterFile(render(documents), 'f');
      const expected = documents.flatMap((d, i) => {
        if (d === null) return [];
        const items = 'object' in d ? [d.object] : d.list;
        return items.map((object, j) => {
          const kind = KIND_OF[`${String(object['apiVersion'])}/${String(object['kind'])}` as TypeMeta];
          const name = (object['metadata'] as { name: string }).name;
          const place = 'object' in d ? `document ${i + 1}` : `document ${i + 1}, item ${j + 1}`;
          return { kind, object: JSON.parse(JSON.stringify(object)) as unknown, where: `${place} (${kind} "${name}")` };
        });
      });
      // The parser builds each place only when asked (a getter): compared as read.
      assert.deepEqual(objects.map(({ kind, object, where }) => ({ kind, object, where })), expected);
      assertDecodesAccounted(objects);
    }),
  );
});

/** The stream as JSON documents (as `kubectl get -o json` and the bench write them), with the separators YAML allows. */
const jsonStream = fc
  .tuple(stream, fc.constantFrom('\n', '\r\n'), fc.constantFrom('', ' \t'))
  .map(([documents, eol, blanks]) =>
    documents.map((d) => `---${blanks}${eol}${d === null ? '' : JSON.stringify('object' in d ? d.object : { apiVersion: 'v1', kind: 'List', items: d.list })}${eol}`).join(''),
  );

/** What a parse gives, or the message it throws. */
function outcome(parse: () => ReturnType<typeof parseClusterFile>): unknown {
  try {
    return parse().map(({ kind, object, where }) => ({ kind, object, where }));
  } catch (err) {
    if (!(err instanceof ClusterFileError)) throw err;
    return err.message;
  }
}

test('a file read a chunk at a time (the file source) reads as it does whole, wherever the chunks end', () => {
  fc.assert(
    fc.property(fc.oneof(jsonStream, anyText), fc.array(fc.nat(), { maxLength: 6 }), (text, cuts) => {
      const bytes = Buffer.from(text);
      const ends = [...new Set(cuts.map((c) => c % (bytes.length + 1))), bytes.length].sort((a, b) => a - b);
      const chunked = outcome(() => {
        // As FileSource: the chunks, then the whole text where a document is not JSON.
        const reader = new ClusterFileReader();
        const read = reader.begin('f');
        ends.reduce((from, end) => (read.push(bytes.subarray(from, end)), end), 0);
        return read.end() ?? reader.parse(bytes, 'f');
      });
      assert.deepEqual(chunked, outcome(() => parseClusterFile(bytes, 'f')));
    }),
  );
});

// Small objects, so a failure shrinks fast: a few named Nodes tell one good state from another.
const smallGoodText = fc
  .array(fc.tuple(objectName, freeText), { maxLength: 3 })
  .map((nodes) => render(nodes.map(([name, location]) => ({ object: { apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: { 'wirelane.io/location': location } } } }))));
const smallAnyText = fc.oneof(tokenSoup, aliasBomb, fc.string({ unit: 'binary', maxLength: 20 }));

// Through the file system, fewer runs: each draws a sequence of edits, each one a write and a read.
test('the file source keeps the last good objects while an edit does not parse', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-props-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'cluster.yaml');
  const edit = fc.oneof(smallGoodText, smallAnyText, fc.constant(undefined));
  await fc.assert(
    fc.asyncProperty(smallGoodText, fc.array(edit, { minLength: 1, maxLength: 5 }), async (first, edits) => {
      let invalid = 0;
      const source = new FileSource(path, createLogger('silent'), () => invalid++);
      await writeFile(path, first);
      await source.reload(true);
      let good = parseClusterFile(first, path);
      let last = first;
      let wantInvalid = 0;
      for (const edit of edits) {
        // undefined writes the same text again. The file holds UTF-8: a lone surrogate reads back as U+FFFD.
        const text = edit === undefined ? last : Buffer.from(edit).toString();
        await writeFile(path, text);
        const changed = await source.reload(false);
        let parsed;
        try {
          parsed = parseClusterFile(text, path);
        } catch (err) {
          if (!(err instanceof ClusterFileError)) throw err;
        }
        if (text !== last && parsed === undefined) wantInvalid++;
        assert.equal(changed, text !== last && parsed !== undefined);
        if (text !== last && parsed !== undefined) good = parsed;
        last = text;
        assert.deepEqual(source.snapshot(), good);
        assert.equal(invalid, wantInvalid);
      }
    }),
    { numRuns: 1000 },
  );
});
