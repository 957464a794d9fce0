import assert from 'node:assert/strict';
import { cpus } from 'node:os';
import { test, type TestContext } from 'node:test';
import { BpfError, BpfObject, MapUpdate, bpfFixturePath, type BpfMap } from '../../src/bpf/index.js';
import { bpfSkip, onCleanup, u32 } from './harness.js';

const skip = await bpfSkip('BPF map tests');

function loadedMap(t: TestContext, name: string): BpfMap {
  const obj = BpfObject.open(bpfFixturePath('addon_fixture'));
  obj.load();
  const map = obj.map(name);
  obj.close();
  onCleanup(t, () => map.close());
  return map;
}

function u64(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(value));
  return bytes;
}

/** N consecutive u32 keys from `first` and u64 values key*10, each in one Buffer. */
function encodeEntries(first: number, count: number): { keys: Buffer; values: Buffer } {
  const keys = Buffer.alloc(count * 4);
  const values = Buffer.alloc(count * 8);
  for (let i = 0; i < count; i++) {
    keys.writeUInt32LE(first + i, i * 4);
    values.writeBigUInt64LE(BigInt((first + i) * 10), i * 8);
  }
  return { keys, values };
}

function prefixKey(bits: number, a: number, b: number, c: number, d: number): Buffer {
  const key = Buffer.alloc(8);
  key.writeUInt32LE(bits, 0);
  key.set([a, b, c, d], 4);
  return key;
}

test('lookup, update with flags, delete', { skip }, (t) => {
  const table = loadedMap(t, 'table');
  assert.equal(table.lookup(u32(7)), undefined);
  table.update(u32(7), u64(70));
  assert.equal(table.lookup(u32(7))?.readBigUInt64LE(0), 70n);
  assert.throws(() => table.update(u32(7), u64(71), MapUpdate.noExist), (e: unknown) => e instanceof BpfError && e.code === 'EEXIST' && e.call === 'bpf_map_update_elem');
  assert.throws(() => table.update(u32(8), u64(80), MapUpdate.exist), (e: unknown) => e instanceof BpfError && e.code === 'ENOENT');
  table.update(u32(7), u64(71), MapUpdate.exist);
  assert.equal(table.lookup(u32(7))?.readBigUInt64LE(0), 71n);
  assert.equal(table.delete(u32(7)), true);
  assert.equal(table.delete(u32(7)), false);
});

