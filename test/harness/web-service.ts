// The Service the sandbox's service tests call: default/web, ClusterIP 10.96.0.10:80 (and NodePort
// 30080 unless asked for a plain ClusterIP), to port 8080 of the echo servers in the listed pods.
import type { SandboxPod } from '../../src/sandbox/sandbox.js';
import type { KubeObject } from '../kube-apiserver/store.js';

export const CLUSTER_IP = '10.96.0.10';
export const NODE_PORT = 30080;
export const TARGET_PORT = 8080;

export function webService(type: 'ClusterIP' | 'NodePort' = 'NodePort'): KubeObject {
  const port = { name: 'http', protocol: 'TCP', port: 80, targetPort: TARGET_PORT, ...(type === 'NodePort' && { nodePort: NODE_PORT }) };
  return { metadata: { name: 'web', namespace: 'default' }, spec: { type, clusterIP: CLUSTER_IP, ports: [port] } };
}

/** The Service's one EndpointSlice, every pod ready; update it to move the backends. */
export function webEndpoints(pods: readonly SandboxPod[]): KubeObject {
  return {
    metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: TARGET_PORT }],
    endpoints: pods.map((p) => ({ addresses: [p.ip], nodeName: p.node, conditions: { ready: true } })),
  };
}
