// BpfObject.loadAsync(): the kernel verifies the programs on libuv's thread pool while the JS thread
// runs on. Each load captures its own libbpf log (the print callback is process-wide), fails as
// load() would, and keeps the object busy until it settles.
import assert from 'node:assert/strict';
import { Session } from 'node:inspector';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { test } from 'node:test';
import { BpfError, BpfObject, bpfFixturePath, bpfObjectPath } from '../../src/bpf/index.js';
import { bpfAddon } from '../../src/bpf/addon.js';
import { bpffsDir, bpfSkip, cgroupDir, connectFrom, listen, onCleanup, u32 } from './harness.js';

const skip = await bpfSkip('BPF asynchronous load tests');
const FIXTURE = bpfFixturePath('addon_fixture');
const REJECTED = bpfFixturePath('verifier_reject');

function thrown(run: () => unknown): BpfError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof BpfError, String(error));
    return error;
  }
  assert.fail('expected a BpfError');
}

async function rejection(promise: Promise<unknown>): Promise<BpfError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BpfError, String(error));
    return error;
  }
  assert.fail('expected the load to be rejected');
}

test('an object loaded on the thread pool runs its programs with the constants set before', { skip }, async (t) => {
  const cgroup = cgroupDir(t);
  const port = await listen(t);
  const obj = BpfObject.open(FIXTURE);
  onCleanup(t, () => obj.close());
  obj.setConstant('answer', 9);
  await obj.loadAsync();
  assert.equal(obj.loaded, true);
  assert.ok(obj.programs().every((p) => typeof p.fd === 'number' && p.fd >= 0));
  const counters = obj.map('counters');
  onCleanup(t, () => counters.close());
  const link = obj.attachCgroup('count_connect4', cgroup);
  onCleanup(t, () => link.destroy());
  await connectFrom(t, cgroup, port);
  assert.equal(counters.lookup(u32(0))?.readBigUInt64LE(0), 1n, 'the program counted the connect');
  assert.equal(counters.lookup(u32(1))?.readBigUInt64LE(0), 9n, 'the program saw the constant');
});

test('a program the verifier rejects rejects the load with the error load() throws, verifier log included', { skip }, async (t) => {
  const sync = BpfObject.open(REJECTED);
  onCleanup(t, () => sync.close());
  const thrownSync = thrown(() => sync.load());
  const obj = BpfObject.open(REJECTED);
  onCleanup(t, () => obj.close());
  const error = await rejection(obj.loadAsync());
  assert.equal(error.code, 'EACCES');
  assert.equal(error.call, 'bpf_object__load');
  assert.match(error.log, /BEGIN PROG LOAD LOG/);
  assert.match(error.log, /invalid mem access 'map_value_or_null'/);
  assert.equal(error.message, thrownSync.message);
  // The same log but for the map's kernel address, which each load has its own of.
  const addressless = (log: string): string => log.replace(/0x[0-9a-f]+/g, 'ADDR');
  assert.equal(addressless(error.log), addressless(thrownSync.log));
  assert.equal(obj.loaded, false);
});

test('objects loading at once all load, and each failure carries its own log', { skip }, async (t) => {
  const pins = await bpffsDir(t);
  // A pinned "table" of another size: libbpf refuses to reuse it (its own log line, no verifier).
  const pinner = BpfObject.open(FIXTURE);
  onCleanup(t, () => pinner.close());
  pinner.setMaxEntries('table', 7);
  pinner.setMapPinPath('table', `${pins}/table`);
  pinner.load();
  const open = (path: string): BpfObject => {
    const obj = BpfObject.open(path);
    onCleanup(t, () => obj.close());
    return obj;
  };
  const rounds = [0, 1, 2];
  const good = rounds.map(() => open(FIXTURE));
  const rejected = rounds.map(() => open(REJECTED));
  const unpinnable = rounds.map(() => {
    const obj = open(FIXTURE);
    obj.setMapPinPath('table', `${pins}/table`);
    return obj;
  });
  const loads = rounds.flatMap((i) => [good[i]!.loadAsync(), rejection(rejected[i]!.loadAsync()), rejection(unpinnable[i]!.loadAsync())]);
  const settled = await Promise.all(loads);
  for (const obj of good) assert.equal(obj.loaded, true);
  for (let i = 0; i < rounds.length; i++) {
    const verifier = settled[i * 3 + 1] as BpfError;
    const pin = settled[i * 3 + 2] as BpfError;
    assert.equal(verifier.code, 'EACCES');
    assert.match(verifier.log, /invalid mem access/);
    assert.doesNotMatch(verifier.log, /reuse pinned map/);
    assert.match(pin.log, /reuse pinned map/);
    assert.doesNotMatch(pin.log, /PROG LOAD LOG|invalid mem access/);
  }
});

