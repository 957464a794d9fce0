// The cluster source the agent's flags name, wired to its log and metrics. The only place that
// knows the kinds of source: past it, the agent and the mesh reconciler ask a source what it can do.
import type { Logger } from '../observability/logger.js';
import type { AgentMetrics } from '../observability/metrics.js';
import { FileSource } from '../sources/file/file-source.js';
import type { ClusterSource } from '../sources/source.js';
import type { AgentConfig } from './config.js';

// The Kubernetes source is loaded only when named; its client is the agent's own over node:https,
// and client-node's KubeConfig only for a kubeconfig that needs it (kube-access.ts). A file source
// pays for neither.
export async function openClusterSource(config: AgentConfig, log: Logger, metrics: AgentMetrics): Promise<ClusterSource> {
  switch (config.source.kind) {
    case 'file':
      return new FileSource(config.source.path, log, () => metrics.invalidObjects.inc({ kind: 'ClusterFile' }), config.resyncPeriodMs, config.source.annotationsDir);
    case 'kubernetes': {
      const [{ BACKOFF_CAP_MS }, { loadKubeAccess }, { KubernetesSource }] = await Promise.all([
        import('../sources/kubernetes/backoff.js'),
        import('../sources/kubernetes/kube-access.js'),
        import('../sources/kubernetes/kubernetes-source.js'),
      ]);
      return new KubernetesSource(await loadKubeAccess(config.source.kubeconfig, log), log, config.serviceProxy !== 'off', {
        metrics: metrics.source,
        // Retry at least once a resync: what changed during an outage lands one resync after it.
        maxBackoffMs: Math.min(BACKOFF_CAP_MS, config.resyncPeriodMs),
        userAgent: `wirelane (node ${config.hostname})`,
        heartbeats: {
          namespace: config.leaseNamespace,
          node: config.hostname,
          renewEveryMs: config.resyncPeriodMs / 2,
          durationSeconds: Math.ceil((2 * config.resyncPeriodMs) / 1000),
        },
      });
    }
  }
}