test('a wrong key or value size is a TypeError naming both sizes', { skip }, (t) => {
  const table = loadedMap(t, 'table');
  assert.throws(() => table.lookup(Buffer.alloc(3)), { name: 'TypeError', message: 'map "table": key is 3 bytes, the map\'s key size is 4' });
  assert.throws(() => table.update(u32(1), Buffer.alloc(4)), { name: 'TypeError', message: 'map "table": value is 4 bytes, the map\'s value size is 8' });
  assert.throws(() => table.delete(Buffer.alloc(16)), { name: 'TypeError', message: /key is 16 bytes, the map's key size is 4/ });
  assert.throws(() => table.lookup('1234' as unknown as Buffer), { name: 'TypeError', message: /key must be a Buffer/ });
  assert.throws(() => table.update(u32(1), u64(1), -1), RangeError);
  assert.throws(() => table.updateBatch(Buffer.alloc(6), Buffer.alloc(16)), { name: 'RangeError', message: /keys is 6 bytes, not a multiple of the key size 4/ });
  assert.throws(() => table.updateBatch(Buffer.alloc(8), Buffer.alloc(8)), { name: 'RangeError', message: /values is 8 bytes, expected 2 entries × 8 bytes = 16/ });
  assert.throws(() => table.deleteBatch(Buffer.alloc(5)), RangeError);
  assert.equal(table.keys().length, 0);
});

test('iteration returns every key and entry', { skip }, (t) => {
  const table = loadedMap(t, 'table');
  for (const k of [3, 1, 2]) table.update(u32(k), u64(k * 100));
  assert.deepEqual(table.keys().map((k) => k.readUInt32LE(0)).sort(), [1, 2, 3]);
  const entries = table.entries().map(([k, v]) => [k.readUInt32LE(0), Number(v.readBigUInt64LE(0))]);
  assert.deepEqual(entries.sort((a, b) => a[0]! - b[0]!), [
    [1, 100],
    [2, 200],
    [3, 300],
  ]);
  // An array map has every slot.
  assert.equal(loadedMap(t, 'counters').keys().length, 4);
});

test('batch update and delete on a hash go through the kernel batch', { skip }, (t) => {
  const table = loadedMap(t, 'table');
  assert.equal(table.batchSupported, undefined);
  const { keys, values } = encodeEntries(100, 16);
  assert.equal(table.updateBatch(keys, values), 16);
  assert.equal(table.batchSupported, true);
  assert.equal(table.keys().length, 16);
  assert.equal(table.lookup(u32(105))?.readBigUInt64LE(0), 1050n);
  // Deleting keys of which some are absent deletes the rest and counts only those.
  table.delete(u32(103));
  assert.equal(table.deleteBatch(encodeEntries(100, 8).keys), 7);
  assert.equal(table.deleteBatch(encodeEntries(100, 16).keys), 8);
  assert.equal(table.keys().length, 0);
  assert.equal(table.updateBatch(Buffer.alloc(0), Buffer.alloc(0)), 0);
});

test('a full map fails the batch with E2BIG and says how far it got', { skip }, (t) => {
  const table = loadedMap(t, 'table');
  const { keys, values } = encodeEntries(0, 20); // max_entries is 16
  assert.throws(
    () => table.updateBatch(keys, values),
    (e: unknown) => e instanceof BpfError && e.code === 'E2BIG' && e.call === 'bpf_map_update_batch' && /after 16 of 20 entries/.test(e.message),
  );
});

test('flags other than BPF_F_LOCK take the per-element path, which honours them', { skip }, (t) => {
  const table = loadedMap(t, 'table');
  const { keys, values } = encodeEntries(1, 4);
  assert.equal(table.updateBatch(keys, values, MapUpdate.noExist), 4);
  assert.throws(
    () => table.updateBatch(keys, values, MapUpdate.noExist),
    (e: unknown) => e instanceof BpfError && e.code === 'EEXIST' && e.call === 'bpf_map_update_elem' && /at entry 0 of 4/.test(e.message),
  );
});

test('a map type without kernel batch ops falls back to a loop in native code', { skip }, (t) => {
  const redirects = loadedMap(t, 'redirects'); // a devmap: key slot, value ifindex
  const keys = Buffer.concat([u32(0), u32(2)]);
  const values = Buffer.concat([u32(1), u32(1)]); // lo is ifindex 1 in every namespace
  assert.equal(redirects.updateBatch(keys, values), 2);
  assert.equal(redirects.batchSupported, false);
  assert.equal(redirects.lookup(u32(2))?.readUInt32LE(0), 1);
  assert.equal(redirects.lookup(u32(1)), undefined);
  assert.equal(redirects.deleteBatch(keys), 2);
  assert.equal(redirects.lookup(u32(0)), undefined);
  // The loop reports the entry the kernel refused.
  assert.throws(
    () => redirects.updateBatch(Buffer.concat([u32(1), u32(9)]), Buffer.concat([u32(1), u32(1)])),
    (e: unknown) => e instanceof BpfError && e.code === 'E2BIG' && e.call === 'bpf_map_update_elem' && /at entry 1 of 2/.test(e.message),
  );
});

test('an LPM trie takes a batch and answers longest-prefix lookups', { skip }, (t) => {
  const prefixes = loadedMap(t, 'prefixes');
  const keys = Buffer.concat([prefixKey(24, 10, 1, 2, 0), prefixKey(16, 10, 1, 0, 0), prefixKey(32, 10, 1, 2, 3)]);
  const values = Buffer.concat([u32(24), u32(16), u32(32)]);
  assert.equal(prefixes.updateBatch(keys, values), 3);
  assert.equal(prefixes.lookup(prefixKey(32, 10, 1, 2, 9))?.readUInt32LE(0), 24);
  assert.equal(prefixes.lookup(prefixKey(32, 10, 1, 9, 9))?.readUInt32LE(0), 16);
  assert.equal(prefixes.lookup(prefixKey(32, 10, 1, 2, 3))?.readUInt32LE(0), 32);
  assert.equal(prefixes.keys().length, 3);
  assert.equal(prefixes.deleteBatch(keys), 3);
  assert.equal(prefixes.keys().length, 0);
});

test('per-CPU maps take one 8-byte-aligned value per possible CPU', { skip }, (t) => {
  const perCpu = loadedMap(t, 'per_cpu');
  assert.equal(perCpu.valueSize, 4);
  assert.ok(perCpu.valueBytes >= 8 * cpus().length && perCpu.valueBytes % 8 === 0);
  const value = Buffer.alloc(perCpu.valueBytes);
  value.writeUInt32LE(5, 0);
  perCpu.update(u32(0), value);
  assert.equal(perCpu.lookup(u32(0))?.readUInt32LE(0), 5);
  assert.throws(() => perCpu.update(u32(0), Buffer.alloc(4)), { name: 'TypeError', message: /value size is \d+ \(value size 4 per CPU/ });
});

/** `size` bytes seed, seed+1, … (mod 256), never all zero. */
function pattern(seed: number, size: number): Buffer {
  return Buffer.from(Array.from({ length: size }, (_, i) => (seed + i) % 255 + 1));
}

test('an mmapable array is read and written in place, values round_up(valueSize, 8) apart', { skip }, (t) => {
  for (const [name, size, stride] of [['mapped_u32', 4, 8], ['mapped_wide', 20, 24]] as const) {
    const map = loadedMap(t, name);
    const mapped = map.mmap();
    assert.equal(map.valueSize, size);
    assert.equal(mapped.stride, stride, name);
    assert.equal(mapped.buffer.byteLength, map.maxEntries * stride);
    assert.equal(map.mmap().buffer, mapped.buffer, 'one buffer per handle while it lives');
    const last = map.maxEntries - 1; // past the first page
    for (const index of [1, 2, last]) {
      // Written in place, read by the syscall.
      new Uint8Array(mapped.buffer, index * stride, size).set(pattern(index, size));
      assert.deepEqual(map.lookup(u32(index)), pattern(index, size), `${name}[${index}]`);
      // Written by the syscall, seen in place; the padding after the value stays zero.
      map.update(u32(index), pattern(index + 100, size));
      assert.deepEqual(Buffer.from(mapped.buffer, index * stride, size), pattern(index + 100, size), `${name}[${index}]`);
      assert.ok(Buffer.from(mapped.buffer, index * stride + size, stride - size).every((byte) => byte === 0));
    }
    assert.ok(Buffer.from(mapped.buffer, 0, stride).every((byte) => byte === 0), 'value 0 untouched');
  }
});

test('mmap refuses other maps with EINVAL and a read-only map with EPERM', { skip }, (t) => {
  const refused = (code: string, message: RegExp) => (e: unknown) => e instanceof BpfError && e.code === code && e.call === 'mmap' && message.test(e.message);
  assert.throws(() => loadedMap(t, 'table').mmap(), refused('EINVAL', /^map "table": mmap: only an array map created with BPF_F_MMAPABLE can be mapped, this is a hash map/));
  assert.throws(() => loadedMap(t, 'counters').mmap(), refused('EINVAL', /^map "counters": .*this is an array without it/));
  // libbpf creates an object's .rodata mmapable and then freezes it: no writable mapping.
  const obj = BpfObject.open(bpfFixturePath('addon_fixture'));
  onCleanup(t, () => obj.close());
  obj.load();
  const rodata = obj.map(obj.maps().find((m) => m.name.endsWith('.rodata'))?.name ?? '.rodata');
  onCleanup(t, () => rodata.close());
  assert.ok((rodata.flags & 1024) !== 0, 'BPF_F_MMAPABLE');
  assert.throws(() => rodata.mmap(), refused('EPERM', /the map is read-only/));
});

test('close() detaches the mapped buffer, is safe twice, and leaves other handles mapped', { skip }, (t) => {
  const obj = BpfObject.open(bpfFixturePath('addon_fixture'));
  onCleanup(t, () => obj.close());
  obj.load();
  const closing = obj.map('mapped_u32');
  const other = obj.map('mapped_u32');
  onCleanup(t, () => other.close());
  const { buffer, stride } = closing.mmap();
  const view = new Uint32Array(buffer);
  view[(3 * stride) / 4] = 33; // value 3
  const kept = other.mmap();
  closing.close();
  assert.equal(buffer.byteLength, 0);
  assert.equal(view.length, 0);
  view[(3 * stride) / 4] = 34; // a write to a detached view goes nowhere
  closing.close();
  assert.throws(() => closing.mmap(), (e: unknown) => e instanceof BpfError && e.code === 'EBADF' && e.call === 'mmap');
  assert.notEqual(kept.buffer, buffer);
  assert.equal(new DataView(kept.buffer).getUint32(3 * stride, true), 33);
  assert.equal(other.lookup(u32(3))?.readUInt32LE(0), 33);
});
