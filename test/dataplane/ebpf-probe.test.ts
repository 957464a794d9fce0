// `wirelane probe -o json`: what the kernel offers and the mode `auto` would run, from the same
// decision the agent makes. As root here: eBPF. As an unprivileged user: a step down with reasons.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bpfSkip, runChild } from '../bpf/harness.js';

const skip = await bpfSkip('wirelane probe tests');
const root = fileURLToPath(new URL('../../', import.meta.url));

interface ProbeReport {
  mode: string;
  reasons: string[];
  ebpf: { usable: boolean; reason?: string; checks: Array<{ name: string; ok: boolean; required: boolean; detail?: string }> };
  iptables: { usable: boolean; reason?: string };
  fastPath: { usable: boolean; reason?: string; auto: 'on' | 'off'; autoReason?: string };
}

function probe(...flags: string[]): ProbeReport {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/wirelane.ts', 'probe', '-o', 'json', ...flags], { cwd: root, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as ProbeReport;
}

test('as root on this kernel: every check passes and auto runs eBPF', { skip }, () => {
  const report = probe();
  assert.equal(report.mode, 'ebpf');
  assert.deepEqual(report.reasons, []);
  assert.equal(report.ebpf.usable, true);
  const names = report.ebpf.checks.map((c) => c.name);
  for (const expected of [
    'bpf syscall',
    'kernel BTF (/sys/kernel/btf/vmlinux)',
    'cgroup v2 mount',
    'bpffs',
    'program type cgroup_sock_addr',
    'program type sched_cls',
    'map type lru_hash',
    'helper get_netns_cookie (cgroup_sock_addr)',
    'helper set_retval (cgroup_sock_addr)',
    'tcx links',
  ]) {
    assert.ok(names.includes(expected), `${expected} in ${names.join(', ')}`);
  }
  assert.ok(names.some((n) => n.startsWith('attach types cgroup_inet4_connect')));
  // Optional, but this kernel (6.5+) has it: the conformance suite relies on it.
  assert.equal(report.ebpf.checks.find((c) => c.name.startsWith('ending UDP sockets'))?.ok, true);
  for (const c of report.ebpf.checks) assert.ok(c.ok || !c.required, `${c.name}: ${c.detail}`);
});

test('without privilege: eBPF and iptables step down, each with its reason', { skip }, async (t) => {
  const child = await runChild(t, '../dataplane/child-probe-unprivileged.ts', []);
  assert.equal(child.code, 0, child.stderr);
  const report = JSON.parse(child.stdout) as ProbeReport & { uid: number };
  assert.equal(report.uid, 65534);
  assert.equal(report.ebpf.usable, false);
  assert.match(report.reasons[0] ?? '', /^ebpf: privilege to load programs .*EPERM/);
  assert.equal(report.mode, report.iptables.usable ? 'iptables' : 'userspace');
  if (!report.iptables.usable) assert.match(report.reasons[1] ?? '', /^iptables: /);
});

test("the fast path: the kernel can run it, and auto's answer follows the agent's flags, with the reason", { skip }, () => {
  const defaults = probe();
  assert.equal(defaults.fastPath.usable, true, defaults.fastPath.reason);
  assert.equal(defaults.fastPath.auto, 'on');
  assert.equal(defaults.fastPath.autoReason, undefined);
  const otherCni = probe('--cni=false');
  assert.equal(otherCni.fastPath.usable, true);
  assert.equal(otherCni.fastPath.auto, 'off');
  assert.match(otherCni.fastPath.autoReason ?? '', /^--cni=false: /);
  const otherProxy = probe('--service-proxy', 'off');
  assert.equal(otherProxy.fastPath.auto, 'off');
  assert.match(otherProxy.fastPath.autoReason ?? '', /^--service-proxy off: /);
  const text = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/wirelane.ts', 'probe', '--cni=false'], { cwd: root, encoding: 'utf8' });
  assert.match(text.stdout, /^fast path \(--fast-path auto\): off: --cni=false: /m);
  const bad = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/wirelane.ts', 'probe', '--service-proxy', 'ipvs'], { cwd: root, encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--service-proxy: "ipvs" is not one of/);
});
