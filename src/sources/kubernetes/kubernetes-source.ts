// The Kubernetes API as a source: a reflector (list, then watch) on Nodes and Peers (and Services and
// EndpointSlices when a service proxy runs); this node's own annotations go through NodeAnnotations,
// its heartbeats through LeaseHeartbeats.
import type { Logger } from '../../observability/logger.js';
import type { SourceMetrics } from '../../observability/metrics.js';
import { PEER_GROUP, PEER_PLURAL, PEER_VERSION } from '../peer.js';
import type { KubeObject } from '../objects.js';
import type { ClusterSource, ReflectedKind, ResourceStatus, SourceObject, SourceObjectKind } from '../source.js';
import type { KubeAccess } from './kube-access.js';
import { type LeaseHeartbeatOptions, LeaseHeartbeats } from './lease-heartbeats.js';
import { ListWatch } from './list-watch.js';
import { NodeAnnotations } from './node-annotations.js';
import { Reflector } from './reflector.js';

export interface KubernetesSourceOptions {
  readonly metrics?: SourceMetrics;
  /** The random draws of backoff jitter and watch timeouts (tests may pin them). */
  readonly random?: () => number;
  /** The longest wait between two attempts after failures (default 30 s). */
  readonly maxBackoffMs?: number;
  /** Names this client in the API server's logs (and the test server's per-client tallies). */
  readonly userAgent?: string;
  /** The agent's heartbeats as Leases; absent for a client that publishes none (`wirelane connect`). */
  readonly heartbeats?: LeaseHeartbeatOptions;
}

/** Where each kind is listed and watched (cluster-wide). */
export const RESOURCE_PATHS: Readonly<Record<SourceObjectKind, string>> = {
  Node: '/api/v1/nodes',
  Peer: `/apis/${PEER_GROUP}/${PEER_VERSION}/${PEER_PLURAL}`,
  Service: '/api/v1/services',
  EndpointSlice: '/apis/discovery.k8s.io/v1/endpointslices',
};

export class KubernetesSource implements ClusterSource {
  readonly publisher: NodeAnnotations;
  /** The publisher carries every annotation. */
  readonly sharedAnnotations = undefined;
  readonly heartbeats: LeaseHeartbeats | undefined;
  private readonly reflectors: readonly Reflector[];
  private onChange: (kind: ReflectedKind) => void = () => {};
  /** The last snapshot and the reflectors' lists it was made of: rebuilt only after a change. */
  private last: { readonly lists: readonly (readonly KubeObject[])[]; readonly snapshot: readonly SourceObject[] } | undefined;

  constructor(
    access: KubeAccess,
    log: Logger,
    /** Also watch Services and EndpointSlices (only when a service proxy runs: RBAC may not allow it). */
    withServices: boolean,
    options: KubernetesSourceOptions = {},
  ) {
    const kinds: SourceObjectKind[] = withServices ? ['Node', 'Peer', 'Service', 'EndpointSlice'] : ['Node', 'Peer'];
    this.reflectors = kinds.map(
      (kind) =>
        new Reflector({
          kind,
          listWatch: new ListWatch(access, RESOURCE_PATHS[kind], options.userAgent !== undefined ? { userAgent: options.userAgent } : {}),
          log,
          ...(options.metrics ? { metrics: options.metrics } : {}),
          ...(options.random ? { random: options.random } : {}),
          ...(options.maxBackoffMs !== undefined && { maxBackoffMs: options.maxBackoffMs }),
          onChange: () => this.onChange(kind),
        }),
    );
    const nodes = this.reflectors.find((r) => r.kind === 'Node');
    this.publisher = new NodeAnnotations(
      { access, ...(options.userAgent !== undefined && { userAgent: options.userAgent }) },
      (name) => nodes?.objects().find((n) => n.metadata?.name === name),
    );
    this.heartbeats =
      options.heartbeats &&
      new LeaseHeartbeats(options.heartbeats, {
        access,
        log,
        ...(options.metrics && { metrics: options.metrics }),
        ...(options.userAgent !== undefined && { userAgent: options.userAgent }),
        ...(options.random && { random: options.random }),
        ...(options.maxBackoffMs !== undefined && { maxBackoffMs: options.maxBackoffMs }),
        onChange: () => this.onChange('Lease'),
      });
  }

  async start(onChange: (kind: ReflectedKind) => void): Promise<void> {
    this.onChange = onChange;
    this.heartbeats?.start();
    await Promise.all(this.reflectors.map((r) => r.start()));
  }

  snapshot(): readonly SourceObject[] {
    const lists = this.reflectors.map((r) => r.objects());
    if (this.last === undefined || lists.some((list, i) => list !== this.last!.lists[i])) {
      this.last = { lists, snapshot: this.reflectors.flatMap((r, i) => lists[i]!.map((object) => ({ kind: r.kind, object }))) };
    }
    return this.last.snapshot;
  }

  hasSynced(): boolean {
    return this.reflectors.every((r) => r.status().settled);
  }

  resourceStatus(): readonly ResourceStatus[] {
    return this.reflectors.map((r) => r.status());
  }

  // The agent publishes its key itself: nothing here can contradict it.
  checkOwnKey(): void {}

  async stop(): Promise<void> {
    await Promise.all([...this.reflectors.map((r) => r.stop()), this.heartbeats?.stop()]);
  }
}
