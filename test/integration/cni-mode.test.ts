// CNI mode (issue 13, item 1-2): agents write the configuration list their node's pods are made
// with, by the real plugins; a pod made later from the agent's own file joins the mesh; the file
// follows the Node's pod CIDR, and goes with --clean-up or --cni=false.
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { test } from 'node:test';
import { writeCniConfigFile } from '../../src/cni/conf-file.js';
import { containsIp, parseCidr, parseIp } from '../../src/model/ip.js';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('CNI mode integration tests', AGENT_TOOLS);

const NODES = [
  { name: 'a', location: 'east' },
  { name: 'b', location: 'west' },
];

async function fileOrNothing(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/** Waits until the node's mesh loop has synced successfully `n` more times. */
async function syncs(cluster: MeshCluster, node: string, n: number): Promise<void> {
  const count = async () => (await cluster.metrics(node)).get('wirelane_syncs_total{loop="mesh",result="success"}') ?? 0;
  const start = await count();
  await until(`${n} more mesh syncs on ${node}`, async () => (await count()) >= start + n, 30_000, 200);
}

test('agents write the configuration their pods were made with; a pod made from that file reaches the other node', { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, { nodes: NODES, source: 'file', agentArgs: ['--resync-period', '1s'] });
  assert.equal(cluster.sandbox.podNetwork, 'cni');
  for (const n of NODES) cluster.startAgent(n.name);
  await cluster.waitReady();

  for (const n of NODES) {
    const path = cluster.cniConfFile(n.name);
    assert.equal(await readFile(path, 'utf8'), cluster.sandbox.cniNetworkOf(n.name).text, `${n.name}: the agent's file is the one the pods were made with`);
    assert.equal((await stat(path)).mode & 0o777, 0o644);
  }
  // Resyncs with nothing changed rewrite nothing.
  await syncs(cluster, 'a', 3);
  assert.equal((await cluster.metrics('a')).get('wirelane_writes_total{kind="cni"}'), 1);

  const a = cluster.sandbox.node('a');
  const late = await cluster.sandbox.addPod('a', await readFile(cluster.cniConfFile('a'), 'utf8'));
  assert.ok(containsIp(parseCidr(a.podCIDRs[0]!), parseIp(late.ip)), `${late.ip} is in ${a.podCIDRs[0]}`);
  assert.ok(!a.pods.some((p) => p.ip === late.ip), 'host-local gave it an address of its own');
  const mtu = JSON.parse((await cluster.sandbox.exec(late, 'ip', ['-j', 'link', 'show', late.iface])).stdout) as { mtu: number }[];
  assert.equal(mtu[0]?.mtu, 1420, 'the mesh MTU: underlay 1500 − WireGuard 80');
  const remote = cluster.sandbox.node('b').pods[0]!;
  assert.ok(await cluster.waitPing(late, remote.ip), `${late.name} (${late.ip}) → ${remote.name} across WireGuard`);
  assert.ok(await cluster.waitPing(remote, late.ip), `${remote.name} → ${late.name}`);
  assert.ok(await cluster.waitPing(late, a.pods[0]!.ip), `${late.name} → ${a.pods[0]!.name} on the same bridge`);
});

test('the file follows the Node pod CIDR, goes with --clean-up, and an agent with --cni=false removes one left behind', { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, { nodes: NODES, source: 'file', agentArgs: ['--resync-period', '1s'] });
  cluster.startAgent('a');
  await cluster.waitReady(['a']);
  const path = cluster.cniConfFile('a');
  const first = await readFile(path, 'utf8');

  await cluster.editClusterFile((objects) => {
    const node = objects.find((o) => (o['metadata'] as { name: string }).name === 'a') as { spec: { podCIDR: string } };
    node.spec.podCIDR = '10.244.9.0/24';
  });
  await until('the new pod CIDR in the file', async () => (await fileOrNothing(path))?.includes('"subnet": "10.244.9.0/24"') === true, 30_000, 200);
  assert.equal((await cluster.metrics('a')).get('wirelane_writes_total{kind="cni"}'), 2);

  assert.equal(await cluster.stopAgent('a'), 0);
  assert.equal(await fileOrNothing(path), undefined, '--clean-up (the default) removed it');

  // As a run in CNI mode with --clean-up=false leaves it; the next agent runs beside another CNI.
  await writeCniConfigFile(path, first);
  cluster.startAgent('a', ['--cni=false']);
  await cluster.waitReady(['a']);
  assert.equal(await fileOrNothing(path), undefined, '--cni=false removed the leftover');
  assert.match(await cluster.log('a'), /cni: removed .*10-wirelane\.conflist \(--cni is off\)/);
});
