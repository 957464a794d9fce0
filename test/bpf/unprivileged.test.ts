import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bpfFixturePath } from '../../src/bpf/index.js';
import { bpfSkip, runChild } from './harness.js';

const skip = await bpfSkip('BPF unprivileged-caller test');

test('an unprivileged caller gets EPERM as a BpfError, and the process goes on', { skip }, async (t) => {
  const result = await runChild(t, './child-unprivileged.ts', [bpfFixturePath('addon_fixture')]);
  assert.equal(result.signal, null, result.stderr);
  assert.equal(result.code, 0, result.stderr);
  const seen = JSON.parse(result.stdout) as {
    uid: number;
    load: { name: string; code: string; errno: number; call: string; message: string; log: string };
    probe: { syscall: boolean; privileged: boolean; reason?: string };
  };
  assert.equal(seen.uid, 65534);
  assert.equal(seen.load.name, 'BpfError');
  assert.equal(seen.load.code, 'EPERM');
  assert.equal(seen.load.call, 'bpf_object__load');
  assert.match(seen.load.log, /RLIMIT_MEMLOCK|Operation not permitted/);
  assert.equal(seen.probe.syscall, true);
  assert.equal(seen.probe.privileged, false);
  assert.match(seen.probe.reason ?? '', /EPERM/);
});
