import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeapRelease } from '../../src/agent/heap-release.js';
import { createLogger } from '../../src/observability/logger.js';

const log = createLogger('silent');

test('free memory is released after the first reconcile, then at most once a period', () => {
  let now = 0;
  let releases = 0;
  const heap = new HeapRelease(30_000, log, () => (releases++, true), () => now);
  heap.afterReconcile();
  assert.equal(releases, 1, 'the first sync’s garbage goes at once');
  for (now = 1000; now < 22_500; now += 1000) heap.afterReconcile();
  assert.equal(releases, 1, 'a burst of reconciles within a period pays for one release');
  // The next resync's reconcile may end a little less than a period after this one.
  now = 29_900;
  heap.afterReconcile();
  assert.equal(releases, 2);
});

test('without the addon the agent goes on, and stops asking', () => {
  let calls = 0;
  let now = 0;
  const heap = new HeapRelease(1, log, () => {
    calls++;
    throw new Error('the libbpf addon: it is not built');
  }, () => now);
  heap.afterReconcile();
  now = 10;
  heap.afterReconcile();
  assert.equal(calls, 1);
});