test('while an object loads, every other call on it is EBUSY, and it is usable once the load settles', { skip }, async (t) => {
  const obj = BpfObject.open(FIXTURE);
  const loading = obj.loadAsync();
  try {
    assert.equal(obj.name, 'addon_fixture');
    assert.equal(obj.loaded, false);
    const calls: Array<[string, () => unknown]> = [
      ['programs', () => obj.programs()],
      ['maps', () => obj.maps()],
      ['map', () => obj.map('table')],
      ['globals', () => obj.globals()],
      ['setMaxEntries', () => obj.setMaxEntries('table', 2)],
      ['setConstant', () => obj.setConstant('answer', new Uint8Array(4))],
      ['attachCgroup', () => obj.attachCgroup('count_connect4', '/sys/fs/cgroup')],
      ['load', () => obj.load()],
      ['close', () => obj.close()],
    ];
    for (const [name, call] of calls) {
      const error = thrown(call);
      assert.equal(error.code, 'EBUSY', name);
      assert.match(error.message, /a load is in progress/, name);
    }
    assert.equal((await rejection(obj.loadAsync())).code, 'EBUSY');
  } finally {
    await loading;
    obj.close();
  }
  assert.equal(obj.loaded, true);
  assert.equal(thrown(() => obj.programs()).code, 'EBADF');
});

test('an object nothing else refers to is kept until its load settles, and let go after', { skip }, async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const { NativeObject } = bpfAddon();
  const events: string[] = [];
  const collected = new FinalizationRegistry<number>((i) => events.push(`collected ${i}`));
  // Only the load holds the native object: collecting it under the pool thread would be a use after free.
  const loads = [0, 1, 2, 3].map((i) => {
    const native = new NativeObject(FIXTURE);
    collected.register(native, i);
    return native.loadAsync().then(() => events.push(`loaded ${i}`));
  });
  for (let i = 0; i < 5; i++) gc();
  await Promise.all(loads);
  // Let go once settled: collected at a later collection (finalizers run as tasks after it).
  for (let round = 0; round < 50 && events.length < 8; round++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  for (const i of [0, 1, 2, 3]) {
    const loaded = events.indexOf(`loaded ${i}`);
    assert.ok(loaded >= 0 && loaded < events.indexOf(`collected ${i}`), events.join(', '));
  }
});

test('a load succeeds while a CPU profiler sends the JS thread SIGPROF', { skip }, async (t) => {
  // The verifier gives up (EAGAIN) while a signal is pending for the loading thread: the addon
  // blocks them for the load, on the JS thread (load()) as on the pool (loadAsync()).
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 100 });
  await post('Profiler.start');
  onCleanup(t, async () => {
    await post('Profiler.stop');
    session.disconnect();
  });
  // sock_lb: verifying it takes long enough for SIGPROF to arrive many times.
  const sync = BpfObject.open(bpfObjectPath('sock_lb'));
  onCleanup(t, () => sync.close());
  sync.load();
  const pooled = BpfObject.open(bpfObjectPath('sock_lb'));
  onCleanup(t, () => pooled.close());
  await pooled.loadAsync();
  assert.equal(sync.loaded && pooled.loaded, true);
});
