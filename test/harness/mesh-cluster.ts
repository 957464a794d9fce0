// The sandboxed mesh cluster for a test: with the test API server when the source is kubernetes,
// torn down by the test's after-hook (agent logs printed first when the test failed).
import type { TestContext } from 'node:test';
import { MeshCluster, type MeshClusterSpec } from '../../src/sandbox/mesh-cluster.js';
import { type KubeApiServer, startKubeApiServer } from '../kube-apiserver/index.js';

export interface TestMeshCluster {
  readonly cluster: MeshCluster;
  /** Present with the kubernetes source. */
  readonly api: KubeApiServer | undefined;
}

// Node 20.12+ has TestContext.passed at run time; @types/node 20 does not declare it yet.
function failed(t: TestContext): boolean {
  return (t as TestContext & { readonly passed?: boolean }).passed === false;
}

export async function startMeshCluster(t: TestContext, spec: MeshClusterSpec): Promise<TestMeshCluster> {
  const cluster = await MeshCluster.create(spec);
  let api: KubeApiServer | undefined;
  t.after(async () => {
    if (failed(t)) process.stderr.write(`${await cluster.logTails()}\n`);
    await cluster.destroy();
    await api?.close();
  });
  if (spec.source === 'kubernetes') {
    api = await startKubeApiServer({ host: cluster.sandbox.managementAddress });
    await api.writeKubeconfig(cluster.kubeconfig);
    for (const n of spec.nodes) api.create('nodes', cluster.kubernetesNode(n.name));
  }
  return { cluster, api };
}
