// An agent upgraded over an older build's fast path: pinned maps of another layout (here the ports
// map as a plain HASH of another size, as before it became an LRU) are replaced rather than failing
// the load, since everything in them is derived; the replacement has this build's layout.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BpfObject, bpfObjectPath, openPinnedMap } from '../../src/bpf/index.js';
import { FAST_PATH_DIR, FastPathDatapath, removeFastPath } from '../../src/dataplane/ebpf/fast-path.js';
import { bpffsDir, bpfSkip, onCleanup } from '../bpf/harness.js';

const skip = await bpfSkip('fast path upgrade tests');
const NO_DEVICES = { clusterPodCidrs: [], localPodCidrs: [], bridge: 'wl-no-bridge', underlay: [] };

test('pinned maps of an older layout are replaced by this build\'s, and the apply succeeds', { skip }, async (t) => {
  const dir = await bpffsDir(t);
  onCleanup(t, () => removeFastPath(dir, []));
  const pins = join(dir, FAST_PATH_DIR);
  mkdirSync(pins, { recursive: true });
  // The older layout: wl_fp_ports a HASH of 1,024 entries, pinned where the agent pins it.
  const older = BpfObject.open(bpfObjectPath('fastpath'), { name: 'fastpath' });
  try {
    for (const info of older.maps().filter((m) => !m.internal)) older.setMapPinPath(info.name, join(pins, info.name));
    older.setMaxEntries('wl_fp_ports', 1024);
    older.load();
  } finally {
    older.close();
  }
  const before = openPinnedMap(join(pins, 'wl_fp_ports'));
  const [beforeId, beforeEntries] = [before.id, before.maxEntries];
  before.close();
  assert.equal(beforeEntries, 1024);

  const warnings: string[] = [];
  const log = { warn: (_: unknown, msg: string) => warnings.push(msg) } as unknown as NonNullable<ConstructorParameters<typeof FastPathDatapath>[0]['log']>;
  const fastPath = new FastPathDatapath({ bpffsDir: dir, log });
  t.after(() => fastPath.close());
  await fastPath.apply(NO_DEVICES);
  const after = openPinnedMap(join(pins, 'wl_fp_ports'));
  t.after(() => after.close());
  assert.notEqual(after.id, beforeId, 'a new map at the pin');
  assert.equal(after.typeName, 'lru_hash');
  assert.equal(after.maxEntries, 16384);
  assert.deepEqual(warnings, ['fast path: pinned maps of another layout replaced; their contents are derived (rewritten, relearnt; counters restart)']);
  // A second agent over this build's own pins replaces nothing.
  const again = new FastPathDatapath({ bpffsDir: dir, log });
  t.after(() => again.close());
  await again.apply(NO_DEVICES);
  assert.equal(warnings.length, 1);
});
