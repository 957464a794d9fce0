import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { test } from 'node:test';
import { BpfError, BpfObject, bpfFixturePath, openPinnedLink, openPinnedMap, type BpfMap } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';
import { bpffsDir, bpfSkip, cgroupDir, connectFrom, listen, onCleanup, runChild, u32 } from './harness.js';

const skip = await bpfSkip('BPF cgroup attach tests');

function counter(map: BpfMap, slot: number): bigint {
  return map.lookup(u32(slot))?.readBigUInt64LE(0) ?? -1n;
}

async function kernelLinkIds(): Promise<number[]> {
  const { stdout } = await runCommand('bpftool', ['-j', 'link', 'show']);
  return (JSON.parse(stdout === '' ? '[]' : stdout) as Array<{ id: number }>).map((l) => l.id);
}

test('a connect4 program attached to a cgroup runs for processes in it, and survives its loader through a pin', { skip }, async (t) => {
  const cgroup = cgroupDir(t);
  const pins = await bpffsDir(t);
  const port = await listen(t);

  const obj = BpfObject.open(bpfFixturePath('addon_fixture'));
  onCleanup(t, () => obj.close());
  obj.setConstant('answer', 7);
  obj.load();
  const counters = obj.map('counters');
  onCleanup(t, () => counters.close());
  const link = obj.attachCgroup('count_connect4', cgroup);
  onCleanup(t, () => {
    // Only reached on failure: the child below detaches and unpins on success.
    if (existsSync(`${pins}/connect4`)) openPinnedLink(`${pins}/connect4`).destroy();
    if (link.fd !== undefined) link.destroy();
  });
  const info = link.info();
  assert.equal(info.typeName, 'cgroup');
  assert.ok((await kernelLinkIds()).includes(info.id));

  await connectFrom(t, cgroup, port);
  assert.equal(counter(counters, 0), 1n);
  assert.equal(counter(counters, 1), 7n, 'the program saw the constant set before load');
  // This process is not in the cgroup: its connects are not counted.
  await new Promise<void>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve();
    });
    socket.on('error', reject);
  });
  assert.equal(counter(counters, 0), 1n);

  link.pin(`${pins}/connect4`);
  counters.pin(`${pins}/counters`);
  link.close();
  link.close();
  counters.close();
  counters.close();
  obj.close();
  obj.close();

  // Nothing of this process holds the program now but the pin, and it still runs.
  const pinned = openPinnedMap(`${pins}/counters`);
  onCleanup(t, () => pinned.close());
  await connectFrom(t, cgroup, port);
  assert.equal(counter(pinned, 0), 2n);

  const detached = await runChild(t, './child-detach-link.ts', [`${pins}/connect4`]);
  assert.equal(detached.code, 0, detached.stderr);
  assert.equal((JSON.parse(detached.stdout) as { id: number }).id, info.id);
  assert.equal(existsSync(`${pins}/connect4`), false);
  assert.ok(!(await kernelLinkIds()).includes(info.id), 'bpftool link no longer lists the link');
  await connectFrom(t, cgroup, port);
  assert.equal(counter(pinned, 0), 2n, 'a detached program no longer counts');
});

test('an unpinned link detaches when destroyed, and a pin that is not a link is refused', { skip }, async (t) => {
  const cgroup = cgroupDir(t);
  const pins = await bpffsDir(t);
  const obj = BpfObject.open(bpfFixturePath('addon_fixture'));
  onCleanup(t, () => obj.close());
  obj.load();
  const link = obj.attachCgroup('count_connect4', cgroup);
  onCleanup(t, () => link.destroy());
  const id = link.info().id;
  link.destroy();
  link.destroy();
  assert.equal(link.fd, undefined);
  assert.ok(!(await kernelLinkIds()).includes(id));

  obj.map('table').pin(`${pins}/table`);
  assert.throws(() => openPinnedLink(`${pins}/table`), (e: unknown) => e instanceof BpfError && e.code === 'EINVAL' && /holds a bpf-map, not a bpf-link/.test(e.message));
  assert.throws(() => openPinnedMap(`${pins}/missing`), (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && e.call === 'bpf_obj_get');
  assert.equal(openPinnedMap(`${pins}/table`).keySize, 4);
});

test('garbage collection never detaches a link; the process exit does, when it is not pinned', { skip }, async (t) => {
  const cgroup = cgroupDir(t);
  const result = await runChild(t, './child-gc-link.ts', [cgroup]);
  assert.equal(result.code, 0, result.stderr);
  const seen = JSON.parse(result.stdout) as { id: number; collected: boolean; listed: boolean };
  assert.equal(seen.collected, true, 'the link wrapper was garbage-collected');
  assert.equal(seen.listed, true, 'the kernel still had the link after collection');
  assert.ok(!(await kernelLinkIds()).includes(seen.id), 'the link went with the process');
});

test('attaching to something that is not a cgroup v2 directory is a BpfError', { skip }, async (t) => {
  const obj = BpfObject.open(bpfFixturePath('addon_fixture'));
  onCleanup(t, () => obj.close());
  obj.load();
  assert.throws(() => obj.attachCgroup('count_connect4', '/nonexistent'), (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && e.call === 'open');
  const cgroup = cgroupDir(t);
  // A tc program cannot attach to a cgroup.
  assert.throws(() => obj.attachCgroup('count_packets', cgroup), (e: unknown) => e instanceof BpfError && e.call === 'bpf_program__attach_cgroup');
});
