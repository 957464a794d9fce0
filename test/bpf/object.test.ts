import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { BpfError, BpfObject, bpfFixturePath } from '../../src/bpf/index.js';
import { bpffsDir, bpfSkip, onCleanup, u32 } from './harness.js';

const skip = await bpfSkip('BPF object tests');
const FIXTURE = bpfFixturePath('addon_fixture');

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  assert.fail('expected an exception');
}

test('an object lists its globals, maps and programs, and load-time settings take effect', { skip }, (t) => {
  const obj = BpfObject.open(FIXTURE);
  onCleanup(t, () => obj.close());
  assert.equal(obj.name, 'addon_fixture');
  assert.deepEqual(
    obj.globals().map((g) => [g.name, g.section, g.size]),
    [
      ['answer', '.rodata', 4],
      ['big_constant', '.rodata', 8],
    ],
  );
  obj.setConstant('answer', 42);
  obj.setConstant('big_constant', 0x0102030405060708n);
  obj.setMaxEntries('table', 1000);
  assert.equal(obj.loaded, false);
  obj.load();
  assert.equal(obj.loaded, true);

  const maps = new Map(obj.maps().map((m) => [m.name, m]));
  assert.deepEqual(
    [...maps.values()].filter((m) => !m.internal).map((m) => [m.name, m.typeName, m.keySize, m.valueSize, m.maxEntries]),
    [
      ['counters', 'array', 4, 8, 4],
      ['table', 'hash', 4, 8, 1000],
      ['prefixes', 'lpm_trie', 8, 4, 16],
      ['redirects', 'devmap', 4, 4, 4],
      ['per_cpu', 'percpu_array', 4, 4, 1],
      ['mapped_u32', 'array', 4, 4, 1000],
      ['mapped_wide', 'array', 4, 20, 300],
    ],
  );
  assert.ok([...maps.values()].every((m) => typeof m.fd === 'number' && m.fd >= 0));
  assert.deepEqual(
    obj.programs().map((p) => [p.name, p.typeName, p.section]),
    [
      ['count_connect4', 'cgroup_sock_addr', 'cgroup/connect4'],
      ['count_packets', 'sched_cls', 'tc'],
    ],
  );
  assert.equal(obj.programs()[0]?.expectedAttachTypeName, 'cgroup_inet4_connect');

  // The frozen .rodata map holds the constants as the programs see them.
  const rodataName = [...maps.keys()].find((name) => name.endsWith('.rodata'));
  assert.ok(rodataName !== undefined);
  const rodata = obj.map(rodataName).lookup(u32(0));
  assert.equal(rodata?.readUInt32LE(0), 42);
  assert.equal(rodata?.readBigUInt64LE(8), 0x0102030405060708n);
  assert.equal(obj.map('table').maxEntries, 1000);
});

test('an object opens from a Buffer as from a file', { skip }, (t) => {
  const obj = BpfObject.open(readFileSync(FIXTURE), { name: 'from_memory' });
  onCleanup(t, () => obj.close());
  assert.equal(obj.name, 'from_memory');
  obj.load();
  assert.equal(obj.programs().length, 2);
});

test('a Buffer that is not ELF is LIBBPF_ERRNO__FORMAT', { skip }, () => {
  for (const bytes of [Buffer.from('this is not an ELF object'), Buffer.alloc(0)]) {
    const error = thrown(() => BpfObject.open(bytes));
    assert.ok(error instanceof BpfError, String(error));
    assert.equal(error.code, 'LIBBPF_ERRNO__FORMAT');
    assert.equal(error.errno, 4001);
    assert.equal(error.call, 'bpf_object__open_mem');
  }
});

test('a missing object file is ENOENT naming the path', { skip }, () => {
  const error = thrown(() => BpfObject.open('/nonexistent/x.bpf.o'));
  assert.ok(error instanceof BpfError);
  assert.equal(error.code, 'ENOENT');
  assert.match(error.message, /\/nonexistent\/x\.bpf\.o/);
});

test('a program the verifier rejects is EACCES with the verifier log', { skip }, (t) => {
  const obj = BpfObject.open(bpfFixturePath('verifier_reject'));
  onCleanup(t, () => obj.close());
  const error = thrown(() => obj.load());
  assert.ok(error instanceof BpfError, String(error));
  assert.equal(error.code, 'EACCES');
  assert.equal(error.call, 'bpf_object__load');
  assert.match(error.log, /BEGIN PROG LOAD LOG/);
  assert.match(error.log, /invalid mem access 'map_value_or_null'/);
  assert.match(error.message, /verifier: R0 invalid mem access 'map_value_or_null'/);
  assert.equal(obj.loaded, false);
});

