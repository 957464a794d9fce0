// Issue 11: the native addon never ends the process, whatever it is given: wrong types, wrong sizes,
// maps without keys (queue, ring buffer), closed handles. Every call returns or throws a JS Error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bpfFixturePath } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';
import { bpfSkip, bpffsDir, runChild } from './harness.js';

const skip = await bpfSkip('native addon fuzz test');

const MAPS = [
  ['hash', 'type', 'hash', 'key', '4', 'value', '4', 'entries', '16'],
  ['percpu', 'type', 'percpu_array', 'key', '4', 'value', '4', 'entries', '4'],
  ['queue', 'type', 'queue', 'key', '0', 'value', '4', 'entries', '4'],
  ['ringbuf', 'type', 'ringbuf', 'key', '0', 'value', '0', 'entries', '4096'],
  ['array', 'type', 'array', 'key', '4', 'value', '4', 'entries', '4', 'flags', '1024'],
] as const;

test('thousands of calls with wrong types, sizes and map kinds: each returns or throws an Error, and the process lives', { skip }, async (t) => {
  const dir = await bpffsDir(t);
  for (const [name, ...spec] of MAPS) await runCommand('bpftool', ['map', 'create', `${dir}/${name}`, ...spec, 'name', `wlfuzz_${name}`]);
  const result = await runChild(t, './child-fuzz-addon.ts', [dir, bpfFixturePath('addon_fixture')]);
  assert.equal(result.signal, null, `the child died of ${result.signal}: ${result.stderr}`);
  assert.equal(result.code, 0, result.stderr);
  const outcome = JSON.parse(result.stdout) as { calls: number; returned: number; errors: Record<string, number>; notErrors: string[] };
  t.diagnostic(JSON.stringify(outcome));
  assert.deepEqual(outcome.notErrors, []);
  assert.ok(outcome.calls > 10_000, `${outcome.calls} calls`);
  for (const name of ['TypeError', 'RangeError', 'BpfError']) assert.ok((outcome.errors[name] ?? 0) > 0, `some calls end in a ${name}`);
});
