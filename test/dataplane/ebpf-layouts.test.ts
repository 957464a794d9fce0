// src/dataplane/ebpf/layouts.ts against the BTF of the compiled programs (build/bpf/*.bpf.o, made
// by scripts/setup.mjs from bpf/*.bpf.c), member by member, as Cilium's alignchecker does: a C
// struct changed without the table, or the table without the header, fails here, on any machine
// (no root, no kernel support; only bpftool and the built objects). The load-time check
// (codec.checkMapLayouts) compares sizes only, and only where the programs load.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { bpfObjectPath } from '../../src/bpf/index.js';
import { AGGREGATES, type Layout, MAPS, SERVICE_KEY, sharedWord, wordOf } from '../../src/dataplane/ebpf/layouts.js';
import { type BtfType, aggregateNames, layoutDifferences, mapNames, readBtf } from '../support/btf-layouts.js';

/** Every program of bpf/, by the name its object is built under. */
const PROGRAMS = readdirSync(new URL('../../bpf/', import.meta.url))
  .filter((f) => f.endsWith('.bpf.c'))
  .map((f) => f.slice(0, -'.bpf.c'.length))
  .sort();

function bpftoolMissing(): string | false {
  try {
    execFileSync('bpftool', ['version'], { stdio: 'ignore' });
    return false;
  } catch {
    if (process.env['CI'] === 'true') throw new Error('CI=true, but bpftool cannot run: the map layouts cannot be checked against BTF');
    return 'bpftool is not installed (npm run setup installs it as root)';
  }
}

const skip = bpftoolMissing();

/** Each object's BTF; a missing object fails (it is what is under test), it never skips. */
function builtObjects(): Array<{ readonly name: string; readonly btf: BtfType[] }> {
  return PROGRAMS.map((name) => {
    const path = bpfObjectPath(name);
    assert.ok(existsSync(path), `${path} is not built (npm run setup)`);
    return { name: `${name}.bpf.o`, btf: readBtf(path) };
  });
}

test('every struct of the built objects is in the table with the same size and members at the same offsets', { skip }, () => {
  assert.ok(PROGRAMS.length >= 3, `bpf/ has ${PROGRAMS.join(', ')}`);
  const problems = builtObjects().flatMap(({ name, btf }) => layoutDifferences(name, btf, AGGREGATES, MAPS));
  assert.deepEqual(problems, []);
});

test('every struct and map in the table is in some built object', { skip }, () => {
  const objects = builtObjects();
  const structs = new Set(objects.flatMap(({ btf }) => aggregateNames(btf)));
  const maps = new Set(objects.flatMap(({ btf }) => mapNames(btf)));
  assert.deepEqual(AGGREGATES.map((l) => l.name).filter((name) => !structs.has(name)), [], 'structs of layouts.ts no object declares');
  assert.deepEqual(Object.keys(MAPS).filter((name) => !maps.has(name)), [], 'maps of layouts.ts no object defines');
});

test('the check finds a moved member, a resized struct, a member the table lacks and a map of another type', { skip }, () => {
  // An object with the shared service maps (not every program has them: the fast path does not).
  const first = builtObjects().find(({ btf }) => aggregateNames(btf).includes('wl_service_key'));
  assert.ok(first);
  const altered = first.btf.map((t): BtfType => {
    if (t.name === 'wl_service_key') {
      // `port` one byte later, `pad` gone, as if the header had changed and the table not.
      const members = (t.members ?? []).filter((m) => m.name !== 'pad').map((m) => (m.name === 'port' ? { ...m, bits_offset: m.bits_offset + 8 } : m));
      return { ...t, members };
    }
    if (t.name === 'wl_service_value') return { ...t, size: 24, members: [...(t.members ?? []), { name: 'weight', type_id: t.members?.[0]?.type_id ?? 0, bits_offset: 160 }] };
    return t;
  });
  const swapped = Object.fromEntries(Object.entries(MAPS).map(([name, map]) => [name, name === 'wl_slots' ? { ...map, value: MAPS.wl_backends.value } : map]));
  const problems = layoutDifferences('x.o', altered, AGGREGATES, swapped);
  assert.ok(problems.includes('x.o: struct wl_service_key.port is at offset 17, 2 bytes; layouts.ts says offset 16, 2 bytes'), problems.join('\n'));
  assert.ok(problems.includes('x.o: struct wl_service_key has no member pad, which layouts.ts lists'), problems.join('\n'));
  assert.ok(problems.includes('x.o: struct wl_service_value is 24 bytes, 20 in layouts.ts'), problems.join('\n'));
  assert.ok(problems.includes('x.o: struct wl_service_value.weight (offset 20, 4 bytes) is not in layouts.ts'), problems.join('\n'));
  assert.ok(problems.includes('x.o: map wl_slots value is scalar __u32 (4 bytes), layouts.ts says struct wl_backend (20 bytes)'), problems.join('\n'));
  const unlisted = layoutDifferences('x.o', first.btf, AGGREGATES.filter((l) => l.name !== 'wl_affinity_client'), MAPS);
  assert.ok(unlisted.includes('x.o: union wl_affinity_client is not in layouts.ts'), unlisted.join('\n'));
});

test('the encoders\' word plan refuses a layout it would write wrong', () => {
  assert.deepEqual(wordOf(SERVICE_KEY, 'family'), { word: 4, shift: 24 });
  assert.equal(sharedWord(SERVICE_KEY, 'port', 'protocol', 'family'), 4);
  // The header with scope moved next to family: a writer of port, protocol and family would zero it.
  const moved: Layout = { ...SERVICE_KEY, fields: { ...SERVICE_KEY.fields, family: { offset: 18, size: 1 }, scope: { offset: 19, size: 1 }, protocol: { offset: 20, size: 1 } } };
  assert.throws(() => sharedWord(moved, 'port', 'protocol', 'family'), /port, protocol, family are not in one 32-bit word/);
  assert.throws(() => sharedWord(moved, 'port', 'family'), /scope shares a 32-bit word with port, family/);
  const straddling: Layout = { ...SERVICE_KEY, fields: { ...SERVICE_KEY.fields, port: { offset: 19, size: 2 } } };
  assert.throws(() => wordOf(straddling, 'port'), /wl_service_key.port \(offset 19, 2 bytes\) is not within one 32-bit word/);
});
