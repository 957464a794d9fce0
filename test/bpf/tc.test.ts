import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import {
  BpfError,
  BpfObject,
  bpfFixturePath,
  detachTc,
  detachTcFilter,
  openPinnedLink,
  queryTcFilter,
  type BpfMap,
  type TcTarget,
} from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { bpffsDir, bpfSkip, onCleanup, u32, uniqueName } from './harness.js';

const skip = await bpfSkip('BPF tc attach tests');
const FIXTURE = bpfFixturePath('addon_fixture');

interface Pair {
  /** Namespace of va (192.0.2.1), the side that pings. */
  readonly a: string;
  /** Namespace of vb (192.0.2.2), where the programs attach. */
  readonly b: string;
}

/** Two test-owned namespaces joined by a veth pair, deleted after the test. */
async function vethPair(t: TestContext): Promise<Pair> {
  const pair = { a: uniqueName('wlbpf-a'), b: uniqueName('wlbpf-b') };
  onCleanup(t, () => deleteNetns([pair.a, pair.b]));
  await createNetns([pair.a, pair.b]);
  await runCommand('ip', ['-n', pair.a, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', pair.b]);
  for (const [ns, dev, address] of [
    [pair.a, 'va', '192.0.2.1/24'],
    [pair.b, 'vb', '192.0.2.2/24'],
  ] as const) {
    await runCommand('ip', ['-n', ns, 'address', 'add', address, 'dev', dev]);
    await runCommand('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    await runCommand('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  return pair;
}

async function ping(pair: Pair): Promise<void> {
  await runCommand('ping', ['-c', '2', '-i', '0.2', '-W', '2', '192.0.2.2'], { netns: pair.a });
}

function packets(counters: BpfMap): bigint {
  return counters.lookup(u32(2))?.readBigUInt64LE(0) ?? -1n;
}

function ownNetns(): string {
  return readlinkSync('/proc/thread-self/ns/net');
}

function loaded(t: TestContext): { obj: BpfObject; counters: BpfMap } {
  const obj = BpfObject.open(FIXTURE);
  onCleanup(t, () => obj.close());
  obj.load();
  const counters = obj.map('counters');
  onCleanup(t, () => counters.close());
  return { obj, counters };
}

test('tcx: a program attached inside another namespace sees its packets, and the thread comes back', { skip }, async (t) => {
  const pair = await vethPair(t);
  const pins = await bpffsDir(t);
  const { obj, counters } = loaded(t);
  const target: TcTarget = { interface: 'vb', direction: 'ingress', netns: `/var/run/netns/${pair.b}` };
  const before = ownNetns();

  const attachment = obj.attachTc('count_packets', target, { mode: 'tcx' });
  assert.equal(ownNetns(), before);
  assert.equal(attachment.mode, 'tcx');
  if (attachment.mode !== 'tcx') return;
  onCleanup(t, () => attachment.link.destroy());
  assert.equal(attachment.link.info().typeName, 'tcx');

  await ping(pair);
  const seen = packets(counters);
  assert.ok(seen >= 2n, `the tc program counted ${seen} packets`);

  // Pinned, closed, re-opened and destroyed: it no longer sees packets.
  attachment.link.pin(`${pins}/tcx`);
  attachment.link.close();
  const reopened = openPinnedLink(`${pins}/tcx`);
  reopened.destroy();
  await ping(pair);
  assert.equal(packets(counters), seen);

  // Failures inside the namespace still bring the thread back.
  assert.throws(
    () => obj.attachTc('count_packets', { ...target, interface: 'nonexistent0' }, { mode: 'tcx' }),
    (e: unknown) => e instanceof BpfError && e.code === 'ENODEV' && e.call === 'if_nametoindex' && /nonexistent0/.test(e.message),
  );
  assert.equal(ownNetns(), before);
  assert.throws(
    () => obj.attachTc('count_packets', { ...target, netns: '/var/run/netns/no-such-namespace' }, { mode: 'tcx' }),
    (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && e.call === 'open',
  );
  assert.equal(ownNetns(), before);
});

test('clsact: our filter is removed and the qdisc and other users\' filters stay', { skip }, async (t) => {
  const pair = await vethPair(t);
  const { obj, counters } = loaded(t);
  // Someone else's clsact qdisc and filter (tc loads its own copy of the program at priority 10).
  await runCommand('tc', ['-n', pair.b, 'qdisc', 'add', 'dev', 'vb', 'clsact']);
  await runCommand('tc', ['-n', pair.b, 'filter', 'add', 'dev', 'vb', 'ingress', 'prio', '10', 'handle', '1', 'bpf', 'obj', FIXTURE, 'sec', 'tc', 'da']);

  const target: TcTarget = { interface: 'vb', direction: 'ingress', netns: `/var/run/netns/${pair.b}` };
  const attachment = obj.attachTc('count_packets', target, { mode: 'clsact', handle: 7, priority: 5 });
  assert.equal(attachment.mode, 'clsact');
  if (attachment.mode !== 'clsact') return;
  onCleanup(t, () => detachTcFilter(attachment.filter));
  const { filter } = attachment;
  assert.deepEqual([filter.handle, filter.priority, filter.createdQdisc], [7, 5, false]);
  assert.ok(filter.progId > 0);
  assert.equal(queryTcFilter(filter), filter.progId);
  // The same handle and priority again is refused (the kernel's exclusivity flag).
  assert.throws(() => obj.attachTc('count_packets', target, { mode: 'clsact', handle: 7, priority: 5 }), (e: unknown) => e instanceof BpfError && e.code === 'EEXIST');

  await ping(pair);
  const seen = packets(counters);
  assert.ok(seen >= 2n, `the tc program counted ${seen} packets`);

  detachTc(attachment);
  assert.equal(queryTcFilter(filter), undefined);
  assert.equal(detachTcFilter(filter), false);
  const filters = (await runCommand('tc', ['-n', pair.b, 'filter', 'show', 'dev', 'vb', 'ingress'])).stdout;
  assert.match(filters, /pref 10 bpf/);
  assert.doesNotMatch(filters, /pref 5 /);
  assert.match((await runCommand('tc', ['-n', pair.b, 'qdisc', 'show', 'dev', 'vb'])).stdout, /clsact/);
  await ping(pair);
  assert.equal(packets(counters), seen);
});

test('clsact: a filter gets another program in place with replace, at its handle and priority', { skip }, async (t) => {
  const pair = await vethPair(t);
  const old = loaded(t);
  const next = loaded(t);
  const target: TcTarget = { interface: 'vb', direction: 'ingress', netns: `/var/run/netns/${pair.b}` };
  const attachment = old.obj.attachTc('count_packets', target, { mode: 'clsact', handle: 7, priority: 5 });
  assert.equal(attachment.mode, 'clsact');
  if (attachment.mode !== 'clsact') return;
  onCleanup(t, () => detachTcFilter(attachment.filter));
  await ping(pair);
  const counted = packets(old.counters);
  assert.ok(counted >= 2n);

  const replaced = next.obj.attachTc('count_packets', target, { mode: 'clsact', handle: 7, priority: 5, replace: true });
  assert.equal(replaced.mode, 'clsact');
  if (replaced.mode !== 'clsact') return;
  assert.deepEqual([replaced.filter.handle, replaced.filter.priority], [7, 5]);
  assert.equal(queryTcFilter(attachment.filter), next.obj.programInfo('count_packets').id, 'the new program in the same filter');
  const filters = (await runCommand('tc', ['-n', pair.b, 'filter', 'show', 'dev', 'vb', 'ingress'])).stdout;
  assert.equal(filters.match(/pref 5 bpf .*handle 0x7 /g)?.length, 1, `one filter: ${filters}`);
  await ping(pair);
  assert.equal(packets(old.counters), counted, 'the old program no longer runs');
  assert.ok(packets(next.counters) >= 2n, 'the new one does');
});

test('clsact: without a qdisc one is created, and the kernel picks handle and priority', { skip }, async (t) => {
  const pair = await vethPair(t);
  const { obj } = loaded(t);
  const target: TcTarget = { interface: 'va', direction: 'egress', netns: `/var/run/netns/${pair.a}` };
  const attachment = obj.attachTc('count_packets', target, { mode: 'clsact' });
  assert.equal(attachment.mode, 'clsact');
  if (attachment.mode !== 'clsact') return;
  onCleanup(t, () => detachTcFilter(attachment.filter));
  assert.equal(attachment.filter.createdQdisc, true);
  assert.ok(attachment.filter.handle > 0 && attachment.filter.priority > 0);
  assert.equal(detachTcFilter(attachment.filter), true);
  assert.match((await runCommand('tc', ['-n', pair.a, 'qdisc', 'show', 'dev', 'va'])).stdout, /clsact/);
  assert.throws(() => detachTcFilter({ ...attachment.filter, priority: 0 }), RangeError);
});
