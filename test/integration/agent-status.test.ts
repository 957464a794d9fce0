// `wirelane status` against running agents (kubernetes source, test API server), run inside a node's
// namespace where the agent's metrics listener is: mode and why, leaders, WireGuard peers with
// handshake ages, service ports; and kube-proxy's sync metrics after an EndpointSlice change.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentStatus } from '../../src/agent/status.js';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { LAST_CHANGE_TRIGGER_TIME } from '../../src/sources/trigger-time.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { CLUSTER_IP, webEndpoints, webService } from '../harness/web-service.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

// b leads location east by annotation; c is alone in west.
const NODES = [
  { name: 'a', location: 'east', pods: 2 },
  { name: 'b', location: 'east', annotations: { 'wirelane.io/leader': 'true' } },
  { name: 'c', location: 'west' },
];

test('wirelane status shows mode and why, leaders, WireGuard peers with handshake ages, service ports; kube-proxy sync metrics follow an EndpointSlice change', { skip }, async (t) => {
  const testStart = Date.now();
  const { cluster, api } = await startMeshCluster(t, { nodes: NODES, source: 'kubernetes', agentArgs: ['--resync-period', '5s'] });
  const a0 = cluster.sandbox.node('a').pods[0]!;
  const a1 = cluster.sandbox.node('a').pods[1]!;
  startEchoServer(cluster.sandbox, a1, 'a1', { tcp: 8080 });
  api!.create('services', webService('ClusterIP'));
  api!.create('services', {
    metadata: { name: 'dns', namespace: 'default' },
    spec: { type: 'ClusterIP', clusterIP: '10.96.0.53', ports: [{ name: 'dns', protocol: 'UDP', port: 53 }, { name: 'dns-tcp', protocol: 'TCP', port: 53 }] },
  });
  api!.create('endpointslices', webEndpoints([a1]));
  for (const n of NODES) cluster.startAgent(n.name);
  await cluster.waitReady();
  const podC = cluster.sandbox.node('c').pods[0]!;
  assert.ok(await cluster.waitPing(a0, podC.ip), 'a pod of a reaches a pod of c (through b and c, the leaders)');

  const run = (node: string, args: readonly string[]) =>
    cluster.sandbox.exec(cluster.sandbox.node(node), process.execPath, [cliPath(), 'status', ...args], { allowFailure: true });
  const statusOf = async (node: string): Promise<AgentStatus> => {
    const r = await run(node, ['-o', 'json']);
    assert.equal(r.exitCode, 0, `status on ${node}: ${r.stderr}`);
    return JSON.parse(r.stdout) as AgentStatus;
  };

  // The mode and the reasons are what `wirelane probe` decides for the same cgroup.
  const probe = await cluster.sandbox.exec(cluster.sandbox.node('b'), process.execPath, [cliPath(), 'probe', '-o', 'json', '--cgroup-root', cluster.sandbox.visibleCgroupOf('b') as string]);
  const decided = JSON.parse(probe.stdout) as { mode: string; reasons: string[] };

  // b: the leader of east, its device's peer is west's leader, with a handshake.
  await until('b to see a handshake with west', async () => (await statusOf('b')).wireguard.peers.some((p) => p.name === 'location:west' && p.latestHandshake !== null), 20_000, 250);
  const b = await statusOf('b');
  assert.equal(b.node, 'b');
  assert.equal(b.ready, true);
  assert.equal(b.notReady, null);
  assert.deepEqual({ mode: b.serviceProxy.mode, by: b.serviceProxy.chosenBy, reasons: b.serviceProxy.reasons }, { mode: decided.mode, by: 'auto', reasons: decided.reasons });
  assert.deepEqual(b.mesh?.segments.map((s) => [s.key, s.leader, s.nodes]), [
    ['location:east', 'b', ['a', 'b']],
    ['location:west', 'c', ['c']],
  ]);
  assert.equal(b.mesh?.leader, true);
  assert.equal(b.serviceProxy.servicePorts, 3);
  const west = b.wireguard.peers.find((p) => p.name === 'location:west');
  assert.ok(west && west.latestHandshake !== null);
  const handshakeAge = Date.parse(b.time) - Date.parse(west.latestHandshake);
  assert.ok(handshakeAge >= 0 && Date.parse(west.latestHandshake) >= testStart - 1000, `a handshake since the test began (age ${handshakeAge} ms)`);
  assert.equal(west.endpoint, `${cluster.sandbox.node('c').underlayIP}:51820`);
  assert.ok(west.rxBytes > 0 && west.txBytes > 0);
  assert.deepEqual(b.syncs.map((s) => [s.loop, s.lastSuccess !== null]), [['mesh', true], ['services', true]]);
  assert.deepEqual(b.sources.map((s) => [s.resource, s.state, s.lastSynced !== null]), [
    ['Node', 'synced', true],
    ['Peer', 'synced', true],
    ['Service', 'synced', true],
    ['EndpointSlice', 'synced', true],
  ]);
  assert.ok(!/PrivateKey|private_key|preshared/i.test(JSON.stringify(b)));

  // a: not a leader; b leads its segment. The text form says so too.
  const a = await statusOf('a');
  assert.equal(a.mesh?.leader, false);
  assert.equal(a.mesh?.segment, 'location:east');
  assert.deepEqual(a.mesh?.nodes.map((n) => [n.name, n.leader]), [['a', false], ['b', true], ['c', true]]);
  const text = await run('b', []);
  assert.equal(text.exitCode, 0, text.stderr);
  assert.equal(text.stderr, '');
  assert.match(text.stdout, /^Ready: +yes$/m);
  assert.match(text.stdout, new RegExp(`^Service proxy: +${decided.mode} \\(auto\\)$`, 'm'));
  assert.match(text.stdout, /^Service ports: +3 programmed$/m);
  assert.match(text.stdout, /^ {2}location:west +\S+:51820 +\d+(s|m\d\ds) ago /m);

  // Unreachable: exit 1, one line naming the address.
  const down = await run('b', ['--agent', 'http://127.0.0.1:1']);
  assert.equal(down.exitCode, 1);
  assert.equal(down.stderr, 'wirelane: agent at http://127.0.0.1:1 unreachable: ECONNREFUSED');

  // A service without endpoints refuses at once; in eBPF mode the socket LB counts it in the kernel.
  assert.deepEqual(await echoRequests(cluster.sandbox, a0, 'tcp', '10.96.0.53', 53, { count: 1, timeoutMs: 2000 }), ['ERROR ECONNREFUSED']);
  const refused = (await cluster.metrics('a')).get('wirelane_sock_lb_refusals_total{reason="no_endpoint"}');
  if (decided.mode === 'ebpf') assert.ok((refused ?? 0) >= 1, `refusals counted: ${refused}`);
  else assert.equal(refused, undefined, 'no socket LB counters outside eBPF mode');

  // kube-proxy's sync metrics on a, after its first syncs.
  const before = await cluster.metrics('a');
  assert.ok((before.get('wirelane_sync_proxy_rules_duration_seconds_count') ?? 0) >= 1);
  const lastSync = before.get('wirelane_sync_proxy_rules_last_timestamp_seconds') ?? 0;
  assert.ok(lastSync * 1000 >= testStart && lastSync * 1000 <= Date.now(), `last sync ${lastSync} within the test`);
  assert.equal(before.get('wirelane_network_programming_duration_seconds_count'), 0, 'slices listed at start are not latency');

  // A malformed trigger time: the slice is still used (the service answers), only the metric skips it.
  const slice = webEndpoints([a1]);
  const annotated = (value: string) => ({ ...slice, metadata: { ...slice.metadata, annotations: { [LAST_CHANGE_TRIGGER_TIME]: value } } });
  api!.update('endpointslices', annotated('yesterday'));
  await until('the bad annotation to be reported', async () => (await cluster.metrics('a')).get('wirelane_invalid_objects_total{kind="EndpointSlice"}') === 1, 20_000, 200);
  const answers = await echoRequests(cluster.sandbox, a0, 'tcp', CLUSTER_IP, 80, { count: 1, timeoutMs: 2000 });
  assert.equal(answers[0]?.split(' ')[0], 'a1', 'the slice with the bad annotation still serves');

  // A valid one: one observation, no longer than from the trigger to when it was seen.
  const triggeredAt = Date.now();
  api!.update('endpointslices', { ...annotated(new Date(triggeredAt).toISOString()), endpoints: [a0, a1].map((p) => ({ addresses: [p.ip], nodeName: p.node, conditions: { ready: true } })) });
  let after = new Map<string, number>();
  await until('a network programming observation', async () => {
    after = await cluster.metrics('a');
    return (after.get('wirelane_network_programming_duration_seconds_count') ?? 0) >= 1;
  }, 20_000, 200);
  const seenAt = Date.now();
  assert.equal(after.get('wirelane_network_programming_duration_seconds_count'), 1);
  const latency = after.get('wirelane_network_programming_duration_seconds_sum') ?? -1;
  assert.ok(latency >= 0 && latency <= (seenAt - triggeredAt) / 1000, `latency ${latency} s within the ${(seenAt - triggeredAt) / 1000} s from trigger to scrape`);
  const queued = after.get('wirelane_sync_proxy_rules_last_queued_timestamp_seconds') ?? 0;
  assert.ok(queued * 1000 >= triggeredAt - 1 && queued * 1000 <= seenAt, `last queued ${queued} after the change`);
  assert.ok((after.get('wirelane_sync_proxy_rules_last_timestamp_seconds') ?? 0) * 1000 >= triggeredAt);
});
