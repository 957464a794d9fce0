// Issue 10, item 6: mode changes leave nothing behind. One node's agent is restarted in another
// service proxy mode each time, with --clean-up=false so every run really leaves its state: once the
// new agent is ready, nothing of the earlier modes is on the host (iptables-save in both families,
// bpftool, the pin directory) and the Service answers through the new mode. And `auto`, having
// re-adopted pinned eBPF programs, steps down when the eBPF start fails afterwards and removes them.
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SOCK_LB_PROGRAMS } from '../../src/dataplane/ebpf/index.js';
import { runCommand } from '../../src/host/command.js';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { startServiceNode, waitForService } from '../harness/service-node.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { existingLinks, pinnedLinkIds, serviceState } from '../support/leftovers.js';

const skip = await capabilitySkip('service mode switch tests', [...AGENT_TOOLS, ['bpftool', ['version']]]);

const AGENT_ARGS = ['--resync-period', '5s', '--clean-up=false'];

type ServiceState = Awaited<ReturnType<typeof serviceState>>;

/** Which modes have state on the node. */
function modesPresent(state: ServiceState): string[] {
  const ebpf = state.ebpf.cgroupPrograms.length + state.ebpf.tcFilters.length + state.ebpf.pins.length > 0;
  return [...(ebpf ? ['ebpf'] : []), ...(state.iptables.length > 0 ? ['iptables'] : []), ...(state.userspace.length > 0 ? ['userspace'] : [])];
}

/** SIGTERM; with --clean-up=false the agent leaves everything in place. */
async function stopAgent(cluster: MeshCluster): Promise<void> {
  await cluster.stopAgent('a');
}

test('iptables → ebpf → userspace → off: each start leaves nothing of the earlier modes, and the new mode serves', { skip }, async (t) => {
  const { cluster } = await startServiceNode(t, AGENT_ARGS);
  let ebpfLinks: number[] = [];
  for (const mode of ['iptables', 'ebpf', 'userspace', 'off'] as const) {
    cluster.startAgent('a', ['--service-proxy', mode]);
    await cluster.waitReady(['a']);
    if (mode !== 'off') await waitForService(cluster);
    const state = await serviceState(cluster, 'a');
    assert.deepEqual(modesPresent(state), mode === 'off' ? [] : [mode], `${mode}: ${JSON.stringify(state)}`);
    if (mode === 'ebpf') {
      ebpfLinks = await pinnedLinkIds(cluster, 'a');
      // The socket programs on the cgroup (sock_release among them), tc ingress and egress on the
      // underlay and on the mesh interface.
      assert.equal(ebpfLinks.length, SOCK_LB_PROGRAMS.length + 4, `eBPF links pinned: ${state.ebpf.pins.join(', ')}`);
    } else {
      assert.deepEqual(await existingLinks(ebpfLinks), [], `${mode}: the eBPF run's links are gone`);
    }
    await stopAgent(cluster);
  }
});

test('auto re-adopts pinned eBPF programs, steps down when the tc start fails, and removes what it adopted', { skip }, async (t) => {
  const { cluster } = await startServiceNode(t, AGENT_ARGS);
  cluster.startAgent('a', ['--service-proxy', 'ebpf']);
  await cluster.waitReady(['a']);
  await waitForService(cluster);
  const adoptable = await pinnedLinkIds(cluster, 'a');
  await stopAgent(cluster);

  // A pin that is not a link where the tc ingress link was (what a crashed writer could leave):
  // the socket programs are re-adopted, then attaching the tc data path fails.
  const linksDir = join(cluster.bpffs, 'a', 'links');
  const ingress = readdirSync(linksDir).find((name) => name.startsWith('nodeport-') && name.endsWith('-ingress'));
  assert.ok(ingress, `a tc ingress link pin in ${readdirSync(linksDir).join(', ')}`);
  rmSync(join(linksDir, ingress));
  await runCommand('bpftool', ['map', 'create', join(linksDir, ingress), 'type', 'array', 'key', '4', 'value', '4', 'entries', '1', 'name', 'wl_not_a_link']);

  cluster.startAgent('a', ['--service-proxy', 'auto']);
  await cluster.waitReady(['a']);
  await waitForService(cluster);
  const log = await cluster.log('a');
  assert.match(log, /eBPF socket LB re-adopted from pins/);
  assert.match(log, /ebpf service proxy failed to start; falling back/);
  assert.match(log, /"mode":"iptables"[^\n]*service proxy chosen/);
  const state = await serviceState(cluster, 'a');
  assert.deepEqual(modesPresent(state), ['iptables'], JSON.stringify(state));
  assert.deepEqual(await existingLinks(adoptable), [], 'no program of the adopted data path stays attached');
  await stopAgent(cluster);
});
