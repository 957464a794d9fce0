// The pure rules of an eBPF upgrade: when a pinned map can be re-used, and which failed program
// swaps may leave the old program serving.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type MapLayout, layoutDifferences } from '../../src/dataplane/ebpf/map-staging.js';
import { ProgramSwapError, swapOrKeep } from '../../src/dataplane/ebpf/program-swap.js';

const SERVICES: MapLayout = { name: 'wl_services', type: 1, keySize: 24, valueSize: 20, maxEntries: 131072, flags: 0 };

test('a pinned map is re-used only when type, sizes, max_entries and flags all match', () => {
  const cases: Array<[string, Partial<MapLayout>, string[]]> = [
    ['the same layout', {}, []],
    ['another size', { maxEntries: 65536 }, ['max_entries 65536 → 131072']],
    ['another value', { valueSize: 16 }, ['value size 16 → 20']],
    ['another key', { keySize: 20 }, ['key size 20 → 24']],
    ['another type', { type: 9 }, ['type 9 → 1']],
    ['other flags', { flags: 1 }, ['flags 1 → 0']],
    ['two fields', { maxEntries: 1, flags: 1 }, ['max_entries 1 → 131072', 'flags 1 → 0']],
  ];
  for (const [what, pinned, expected] of cases) assert.deepEqual(layoutDifferences({ ...SERVICES, ...pinned }, SERVICES), expected, what);
});

test('a failed swap keeps the old program when only its code or constants differ, and fails when its maps do', () => {
  const failing = (why: ConstructorParameters<typeof ProgramSwapError>[2]) => () => {
    throw new ProgramSwapError('sock_connect4', '/pins/links/sock_connect4', why, new Error('EPERM'));
  };
  const kept: string[] = [];
  assert.equal(swapOrKeep(failing(['code']), (e) => kept.push(e.message)), undefined);
  assert.equal(swapOrKeep(failing(['code', 'constants']), (e) => kept.push(e.message)), undefined);
  assert.equal(kept.length, 2);
  assert.match(kept[0]!, /replacing sock_connect4 at \/pins\/links\/sock_connect4 \(it differs in code\): EPERM/);
  // On other maps the old program serves what nobody writes any more: that must not pass quietly.
  assert.throws(() => swapOrKeep(failing(['code', 'maps']), () => assert.fail('kept')), ProgramSwapError);
  assert.throws(() => swapOrKeep(() => { throw new TypeError('bug'); }, () => assert.fail('kept')), TypeError);
  const swap = { program: 'p', where: 'w', from: { id: 1, tag: 'a' }, to: { id: 2, tag: 'b' }, why: ['code' as const] };
  assert.equal(swapOrKeep(() => swap, () => assert.fail('kept')), swap);
});