test('a missing map or program is ENOENT listing the names there are', { skip }, (t) => {
  const obj = BpfObject.open(FIXTURE);
  onCleanup(t, () => obj.close());
  const resize = thrown(() => obj.setMaxEntries('no_such_map', 4));
  assert.ok(resize instanceof BpfError);
  assert.equal(resize.code, 'ENOENT');
  assert.match(resize.message, /no map named "no_such_map" \(maps: counters, table, prefixes, redirects, per_cpu/);
  obj.load();
  const map = thrown(() => obj.map('no_such_map'));
  assert.ok(map instanceof BpfError);
  assert.equal(map.code, 'ENOENT');
  const program = thrown(() => obj.attachCgroup('no_such_program', '/sys/fs/cgroup'));
  assert.ok(program instanceof BpfError);
  assert.equal(program.code, 'ENOENT');
  assert.match(program.message, /no program named "no_such_program" \(programs: count_connect4, count_packets\)/);
});

test('constants are checked against their BTF size and name', { skip }, (t) => {
  const obj = BpfObject.open(FIXTURE);
  onCleanup(t, () => obj.close());
  assert.throws(() => obj.setConstant('answer', Buffer.alloc(8)), { name: 'TypeError', message: /"answer" is 4 bytes, the value given is 8/ });
  assert.throws(() => obj.setConstant('answer', 2 ** 32), { name: 'RangeError', message: /does not fit its 4 bytes/ });
  assert.throws(() => obj.setConstant('answer', 1.5), { name: 'RangeError' });
  const missing = thrown(() => obj.setConstant('no_such_constant', 1));
  assert.ok(missing instanceof BpfError);
  assert.equal(missing.code, 'ENOENT');
  assert.match(missing.message, /globals: answer, big_constant/);
  obj.setConstant('answer', -1); // two's complement in 4 bytes
  obj.load();
  const late = thrown(() => obj.setConstant('answer', 1));
  assert.ok(late instanceof BpfError);
  assert.equal(late.code, 'EBUSY');
  assert.throws(() => obj.setMaxEntries('table', 0), { name: 'RangeError' });
});

test('bad arguments are TypeErrors, never a crash', { skip }, (t) => {
  const obj = BpfObject.open(FIXTURE);
  onCleanup(t, () => obj.close());
  // Deliberately wrong types, as untyped JavaScript could pass them.
  const loose = obj as unknown as Record<string, (...args: unknown[]) => unknown>;
  assert.throws(() => BpfObject.open(42 as unknown as string), TypeError);
  assert.throws(() => loose['setMaxEntries']?.call(obj, 'table', 'many'), TypeError);
  assert.throws(() => loose['setMaxEntries']?.call(obj, 'table', -1), RangeError);
  assert.throws(() => loose['setConstant']?.call(obj, 'answer', 'x'), TypeError);
  assert.throws(() => loose['attachCgroup']?.call(obj, 'count_connect4'), TypeError);
  assert.throws(() => loose['attachTc']?.call(obj, 'count_packets', { interface: 'lo', direction: 'sideways' }, { mode: 'tcx' }), TypeError);
  assert.throws(() => loose['attachTc']?.call(obj, 'count_packets', { interface: -3, direction: 'ingress' }, { mode: 'clsact' }), TypeError);
});

test('close() is safe twice, and a closed object says so', { skip }, () => {
  const obj = BpfObject.open(FIXTURE);
  obj.load();
  const table = obj.map('table');
  obj.close();
  obj.close();
  const error = thrown(() => obj.programs());
  assert.ok(error instanceof BpfError);
  assert.equal(error.code, 'EBADF');
  assert.match(error.message, /object "addon_fixture".*closed/);
  // The map handle has its own fd: it outlives the object.
  table.update(u32(1), Buffer.alloc(8));
  assert.equal(table.keys().length, 1);
  table.close();
  table.close();
  assert.throws(() => table.lookup(u32(1)), (e: unknown) => e instanceof BpfError && e.code === 'EBADF');
});

test('a map given a pin path is created and pinned at load, and re-used by the next load if it matches', { skip }, async (t) => {
  const pins = await bpffsDir(t);
  const first = BpfObject.open(FIXTURE);
  onCleanup(t, () => first.close());
  first.setMapPinPath('table', `${pins}/table`);
  first.load();
  first.map('table').update(u32(1), Buffer.alloc(8, 1));
  first.close();

  const second = BpfObject.open(FIXTURE);
  onCleanup(t, () => second.close());
  second.setMapPinPath('table', `${pins}/table`);
  second.load();
  assert.deepEqual(second.map('table').lookup(u32(1)), Buffer.alloc(8, 1));

  // A layout that no longer matches the pinned map is refused instead of silently replaced.
  const resized = BpfObject.open(FIXTURE);
  onCleanup(t, () => resized.close());
  resized.setMapPinPath('table', `${pins}/table`);
  resized.setMaxEntries('table', 32);
  assert.throws(() => resized.load(), (e: unknown) => e instanceof BpfError && e.call === 'bpf_object__load' && /reuse pinned map|mismatch/.test(e.log));
});
