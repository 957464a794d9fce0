// The agent's HTTP endpoint, and its supervision of wireguard-go.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { runCommand } from '../../src/host/command.js';
import { agentUrl } from '../../src/sandbox/mesh-cluster.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { until } from '../support/wait.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

const NODES = [
  { name: 'a', location: 'east' },
  { name: 'c', location: 'west' },
];

test('the agent serves /healthz, /readyz, /metrics and /graph as DOT and SVG', { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, { nodes: NODES, source: 'file', agentArgs: ['--resync-period', '2s'] });
  cluster.startAgent('a');
  cluster.startAgent('c');
  await cluster.waitReady();
  const get = async (path: string) => (await cluster.sandbox.exec(cluster.sandbox.node('a'), 'curl', ['-sf', agentUrl(path)])).stdout;
  assert.match(await get('/healthz'), /^ok\nmesh: last sync \d+\.\d s ago(, a sync running for \d+\.\d s)?\nservices: last sync \d+\.\d s ago/);
  assert.equal(await get('/readyz'), 'ok');
  assert.match(await get('/graph'), /^digraph wirelane \{[\s\S]*"a" -> "c" \[dir=both\];/);
  assert.match(await get('/graph?format=svg'), /<svg[\s>]/);
  const metrics = await cluster.metrics('a');
  for (const name of ['wirelane_nodes', 'wirelane_peers', 'wirelane_leader', 'wirelane_reconcile_duration_seconds_count', 'wirelane_errors_total{step="wireguard"}', 'wirelane_writes_total{kind="route"}', 'wirelane_syncs_total{loop="mesh",result="success"}', 'process_resident_memory_bytes']) {
    assert.ok(metrics.has(name), `metric ${name}`);
  }
  assert.equal(metrics.get('wirelane_nodes'), 2);
  assert.equal(metrics.get('wirelane_errors_total{step="wireguard"}'), 0);
});

test('when wireguard-go dies, the agent starts a new one and the mesh comes back', { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, { nodes: NODES, source: 'file', agentArgs: ['--resync-period', '30s'] });
  cluster.startAgent('a');
  cluster.startAgent('c');
  await cluster.waitReady();
  const podA = cluster.sandbox.node('a').pods[0]!;
  const podC = cluster.sandbox.node('c').pods[0]!;
  assert.ok(await cluster.waitPing(podA, podC.ip));

  // The wireguard-go the agent on a started: the one process in a's namespace running it.
  const pids = (await runCommand('ip', ['netns', 'pids', cluster.sandbox.node('a').netns])).stdout.split('\n').filter(Boolean);
  const comm = async (pid: string) => (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
  const wireguardGo = [];
  for (const pid of pids) if ((await comm(pid)) === 'wireguard-go') wireguardGo.push(Number(pid));
  assert.equal(wireguardGo.length, 1);
  process.kill(wireguardGo[0]!, 'SIGKILL');

  // Well before the next resync (30 s): the agent reacts to the exit itself.
  await until('the wireguard error to be counted', async () => ((await cluster.metrics('a')).get('wirelane_errors_total{step="wireguard"}') ?? 0) >= 1, 10_000, 100);
  assert.ok(await cluster.waitPing(podA, podC.ip, 20_000), 'traffic flows again through the new device');
});
