// The Kubernetes API as a source: a reflector (list, then watch) on Nodes and Peers (and Services and
// EndpointSlices when a service proxy runs), and a merge patch for this node's own annotations.
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from '../../observability/logger.js';
import type { SourceMetrics } from '../../observability/metrics.js';
import { PEER_GROUP, PEER_PLURAL, PEER_VERSION } from '../peer.js';
import type { ClusterSource, ResourceStatus, SourceObject, SourceObjectKind } from '../source.js';
import { ListWatch } from './list-watch.js';
import { Reflector } from './reflector.js';
import { defaultCommandTimeoutMs, withTimeout } from '../../host/timeouts.js';

/** A kubeconfig file, or in-cluster credentials when no path is given. */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  return kc;
}

export interface KubernetesSourceOptions {
  readonly metrics?: SourceMetrics;
  /** The random draws of backoff jitter and watch timeouts (tests may pin them). */
  readonly random?: () => number;
  /** The longest wait between two attempts after failures (default 30 s). */
  readonly maxBackoffMs?: number;
}

const PATHS: Readonly<Record<SourceObjectKind, string>> = {
  Node: '/api/v1/nodes',
  Peer: `/apis/${PEER_GROUP}/${PEER_VERSION}/${PEER_PLURAL}`,
  Service: '/api/v1/services',
  EndpointSlice: '/apis/discovery.k8s.io/v1/endpointslices',
};

export class KubernetesSource implements ClusterSource {
  readonly kind = 'kubernetes';
  private readonly core: CoreV1Api;
  private readonly reflectors: readonly Reflector[];
  private onChange: () => void = () => {};

  constructor(
    private readonly kubeconfig: KubeConfig,
    log: Logger,
    /** Also watch Services and EndpointSlices (only when a service proxy runs: RBAC may not allow it). */
    withServices: boolean,
    options: KubernetesSourceOptions = {},
  ) {
    this.core = kubeconfig.makeApiClient(CoreV1Api);
    const kinds: SourceObjectKind[] = withServices ? ['Node', 'Peer', 'Service', 'EndpointSlice'] : ['Node', 'Peer'];
    this.reflectors = kinds.map(
      (kind) =>
        new Reflector({
          kind,
          listWatch: new ListWatch(kubeconfig, PATHS[kind]),
          log,
          ...(options.metrics ? { metrics: options.metrics } : {}),
          ...(options.random ? { random: options.random } : {}),
          ...(options.maxBackoffMs !== undefined && { maxBackoffMs: options.maxBackoffMs }),
          onChange: () => this.onChange(),
        }),
    );
  }

  async start(onChange: () => void): Promise<void> {
    this.onChange = onChange;
    await Promise.all(this.reflectors.map((r) => r.start()));
  }

  snapshot(): readonly SourceObject[] {
    return this.reflectors.flatMap((r) => r.objects().map((object) => ({ kind: r.kind, object })));
  }

  hasSynced(): boolean {
    return this.reflectors.every((r) => r.status().settled);
  }

  resourceStatus(): readonly ResourceStatus[] {
    return this.reflectors.map((r) => r.status());
  }

  async publishNode(name: string, annotations: Readonly<Record<string, string | null>>): Promise<boolean> {
    const node = this.reflectors.find((r) => r.kind === 'Node')?.objects().find((n) => n.metadata?.name === name);
    const current = node?.metadata?.annotations ?? {};
    // Only send what differs from what the reflector last saw: idle resyncs write nothing.
    const patch = Object.fromEntries(
      Object.entries(annotations).filter(([k, v]) => (v === null ? k in current : current[k] !== v)),
    );
    if (Object.keys(patch).length === 0) return false;
    // Bounded like every call out of the process: a hung API server costs this step, not the loop.
    await withTimeout(
      this.core.patchNode({ name, body: { metadata: { annotations: patch } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      defaultCommandTimeoutMs(),
      'kubernetes api',
      `PATCH node ${name}`,
    );
    return true;
  }

  async stop(): Promise<void> {
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }
}
