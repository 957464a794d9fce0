// --annotations-dir on the file source: each agent writes its own node's shared annotations there
// (0644, only what it learns at run time: a leader's WireGuard IPs), every agent reads the others',
// a leader's tunnels-broken mark moves leadership through it, and a clean exit (--clean-up) removes the
// node's file, as `wirelane cleanup --annotations-dir` does. The demo (test/integration/demo.test.ts)
// proves the same failover on the routed world, and a Peer reaching a NATed location through it.
import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { dropWireGuardUdp, metricOf, startMeshCluster } from '../harness/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

test("agents share WireGuard IPs and a tunnels-broken mark through the directory (0644), the mark moves leadership, and a file goes on a clean exit or with wirelane cleanup", { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east' },
      { name: 'b', location: 'east' },
      { name: 'c', location: 'west' },
    ],
    source: 'file',
    agentArgs: ['--resync-period', '3s'],
  });
  const dir = join(cluster.dir, 'annotations');
  // c leaves everything on exit: `wirelane cleanup --annotations-dir` removes its file then.
  for (const n of ['a', 'b', 'c']) cluster.startAgent(n, ['--annotations-dir', dir, ...(n === 'c' ? ['--clean-up=false'] : [])]);
  await cluster.waitReady();
  assert.ok(await cluster.waitPing(cluster.sandbox.node('b').pods[0]!, cluster.sandbox.node('c').pods[0]!.ip), 'the mesh works');

  const shared = async (node: string): Promise<Record<string, string>> =>
    (JSON.parse(await readFile(join(dir, `${node}.json`), 'utf8')) as { annotations: Record<string, string> }).annotations;
  // a leads east (first by name), c west; b does not lead and shares nothing but that it runs.
  await until('every agent to write its file', async () => (await readdir(dir)).sort().join() === 'a.json,b.json,c.json', 60_000, 200);
  await until("the leaders' WireGuard IPs", async () => (await shared('a'))['wirelane.io/wireguard-ip'] !== undefined && (await shared('c'))['wirelane.io/wireguard-ip'] !== undefined, 60_000, 200);
  assert.deepEqual(await shared('b'), {}, 'b leads nothing, is not marked, discovered nothing');
  for (const node of ['a', 'c']) {
    const annotations = await shared(node);
    assert.deepEqual(Object.keys(annotations), ['wirelane.io/wireguard-ip'], `${node}: only what it learned at run time`);
    assert.match(annotations['wirelane.io/wireguard-ip']!, /^10\.4\.\d+\.\d+\/16$/);
  }
  for (const node of ['a', 'b', 'c']) assert.equal((await stat(join(dir, `${node}.json`))).mode & 0o777, 0o644);
  assert.deepEqual((await readdir(dir)).filter((f) => !f.endsWith('.json')), [], 'no temporary file left');

  // A mark crosses over: a's WireGuard UDP is dropped (both ways, on a itself), a finds c silent and
  // marks itself in its file, b reads it and takes over east, c re-points east at b.
  const restore = await dropWireGuardUdp(t, cluster, 'a');
  await until("a's mark in its file", async () => (await shared('a'))['wirelane.io/tunnels-broken'] !== undefined, 120_000, 200);
  await until('b to lead east', async () => (await metricOf(cluster, 'b', 'wirelane_leader')) === 1, 120_000, 200);
  await until('a to step down', async () => (await metricOf(cluster, 'a', 'wirelane_leader')) === 0, 60_000, 200);
  assert.ok(await cluster.waitPing(cluster.sandbox.node('b').pods[0]!, cluster.sandbox.node('c').pods[0]!.ip, 60_000), 'b reaches c through itself');
  // Written at the end of the reconcile that made it lead.
  await until('b, leading, to share its WireGuard IP', async () => /^10\.4\./.test((await shared('b'))['wirelane.io/wireguard-ip'] ?? ''), 60_000, 200);
  // c, alone in west, may have marked itself too (the drop silenced it both ways): it kept leading.
  assert.equal(await metricOf(cluster, 'c', 'wirelane_leader'), 1);
  await restore();

  assert.equal(await cluster.stopAgent('b'), 0, 'b exits cleanly');
  assert.deepEqual((await readdir(dir)).sort(), ['a.json', 'c.json'], "b's file went with it");
  for (const n of ['a', 'c']) assert.equal(await cluster.stopAgent(n), 0);
  assert.deepEqual(await readdir(dir), ['c.json'], "a's file went with it; c's stays (--clean-up=false)");

  const placement = ['--interface', cluster.interfaceOf('c'), '--bpf-dir', join(cluster.bpffs, 'c'), '--cgroup-root', cluster.sandbox.visibleCgroupOf('c')!];
  const cniConf = ['--cni-conf-dir', dirname(cluster.cniConfFile('c')), '--cni-conf-name', basename(cluster.cniConfFile('c'))];
  const cleanup = () =>
    cluster.sandbox.exec(cluster.sandbox.node('c'), process.execPath, [cliPath(), 'cleanup', ...placement, ...cniConf, '--annotations-dir', dir, '--hostname', 'c'], { allowFailure: true });
  const first = await cleanup();
  assert.equal(first.exitCode, 0, first.stderr);
  assert.ok(first.stdout.split('\n').includes(`removed annotations: ${join(dir, 'c.json')}`), first.stdout);
  assert.deepEqual(await readdir(dir), [], 'wirelane cleanup removed it');
  const again = await cleanup();
  assert.equal(again.exitCode, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /annotations/, 'nothing left to remove');
});
