import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChild } from './harness.js';

// Need the addon only (no BPF syscall): no capability skip.
test('releaseFreeHeap hands the C heap’s free pages back to the kernel', async (t) => {
  const result = await runChild(t, './child-heap-release.ts', []);
  assert.equal(result.code, 0, result.stderr);
  const seen = JSON.parse(result.stdout) as { before: number; after: number; released: boolean };
  assert.ok(seen.before > 64 * 1024, `the freed buffers stayed resident before the call (${seen.before} KiB)`);
  assert.equal(seen.released, true);
  assert.ok(seen.after < seen.before - 64 * 1024, `released: ${seen.before} → ${seen.after} KiB`);
});

test('releaseFreeHeap has V8 collect and give back the pages of an idle process’s dead objects', async (t) => {
  const result = await runChild(t, './child-js-heap-release.ts', []);
  assert.equal(result.code, 0, result.stderr);
  const seen = JSON.parse(result.stdout) as { before: number; after: number };
  assert.ok(seen.before > 64, `the dead objects stayed committed before the call (${seen.before.toFixed(1)} MiB)`);
  assert.ok(seen.after < seen.before / 2, `committed heap: ${seen.before.toFixed(1)} → ${seen.after.toFixed(1)} MiB`);
});
