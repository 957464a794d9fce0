// The agent's start of the fast path (--fast-path): the programs go through the verifier once, as
// the data path's own load over its pins, before the first sync; the probe's load (no pins) is
// only asked when that load fails, to tell a kernel that cannot run them from pins it cannot use.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import type { AgentConfig } from '../../src/agent/config.js';
import { FastPathUnavailableError, openFastPath } from '../../src/agent/fast-path-choice.js';
import { bpfFixturePath } from '../../src/bpf/index.js';
import { FAST_PATH_DIR, removeFastPath } from '../../src/dataplane/ebpf/fast-path.js';
import { bpffsDir, bpfSkip, onCleanup } from '../bpf/harness.js';

const skip = await bpfSkip('fast path start');

const log = pino({ level: 'silent' });
const config = (fastPath: AgentConfig['fastPath'], bpfDir: string) => ({ fastPath, serviceProxy: 'ebpf', cni: true, bpfDir }) as const;

test('the fast path is loaded at start, over its pins: the maps are there before the first apply', { skip }, async (t) => {
  const dir = await bpffsDir(t);
  const fastPath = await openFastPath(config('on', dir), log);
  assert.ok(fastPath);
  onCleanup(t, () => removeFastPath(dir, []));
  onCleanup(t, () => fastPath.close());
  const pinned = readdirSync(join(dir, FAST_PATH_DIR)).filter((name) => name.startsWith('wl_fp_')).sort();
  assert.deepEqual(pinned, ['wl_fp_cidrs', 'wl_fp_devs', 'wl_fp_ports', 'wl_fp_stats']);
  assert.equal(fastPath.stats()?.sameNode, 0n, 'the counters of the loaded maps');
});

test('programs the verifier rejects: on is refused with its word, auto leaves the fast path off with nothing pinned', { skip }, async (t) => {
  const dir = await bpffsDir(t);
  const objects = mkdtempSync(join(tmpdir(), 'wl-fastpath-objects-'));
  onCleanup(t, () => rmSync(objects, { recursive: true, force: true }));
  copyFileSync(bpfFixturePath('verifier_reject'), join(objects, 'fastpath.bpf.o'));
  const before = process.env['WIRELANE_BPF_OBJECTS'];
  process.env['WIRELANE_BPF_OBJECTS'] = objects;
  onCleanup(t, () => {
    if (before === undefined) delete process.env['WIRELANE_BPF_OBJECTS'];
    else process.env['WIRELANE_BPF_OBJECTS'] = before;
  });
  await assert.rejects(openFastPath(config('on', dir), log), (e: unknown) => e instanceof FastPathUnavailableError && /^--fast-path on: fast path: programs .* pass the verifier: /.test(e.message));
  assert.equal(await openFastPath(config('auto', dir), log), undefined);
  assert.equal(existsSync(join(dir, FAST_PATH_DIR)), false, 'nothing pinned');
});
