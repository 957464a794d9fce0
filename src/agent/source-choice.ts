// The cluster source the agent's flags name, wired to its log and metrics. The only place that
// knows the kinds of source: past it, the agent and the mesh reconciler ask a source what it can do.
import type { Logger } from '../observability/logger.js';
import type { AgentMetrics } from '../observability/metrics.js';
import { FileSource } from '../sources/file/file-source.js';
import { BACKOFF_CAP_MS } from '../sources/kubernetes/backoff.js';
import { KubernetesSource, loadKubeConfig } from '../sources/kubernetes/kubernetes-source.js';
import type { ClusterSource } from '../sources/source.js';
import type { AgentConfig } from './config.js';

export function openClusterSource(config: AgentConfig, log: Logger, metrics: AgentMetrics): ClusterSource {
  switch (config.source.kind) {
    case 'file':
      return new FileSource(config.source.path, log, () => metrics.invalidObjects.inc({ kind: 'ClusterFile' }), config.resyncPeriodMs);
    case 'kubernetes':
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
