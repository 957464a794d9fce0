// The TypeScript side of bpf/include/wirelane_nodeport.h: map sizes and counter slots read from the
// header itself (a drift would be caught at load, but only on a machine that can load), the
// source-range key's bytes, and the errors NodePortDatapath raises before touching the kernel.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NODEPORT_MAPS, NODEPORT_STATS, NodePortDatapath, NodePortError, RANGE_FRONTEND_BITS, sourceRangeKey } from '../../src/dataplane/ebpf/nodeport.js';
import { parseIp } from '../../src/model/ip.js';

const header = readFileSync(new URL('../../bpf/include/wirelane_nodeport.h', import.meta.url), 'utf8');

function assertedSize(struct: string): number {
  const match = new RegExp(`_Static_assert\\(sizeof\\(struct ${struct}\\) == (\\d+)`).exec(header);
  assert.ok(match, `no size assertion for struct ${struct} in the header`);
  return Number(match[1]);
}

test('map names and sizes are the header\'s', () => {
  assert.equal(NODEPORT_MAPS.conntrack.key, assertedSize('wl_np_ct_key'));
  assert.equal(NODEPORT_MAPS.conntrack.value, assertedSize('wl_np_ct_value'));
  assert.equal(NODEPORT_MAPS.sourceRanges.key, assertedSize('wl_np_range_key'));
  assert.equal(NODEPORT_MAPS.pending.value, assertedSize('wl_np_pending_value'));
  const macros = [['CT', 'conntrack'], ['PENDING', 'pending'], ['AFFINITY', 'affinity'], ['RANGES', 'sourceRanges'], ['SNAT', 'snat'], ['STATS', 'stats']] as const;
  assert.deepEqual(macros.map(([, map]) => map).sort(), Object.keys(NODEPORT_MAPS).sort());
  for (const [macro, map] of macros) {
    assert.match(header, new RegExp(`#define WL_MAP_NP_${macro} "${NODEPORT_MAPS[map].name}"`));
  }
});

test('the source-range prefix before the source is the header\'s WL_NP_RANGE_FRONTEND_BITS', () => {
  assert.match(header, new RegExp(`#define WL_NP_RANGE_FRONTEND_BITS ${RANGE_FRONTEND_BITS}\\b`));
});

test('counter names follow the header\'s slots', () => {
  const slots = [...header.matchAll(/#define WL_NP_STAT_([A-Z_]+) (\d+)/g)].filter(([, name]) => name !== 'MAX' && name !== 'SLOTS');
  assert.equal(slots.length, NODEPORT_STATS.length);
  for (const [, name = '', slot] of slots) {
    const camel = name.toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    assert.equal(NODEPORT_STATS[Number(slot)], camel, `WL_NP_STAT_${name}`);
  }
  assert.match(header, new RegExp(`#define WL_NP_STAT_MAX ${NODEPORT_STATS.length}\\b`));
  // The map has room for more: a new counter needs no new map layout.
  const room = /#define WL_NP_STAT_SLOTS (\d+)/.exec(header);
  assert.ok(room && Number(room[1]) >= NODEPORT_STATS.length, 'WL_NP_STAT_SLOTS holds every counter');
});

test('a source-range key: prefix length over the frontend and the range, fields where the header puts them', () => {
  const key = sourceRangeKey(parseIp('192.0.2.20'), 443, 6, parseIp('172.31.1.0'), 24);
  assert.equal(key.length, 44);
  assert.equal(key.readUInt32LE(0), 168 + 24);
  assert.deepEqual([...key.subarray(4, 8)], [192, 0, 2, 20]);
  assert.ok(key.subarray(8, 20).every((b) => b === 0));
  assert.equal(key.readUInt16BE(20), 443);
  assert.deepEqual([key[22], key[23], key[24]], [6, 4, 0]);
  assert.deepEqual([...key.subarray(25, 29)], [172, 31, 1, 0]);
  assert.ok(key.subarray(29).every((b) => b === 0));

  const v6 = sourceRangeKey(parseIp('2001:db8::20'), 80, 17, parseIp('fd00::'), 8);
  assert.equal(v6.readUInt32LE(0), 168 + 8);
  assert.equal(v6[23], 6);
  assert.equal(v6[25], 0xfd);
  assert.throws(() => sourceRangeKey(parseIp('192.0.2.20'), 80, 6, parseIp('10.0.0.0'), 33), NodePortError);
});

test('bad options are refused before anything is loaded', async () => {
  const opts = { bpffsDir: '/sys/fs/bpf/wirelane', interfaces: ['eth0'] };
  assert.throws(() => new NodePortDatapath({ ...opts, interfaces: [] }), /interfaces is empty/);
  for (const snatPorts of [{ min: 70000, max: 70001 }, { min: 62000, max: 61000 }, { min: 80, max: 90 }, { min: 61000.5, max: 62000 }]) {
    assert.throws(() => new NodePortDatapath({ ...opts, snatPorts }), NodePortError, JSON.stringify(snatPorts));
  }
  for (const sizes of [{ flows: 0 }, { pendingFlows: 1.5 }, { affinityEntries: -1 }, { flows: 1 << 30 }]) {
    assert.throws(() => new NodePortDatapath({ ...opts, sizes }), NodePortError, JSON.stringify(sizes));
  }
  const notBpffs = mkdtempSync(join(tmpdir(), 'wl-nodeport-'));
  try {
    await assert.rejects(new NodePortDatapath({ ...opts, bpffsDir: notBpffs }).attach(), /is not on a bpffs/);
  } finally {
    rmSync(notBpffs, { recursive: true, force: true });
  }
});
