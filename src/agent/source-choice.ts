// The cluster source the agent's flags name, wired to its log and metrics. The only place that
// knows the kinds of source: past it, the agent and the mesh reconciler ask a source what it can do.
import type { Logger } from '../observability/logger.js';
import type { AgentMetrics } from '../observability/metrics.js';
import { FileSource } from '../sources/file/file-source.js';
import { registerClientNodeSlim } from '../sources/kubernetes/client-node-slim.js';
import type { ClusterSource } from '../sources/source.js';
import type { AgentConfig } from './config.js';

// The Kubernetes client is loaded only for the Kubernetes source, and then without its generated
// API (client-node-slim.ts): that API's code is ~25 MiB of heap and half a second that the agent
// never uses, and a file source pays for no client at all, nor for the hooks thread.
export async function openClusterSource(config: AgentConfig, log: Logger, metrics: AgentMetrics): Promise<ClusterSource> {
  switch (config.source.kind) {
    case 'file':
      return new FileSource(config.source.path, log, () => metrics.invalidObjects.inc({ kind: 'ClusterFile' }), config.resyncPeriodMs, config.source.annotationsDir);
    case 'kubernetes': {
      registerClientNodeSlim(); // before anything imports client-node's config.js
      const { BACKOFF_CAP_MS } = await import('../sources/kubernetes/backoff.js');
      const { KubernetesSource, loadKubeConfig } = await import('../sources/kubernetes/kubernetes-source.js');
      return new KubernetesSource(loadKubeConfig(config.source.kubeconfig), log, config.serviceProxy !== 'off', {
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
