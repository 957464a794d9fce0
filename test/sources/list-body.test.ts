import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readListBody } from '../../src/sources/kubernetes/list-body.js';
import { fc } from '../properties/setup.js';

/** What JSON.parse makes of the body, in readListBody's shape; undefined when it throws. */
function parsed(body: string): { fields: Map<string, unknown>; items: unknown[] | undefined } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const { items, ...rest } = value as Record<string, unknown>;
  return {
    fields: new Map(Object.entries(rest).concat('items' in value && !Array.isArray(items) ? [['items', items]] : [])),
    items: Array.isArray(items) ? items : undefined,
  };
}

function read(body: string): { fields: Map<string, unknown>; items: unknown[] | undefined } | undefined {
  const out = readListBody(Buffer.from(body), (item) => item);
  return out && { fields: new Map(out.fields), items: out.items };
}

test('reads each item and the other fields as JSON.parse reads the body', () => {
  const bodies = [
    '{"apiVersion":"v1","kind":"ServiceList","metadata":{"resourceVersion":"12"},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}',
    // items first, whitespace everywhere JSON allows it, an empty list
    ' \r\n{ "items" : [ ] ,\t"metadata" : { "resourceVersion" : "1" } }\n',
    // brackets, quotes and escapes inside strings; multi-byte UTF-8; scalars of every kind
    '{"items":[{"a":"}]{[\\"\\\\","b":"\u00e9\u4e2d\ud83d\ude00","c":[1,-2.5e3,true,false,null,{}]},"x",3,null],"n":-0.5,"t":true,"z":null,"s":"]"}',
    '{}',
    '{"items":null,"metadata":{}}',
  ];
  for (const body of bodies) {
    const got = read(body);
    assert.ok(got, body);
    assert.deepEqual(got, parsed(body), body);
  }
});

test('hands each item to take as it is read, in order', () => {
  const seen: unknown[] = [];
  const out = readListBody(Buffer.from('{"items":[{"n":1},{"n":2},{"n":3}]}'), (item) => {
    seen.push(item);
    return seen.length;
  });
  assert.deepEqual(seen, [{ n: 1 }, { n: 2 }, { n: 3 }]);
  assert.deepEqual(out?.items, [1, 2, 3]);
});

test('gives up on what it cannot follow, so that JSON.parse of the whole body says what is wrong', () => {
  for (const body of [
    '',
    '[]',
    '\ufeff{"items":[]}', // a byte-order mark: JSON.parse refuses it too
    '{"items":[{"a":1}',
    '{"items":[{"a":1}}]}',
    '{"items":[{"a":1},]}',
    '{"items":[1 2]}',
    '{"items":[],}',
    '{"items":[]} x',
    '{"a":tru}',
    '{"a":"unterminated}',
    '{a:1}',
    // a key given twice: JSON.parse keeps the last, which the item-by-item read has handed on already
    '{"items":[1],"items":[2]}',
    '{"metadata":{},"metadata":{"resourceVersion":"2"},"items":[]}',
  ]) {
    assert.equal(read(body), undefined, body);
  }
});

test('never reads a body otherwise than JSON.parse does (generated bodies, cut and spliced)', () => {
  const list = fc.record({
    metadata: fc.record({ resourceVersion: fc.string() }),
    items: fc.array(fc.jsonValue(), { maxLength: 5 }),
    extra: fc.jsonValue(),
  });
  fc.assert(
    fc.property(list, fc.nat(), fc.nat(), fc.string({ maxLength: 3 }), (value, cutAt, spliceAt, splice) => {
      const whole = JSON.stringify(value);
      assert.deepEqual(read(whole), parsed(whole));
      // A damaged body: read as JSON.parse reads it, or not at all (then JSON.parse of it is the answer).
      const cut = whole.slice(0, cutAt % (whole.length + 1));
      const spliced = `${whole.slice(0, spliceAt % whole.length)}${splice}${whole.slice(spliceAt % whole.length)}`;
      for (const body of [cut, spliced]) {
        const got = read(body);
        if (got !== undefined) assert.deepEqual(got, parsed(body), body);
        if (parsed(body) === undefined) assert.equal(got, undefined, body);
      }
    }),
    { numRuns: 2_000 },
  );
});
