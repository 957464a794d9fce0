// One sandbox node with a Service for tests of what agents leave behind: pod a0 is the client, pod
// a1 runs an echo backend, and ClusterIP 10.96.0.10:80 sends to it, from the test API server.
import type { TestContext } from 'node:test';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { until } from '../support/wait.js';
import { type TestMeshCluster, startMeshCluster } from './mesh-cluster.js';
import { CLUSTER_IP, webEndpoints, webService } from './web-service.js';

export { CLUSTER_IP };

export async function startServiceNode(t: TestContext, agentArgs: readonly string[]): Promise<TestMeshCluster> {
  const started = await startMeshCluster(t, { nodes: [{ name: 'a', location: 'east', pods: 2 }], source: 'kubernetes', agentArgs });
  const { cluster, api } = started;
  const backend = cluster.sandbox.node('a').pods[1]!;
  startEchoServer(cluster.sandbox, backend, 'a1', { tcp: 8080 });
  api!.create('services', webService('ClusterIP'));
  api!.create('endpointslices', webEndpoints([backend]));
  return started;
}

/** Waits until a ClusterIP request from pod a0 is answered by a1. */
export async function waitForService(cluster: MeshCluster): Promise<void> {
  const client = cluster.sandbox.node('a').pods[0]!;
  let last: string[] = [];
  const answered = async () => {
    last = await echoRequests(cluster.sandbox, client, 'tcp', CLUSTER_IP, 80, { count: 1, timeoutMs: 2000 });
    return last[0]?.split(' ')[0] === 'a1';
  };
  await until(`ClusterIP ${CLUSTER_IP}:80 to answer from a1`, answered, 20_000, 250).catch((error: Error) => {
    throw new Error(`${error.message} (last answer: ${last.join(', ') || 'none'})`);
  });
}
