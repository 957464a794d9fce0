// The annotations directory's files (sources/file/annotation-overlay.ts) are written by other agents:
// whatever a file holds, reading it gives only shared annotations or one OverlayError, and laying
// them over a Node never changes what the operator wrote outside them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OverlayError, SHARED_ANNOTATIONS, formatOverlay, overlaid, parseOverlay } from '../../src/sources/file/annotation-overlay.js';
import { fc } from './setup.js';

const sharedName = fc.constantFrom(...SHARED_ANNOTATIONS);
const anyName = fc.oneof(sharedName, fc.string(), fc.constantFrom('wirelane.io/key', 'wirelane.io/endpoint', '__proto__', 'constructor', 'toString'));
const annotationsValue = fc.oneof(fc.dictionary(anyName, fc.oneof(fc.string(), fc.jsonValue())), fc.jsonValue());
const fileText = fc.oneof(
  fc.string(),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  annotationsValue.map((annotations) => JSON.stringify({ annotations })),
);

test('any text reads as shared annotations only, or as one OverlayError naming the file', () => {
  fc.assert(
    fc.property(fileText, (text) => {
      let read;
      try {
        read = parseOverlay(text, 'd/x.json');
      } catch (err) {
        assert.ok(err instanceof OverlayError, String(err));
        assert.ok(err.message.startsWith('d/x.json: '), err.message);
        return;
      }
      for (const [name, value] of Object.entries(read.annotations)) {
        assert.ok(SHARED_ANNOTATIONS.includes(name), name);
        assert.equal(typeof value, 'string');
      }
      assert.ok(read.refused.every((name) => !SHARED_ANNOTATIONS.includes(name)));
    }),
  );
});

test('shared annotations written are read back unchanged, and laid over a Node change only them', () => {
  const operator = fc.dictionary(anyName, fc.string());
  fc.assert(
    fc.property(fc.dictionary(sharedName, fc.string()), operator, (annotations, own) => {
      assert.deepEqual(parseOverlay(formatOverlay(annotations), 'x.json'), { annotations: { ...annotations }, refused: [] });
      const node = { kind: 'Node', metadata: { name: 'x', annotations: own } };
      const out = overlaid(node, annotations).metadata?.annotations ?? {};
      for (const name of new Set([...Object.keys(own), ...Object.keys(annotations)])) {
        assert.equal(out[name], Object.hasOwn(annotations, name) ? annotations[name] : own[name], name);
      }
    }),
  );
});
