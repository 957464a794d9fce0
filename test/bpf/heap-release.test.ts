import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChild } from './harness.js';

// Needs the addon only (no BPF syscall): no capability skip.
test('releaseFreeHeap hands the C heap’s free pages back to the kernel', async (t) => {
  const result = await runChild(t, './child-heap-release.ts', []);
  assert.equal(result.code, 0, result.stderr);
  const seen = JSON.parse(result.stdout) as { before: number; after: number; released: boolean };
  assert.ok(seen.before > 64 * 1024, `the freed buffers stayed resident before the call (${seen.before} KiB)`);
  assert.equal(seen.released, true);
  assert.ok(seen.after < seen.before - 64 * 1024, `released: ${seen.before} → ${seen.after} KiB`);
});
