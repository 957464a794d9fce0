// Calls every entry point and method of the native addon with wrong types, sizes and kinds of map,
// and prints what happened as JSON. Run in a child process by fuzz-addon.test.ts: an abort or a
// SIGFPE in the addon ends this process, not the test runner.
import { bpfAddon, type NativeMap } from '../../src/bpf/addon.js';

const [pinDir, fixture] = process.argv.slice(2) as [string, string];
const addon = bpfAddon();

// A small deterministic generator: the same calls on every run.
let seed = 1107;
const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);

const HOSTILE: readonly unknown[] = [
  undefined, null, 0, -1, 1, 4, 2 ** 32, 2 ** 53, -(2 ** 31), 0.5, NaN, Infinity, -Infinity, '', 'x', 'x'.repeat(5000), '\0',
  `${pinDir}/nothing`, pinDir, '/proc/self/mem', {}, [], [1, 2], { ifindex: -1 }, { ifindex: 2 ** 40, netns: 7 }, () => 0, Symbol('s'), true,
  Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(4), Buffer.alloc(8), Buffer.alloc(4096), new Uint8Array(3), new ArrayBuffer(8),
  new DataView(new ArrayBuffer(4)), 1n, new Date(0), Object.create(null),
];
const pick = () => HOSTILE[Math.floor(random() * HOSTILE.length)];

const outcome = { calls: 0, returned: 0, errors: {} as Record<string, number>, notErrors: [] as string[] };
function call(what: string, run: () => unknown): void {
  outcome.calls++;
  try {
    run();
    outcome.returned++;
  } catch (error) {
    if (error instanceof Error) outcome.errors[error.name] = (outcome.errors[error.name] ?? 0) + 1;
    else outcome.notErrors.push(`${what}: threw ${String(error)}`);
  }
}

/** `times` calls of `fn` with 0..4 arguments drawn from HOSTILE. */
function fuzz(what: string, fn: (...args: unknown[]) => unknown, times: number): void {
  for (let i = 0; i < times; i++) {
    const args = Array.from({ length: Math.floor(random() * 5) }, pick);
    call(what, () => fn(...args));
  }
}

// Top-level entry points. Those that change the host (detachClsact) only ever get hostile targets,
// which name no interface.
const entry = addon as unknown as Record<string, (...args: unknown[]) => unknown>;
for (const name of ['openPinnedMap', 'openPinnedLink', 'programInfoById', 'openMapById', 'detachClsact', 'queryClsact', 'probeProgramType', 'probeMapType', 'probeHelper', 'typeNames']) {
  fuzz(name, (...args) => entry[name]!(...args), 300);
}
for (const name of ['NativeObject', 'NativeMap', 'NativeLink']) {
  const ctor = entry[name] as unknown as new (...args: unknown[]) => unknown;
  fuzz(`new ${name}`, (...args) => new ctor(...args), 100);
}

// Every map method, on maps of each kind (keys of 0 bytes included: a queue and a ring buffer),
// open and then closed.
const maps: NativeMap[] = [];
for (const name of ['hash', 'percpu', 'queue', 'ringbuf', 'array']) {
  try {
    maps.push(addon.openPinnedMap(`${pinDir}/${name}`));
  } catch (error) {
    outcome.notErrors.push(`cannot open the ${name} map: ${(error as Error).message}`);
  }
}
const methods = ['info', 'lookup', 'update', 'delete', 'keys', 'entries', 'updateBatch', 'deleteBatch', 'batchSupported', 'mmap'] as const;
for (const closed of [false, true]) {
  for (const map of maps) {
    const m = map as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const method of methods) fuzz(`map.${method}`, (...args) => m[method]!.call(map, ...args), 200);
    // Right types, wrong sizes: keys and values of every length up to 40 bytes.
    for (let length = 0; length <= 40; length++) {
      const bytes = Buffer.alloc(length, 0xab);
      call('map.lookup', () => map.lookup(bytes));
      call('map.update', () => map.update(bytes, bytes, 0));
      call('map.delete', () => map.delete(bytes));
      call('map.updateBatch', () => map.updateBatch(bytes, bytes, 0));
      call('map.deleteBatch', () => map.deleteBatch(bytes));
    }
    if (closed) call('map.close', () => map.close());
  }
  for (const map of maps) map.close();
}

// An object: every method before and after load, with hostile arguments.
const object = new addon.NativeObject(fixture);
const o = object as unknown as Record<string, (...args: unknown[]) => unknown>;
for (const phase of ['opened', 'closed']) {
  for (const method of ['name', 'constants', 'setConstant', 'setMaxEntries', 'setMapPinPath', 'maps', 'programs', 'map', 'programInfo', 'attachCgroup', 'attachTcx', 'attachClsact', 'runIterator']) {
    fuzz(`object.${method} (${phase})`, (...args) => o[method]!.call(object, ...args), 100);
  }
  if (phase === 'opened') object.close();
}

console.log(JSON.stringify(outcome));
