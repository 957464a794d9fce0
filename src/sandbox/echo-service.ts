// The demo's Service: a ClusterIP whose backends are echo servers in every pod of the sandbox.
import { startEchoServer } from './echo/index.js';
import type { MeshCluster } from './mesh-cluster.js';

export const ECHO_SERVICE_IP = '10.96.0.10';

/** Starts an echo server (TCP 8080) in every pod and adds Service demo/echo and its EndpointSlice to the cluster file. */
export async function addEchoService(cluster: MeshCluster): Promise<void> {
  for (const pod of cluster.sandbox.pods) startEchoServer(cluster.sandbox, pod, pod.name, { tcp: 8080 });
  await cluster.editClusterFile((objects) => {
    objects.push(
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'demo' }, spec: { clusterIP: ECHO_SERVICE_IP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'echo-1', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'echo' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
        endpoints: cluster.sandbox.pods.map((p) => ({ addresses: [p.ip], nodeName: p.node, conditions: { ready: true } })),
      },
    );
  });
}
