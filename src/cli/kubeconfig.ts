// Which Kubernetes credentials a command uses: the agent's and the CLI's rule.
import { existsSync } from 'node:fs';
import { UsageError } from './command.js';

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** --kubeconfig, else $KUBECONFIG, else undefined for in-cluster credentials; a usage error without any. */
export function kubeconfigPath(flag: string | undefined, otherwise: string): string | undefined {
  const path = flag ?? process.env['KUBECONFIG'];
  if (path === undefined && !existsSync(IN_CLUSTER_TOKEN)) throw new UsageError(`no Kubernetes credentials: give --kubeconfig, run in a pod, ${otherwise}`);
  return path;
}
