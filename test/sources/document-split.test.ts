import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DocumentSplitter } from '../../src/sources/file/document-split.js';

/** The documents of `chunks` pushed one after another into `splitter`, as text. */
function split(splitter: DocumentSplitter, chunks: readonly Buffer[]): string[] {
  const out: string[] = [];
  const collect = (bytes: Buffer, start: number, end: number): void => void out.push(bytes.toString('utf8', start, end));
  for (const chunk of chunks) splitter.push(chunk, collect);
  splitter.end(collect);
  return out;
}

const STREAMS = [
  '',
  '---',
  '---\n',
  '{"a":1}',
  '---\n{"a":1}\n---\n{"b":2}\n',
  '{"a":1}\r\n--- \t\r\n{"b":2}\r\n---\r\n\r\n---\r\n{"c":3}',
  // Not separators: dashes inside a line, four dashes, text after the dashes.
  'x: ---\n----\n--- x\n  ---\n---',
  '\ufeff{"a":1}\n---\n{"b":"---"}\n---   ',
  '---\n---\n---\n',
];

test('a stream splits where the text pattern /^---[ \\t]*$/m splits it, wherever its chunks end', () => {
  const splitter = new DocumentSplitter();
  for (const text of STREAMS) {
    const want = text.split(/^---[ \t]*$/m);
    const bytes = Buffer.from(text);
    assert.deepEqual(split(splitter, [bytes]), want, JSON.stringify(text));
    // Every cut in two, and a byte at a time: the same documents.
    for (let cut = 0; cut <= bytes.length; cut++) {
      assert.deepEqual(split(splitter, [bytes.subarray(0, cut), bytes.subarray(cut)]), want, `${JSON.stringify(text)} cut at ${cut}`);
    }
    assert.deepEqual(split(splitter, [...bytes].map((b) => Buffer.from([b]))), want, `${JSON.stringify(text)} a byte at a time`);
    assert.equal(splitter.lineSeparator, false);
  }
});

test('a line separator (U+2028, U+2029) is noticed even split between two chunks', () => {
  const splitter = new DocumentSplitter();
  for (const separator of ['\u2028', '\u2029']) {
    const bytes = Buffer.from(`{"a":1}\n---\n{"b":"${separator}"}`);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const seen: boolean[] = [];
      splitter.push(bytes.subarray(0, cut), () => {});
      splitter.push(bytes.subarray(cut), () => {});
      seen.push(splitter.lineSeparator);
      splitter.end(() => {});
      assert.deepEqual(seen, [true], `cut at ${cut}`);
      // The next stream starts without it.
      assert.equal(splitter.lineSeparator, false);
    }
  }
});

test('a document larger than any chunk comes out whole', () => {
  const splitter = new DocumentSplitter();
  const big = `{"data":"${'x'.repeat(3 << 20)}"}`;
  const bytes = Buffer.from(`{"a":1}\n---\n${big}\n---\n{"b":2}\n`);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 65_536) chunks.push(bytes.subarray(at, at + 65_536));
  assert.deepEqual(split(splitter, chunks), ['{"a":1}\n', `\n${big}\n`, '\n{"b":2}\n']);
});
