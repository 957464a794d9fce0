// A kubeconfig that points a client at this test server. As JSON (which is YAML): the agent then loads
// no YAML parser, as with a pod's service account (sources/kubernetes/kube-access.ts).
import { writeFile } from 'node:fs/promises';

export const defaultTestToken = 'wirelane-test-token';

export function kubeconfigYaml(serverUrl: string, token: string = defaultTestToken): string {
  const name = 'wirelane-test';
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    // client-node 1.4.0 refuses an http:// server unless insecure-skip-tls-verify is true
    // (KubeConfig.createAgent: "HTTP protocol is not allowed when skipTLSVerify is not set or false"),
    // and so does the agent's own loader (kube-access.ts).
    clusters: [{ name, cluster: { server: serverUrl, 'insecure-skip-tls-verify': true } }],
    users: [{ name, user: { token } }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    'current-context': name,
  });
}

export async function writeKubeconfig(path: string, serverUrl: string, token?: string): Promise<void> {
  await writeFile(path, kubeconfigYaml(serverUrl, token), { mode: 0o600 });
}
