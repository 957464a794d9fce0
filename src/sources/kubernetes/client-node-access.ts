// client-node's KubeConfig as a KubeAccess: for what the agent's own client does not serve (exec and
// auth-provider plugins, proxy-url, impersonation; kube-access.ts decides), and for `wirelane connect`,
// which uses client-node's typed API anyway. Imports config.js: load it only after
// registerClientNodeSlim() (client-node-slim.ts), unless the process loads client-node's root itself.
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { KubeAccess } from './kube-access.js';

/** A kubeconfig file, or in-cluster credentials when no path is given. */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  return kc;
}

/** Throws when the kubeconfig has no current cluster. */
export function kubeAccessOfConfig(kc: KubeConfig): KubeAccess {
  const server = kc.getCurrentCluster()?.server;
  if (server === undefined) throw new Error('no current cluster (check current-context and its context)');
  return { server, applyTo: (options) => kc.applyToHTTPSOptions(options) };
}
