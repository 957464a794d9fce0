// The agent's choice of service proxy with eBPF in play: `ebpf` starts the eBPF proxy where it is
// told to attach; `auto` falls back to iptables when the eBPF start fails, leaving nothing attached.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import type { AgentConfig } from '../../src/agent/config.js';
import { ServiceProxyUnavailableError, openServiceProxy } from '../../src/agent/service-proxy-choice.js';
import { bpffsDir, bpfSkip, cgroupDir, onCleanup } from '../bpf/harness.js';
import { added, heldIds } from '../support/own-bpf.js';

const skip = await bpfSkip('service proxy choice with eBPF');

// Only what openServiceProxy reads.
const config = (serviceProxy: AgentConfig['serviceProxy']) => ({ serviceProxy, udpTimeoutMs: 250 }) as AgentConfig;
const log = pino({ level: 'silent' });


test('--service-proxy ebpf attaches to the given cgroup and pins in the given directory', { skip }, async (t) => {
  const pins = join(await bpffsDir(t), 'wirelane');
  const proxy = await openServiceProxy(config('ebpf'), log, { cgroupRoot: cgroupDir(t), bpffsDir: pins, nodePortInterfaces: [] });
  assert.ok(proxy);
  onCleanup(t, () => proxy.cleanup());
  assert.equal(proxy.mode, 'ebpf');
  assert.ok(readdirSync(join(pins, 'links')).length >= 8);
});

test('auto falls back to iptables when the eBPF start fails; explicit ebpf fails with the reason', { skip }, async (t) => {
  const pins = join(await bpffsDir(t), 'wirelane');
  const notACgroup = mkdtempSync(join(tmpdir(), 'wl-not-a-cgroup-'));
  onCleanup(t, () => rmSync(notACgroup, { recursive: true, force: true }));
  const held = heldIds();
  const placement = { cgroupRoot: notACgroup, bpffsDir: pins, nodePortInterfaces: [] };
  const proxy = await openServiceProxy(config('auto'), log, placement);
  assert.equal(proxy?.mode, 'iptables');
  await assert.rejects(openServiceProxy(config('ebpf'), log, placement), (e: unknown) => e instanceof ServiceProxyUnavailableError && e.message.startsWith(`--service-proxy ebpf: eBPF service proxy: socket LB on cgroup ${notACgroup}`));
  // A link or program of a failed start lives only through a pin or a descriptor of this process.
  assert.deepEqual(added(held, heldIds()), { maps: [], progs: [], links: [] }, 'nothing left open');
  const pinned = existsSync(pins) ? readdirSync(pins, { recursive: true, withFileTypes: true }).filter((e) => !e.isDirectory()) : [];
  assert.deepEqual(pinned.map((e) => e.name), [], 'nothing left pinned');
});
