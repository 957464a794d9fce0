// /readyz follows the cluster source: not ready, saying which resources and why, until every one has
// listed once; the HTTP server answers during that wait, and nothing is reconciled before it ends.
// The agent's modules are traced: with a plain kubeconfig its Kubernetes source loads no module of
// @kubernetes/client-node at all (its own client, kube-access.ts), nor the module hook.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentUrl } from '../../src/sandbox/mesh-cluster.js';
import { DEFAULT_LEASE_NAMESPACE, nodeLeaseName } from '../../src/sources/lease.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { clientNodeModules, moduleTraceFlags, tracedModules } from '../support/module-trace.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

test('/readyz is not ready while a resource is forbidden, names it, and turns ready once it lists', { skip }, async (t) => {
  const { cluster, api } = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east' },
      { name: 'c', location: 'west' },
    ],
    source: 'kubernetes',
    agentArgs: ['--resync-period', '2s', '--service-proxy', 'off', '--clean-up=false'],
  });
  assert.ok(api);
  api.setResourceAnswer('peers', 'forbidden');
  const trace = join(cluster.dir, 'a-modules');
  cluster.startAgent('a', [], { nodeFlags: moduleTraceFlags(trace) });
  const get = async (path: string): Promise<{ code: number; body: string }> => {
    const out = (await cluster.sandbox.exec(cluster.sandbox.node('a'), 'curl', ['-s', '--max-time', '2', '-w', '\n%{http_code}', agentUrl(path)], { allowFailure: true })).stdout;
    const cut = out.lastIndexOf('\n');
    return { code: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
  };

  await until('the agent to answer /readyz', async () => (await get('/readyz')).code !== 0, 20_000, 200);
  await api.waitForRequests('list', 'peers', 2, 10_000);
  const readyz = await get('/readyz');
  assert.equal(readyz.code, 503);
  assert.match(readyz.body, /^not ready: not synced: Peer \(forbidden: list: 403 Forbidden: peers is forbidden/);
  assert.doesNotMatch(readyz.body, /Node/, 'nodes have synced');
  assert.ok([200, 503].includes((await get('/healthz')).code), '/healthz answers during the first sync');
  const metrics = await get('/metrics');
  assert.match(metrics.body, /^wirelane_source_sync_state\{resource="peers",state="forbidden"\} 1$/m);
  assert.match(metrics.body, /^wirelane_source_sync_state\{resource="nodes",state="synced"\} 1$/m);
  // Nothing is reconciled on a half-known cluster: not even this node's own annotations.
  assert.equal(api.requestCount('patch', 'nodes'), 0);

  api.setResourceAnswer('peers', 'served');
  await cluster.waitReady(['a'], 60_000);
  assert.equal((await get('/readyz')).body, 'ok\n');
  assert.ok(api.requestCount('patch', 'nodes') > 0, 'the agent reconciles once synced');

  // Its annotations and heartbeats went over its own HTTP client, with its own kubeconfig loader.
  await until("a's node Lease", () => api.get('leases', nodeLeaseName('a'), DEFAULT_LEASE_NAMESPACE) !== undefined, 30_000, 200);
  const modules = await tracedModules(trace);
  assert.ok(modules.some((url) => url.endsWith('/dist/sources/kubernetes/kube-access.js')), 'the trace saw the agent load its kubeconfig loader');
  assert.deepEqual(clientNodeModules(modules), [], 'the agent loaded nothing of client-node');
  assert.ok(!modules.some((url) => url.endsWith('/dist/sources/kubernetes/client-node-hooks.js')), 'nor the module hook');
});
