// FastPathDatapath's counters never load the programs: a /metrics scrape before the first apply
// reads the pins (none: undefined), and one after close() (the agent's --clean-up has begun) must
// not load the object again and pin the maps back under a directory being removed.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FAST_PATH_DIR, FastPathDatapath, removeFastPath } from '../../src/dataplane/ebpf/fast-path.js';
import { bpffsDir, bpfSkip, onCleanup } from '../bpf/harness.js';

const skip = await bpfSkip('fast path close tests');

test('counters are read from the pins, never by loading; after close() nothing is loaded or pinned again', { skip }, async (t) => {
  const dir = await bpffsDir(t);
  const fastPath = new FastPathDatapath({ bpffsDir: dir });
  onCleanup(t, () => removeFastPath(dir, []));
  assert.equal(fastPath.stats(), undefined, 'before the first apply: nothing pinned, nothing loaded');
  assert.equal(existsSync(join(dir, FAST_PATH_DIR)), false, 'and the scrape made no pins');

  // No bridge, WireGuard device or underlay here: the maps only.
  await fastPath.apply({ clusterPodCidrs: [], localPodCidrs: [], bridge: 'wl-no-bridge', underlay: [] });
  assert.equal(fastPath.stats()?.sameNode, 0n, 'loaded: the counters');
  fastPath.close();
  assert.equal(fastPath.stats()?.sameNode, 0n, 'closed: read from the pin');

  removeFastPath(dir, []);
  assert.equal(fastPath.stats(), undefined, 'closed and removed: nothing to read');
  assert.equal(existsSync(join(dir, FAST_PATH_DIR)), false, 'and nothing pinned again');
  await assert.rejects(fastPath.apply({ clusterPodCidrs: [], localPodCidrs: [], bridge: 'wl-no-bridge', underlay: [] }), /fast path: closed/);
  assert.equal(existsSync(join(dir, FAST_PATH_DIR)), false, 'a late apply pins nothing either');
});
