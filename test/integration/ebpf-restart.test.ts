// Issue 5 acceptance: the eBPF data path outlives its agent. SIGKILL the agent under steady ClusterIP
// and NodePort traffic: requests keep succeeding while it is down; a restarted agent re-adopts the
// pinned programs without detaching anything and applies the changes made meanwhile.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCommand } from '../../src/host/command.js';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { CLUSTER_IP, NODE_PORT, webEndpoints, webService } from '../harness/web-service.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('eBPF restart test', [...AGENT_TOOLS, ['bpftool', ['version']]]);

test('a SIGKILLed agent leaves its eBPF data path serving, and its successor adopts it', { skip }, async (t) => {
  const { cluster, api } = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east', pods: 2 },
      { name: 'b', location: 'east' },
    ],
    source: 'kubernetes',
    outside: [{ name: 'client', underlayAddress: '172.31.1.1/16' }],
    agentArgs: ['--resync-period', '5s', '--service-proxy', 'ebpf'],
  });
  const [a0, a1] = cluster.sandbox.node('a').pods as [typeof cluster.sandbox.pods[0], typeof cluster.sandbox.pods[0]];
  const b0 = cluster.sandbox.node('b').pods[0]!;
  startEchoServer(cluster.sandbox, b0, 'b0', { tcp: 8080 });
  startEchoServer(cluster.sandbox, a1, 'a1', { tcp: 8080 });
  api!.create('services', webService());
  api!.create('endpointslices', webEndpoints([b0]));
  const agent = cluster.startAgent('a');
  cluster.startAgent('b');
  await cluster.waitReady();

  const nodeA = cluster.sandbox.node('a');
  const clusterIP = () => echoRequests(cluster.sandbox, a0, 'tcp', CLUSTER_IP, 80, { count: 5, timeoutMs: 3000 });
  const nodePort = () => echoRequests(cluster.sandbox, cluster.sandbox.outside[0]!, 'tcp', nodeA.underlayIP, NODE_PORT, { count: 5, timeoutMs: 3000 });
  const names = (lines: string[]) => [...new Set(lines.map((l) => l.split(' ')[0]))];
  await until('the service to answer', async () => names(await clusterIP()).join() === 'b0', 20_000, 250);
  assert.deepEqual(names(await nodePort()), ['b0']);
  // The tc path's counters, read from the kernel at the scrape: the five NodePort connections.
  const metrics = await cluster.metrics('a');
  assert.ok((metrics.get('wirelane_nodeport_flows_total{event="confirmed"}') ?? 0) >= 5, `confirmed flows: ${metrics.get('wirelane_nodeport_flows_total{event="confirmed"}')}`);
  assert.equal(metrics.get('wirelane_nodeport_drops_total{reason="snat_ports_exhausted"}'), 0);

  // What is attached to node a's cgroup: program ids must survive the agent.
  const attached = async () =>
    (await runCommand('bpftool', ['cgroup', 'show', cluster.sandbox.cgroups!.root + '/a'])).stdout.split('\n').filter((l) => /^\d+/.test(l.trim())).map((l) => l.trim().split(/\s+/)[0]).sort();
  const before = await attached();
  assert.ok(before.length >= 4, `socket programs attached: ${before.join(', ')}`);

  process.kill(agent.pid, 'SIGKILL');
  await agent;
  cluster.agents.delete('a');
  assert.deepEqual(names(await clusterIP()), ['b0'], 'ClusterIP keeps working while no agent runs');
  assert.deepEqual(names(await nodePort()), ['b0'], 'NodePort keeps working while no agent runs');
  assert.deepEqual(await attached(), before, 'nothing was detached by the kill');

  // A change while the agent is down: the backend moves to a1.
  api!.update('endpointslices', webEndpoints([a1]));
  assert.deepEqual(names(await clusterIP()), ['b0'], 'the pinned state serves the old endpoints meanwhile');

  cluster.startAgent('a');
  await cluster.waitReady(['a']);
  await until('the restarted agent to apply the change', async () => names(await clusterIP()).join() === 'a1', 20_000, 250);
  const after = await nodePort();
  assert.deepEqual(names(after), ['a1'], after.join(', '));
  assert.deepEqual(await attached(), before, 'the new agent adopted the programs instead of re-attaching');
  assert.match(await cluster.log('a'), /adopt/i);
});
