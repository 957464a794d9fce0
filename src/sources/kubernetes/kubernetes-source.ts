// The Kubernetes API as a source: informers on Nodes and Peers (and Services and EndpointSlices when
// a service proxy runs), and a merge patch for this node's own annotations.
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, KubeConfig, type KubernetesListObject, type KubernetesObject, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from '../../observability/logger.js';
import type { KubeObject } from '../objects.js';
import { PEER_GROUP, PEER_PLURAL, PEER_VERSION } from '../peer.js';
import type { ClusterSource, SourceObject, SourceObjectKind } from '../source.js';
import { ResourceWatch } from './resource-watch.js';

/** A kubeconfig file, or in-cluster credentials when no path is given. */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  return kc;
}

export class KubernetesSource implements ClusterSource {
  readonly kind = 'kubernetes';
  private readonly core: CoreV1Api;
  private readonly watches: { kind: SourceObjectKind; watch: ResourceWatch }[] = [];

  constructor(
    private readonly kubeconfig: KubeConfig,
    private readonly log: Logger,
    /** Also watch Services and EndpointSlices (only when a service proxy runs: RBAC may not allow it). */
    private readonly withServices: boolean,
  ) {
    this.core = kubeconfig.makeApiClient(CoreV1Api);
  }

  async start(onChange: () => void): Promise<void> {
    const custom = this.kubeconfig.makeApiClient(CustomObjectsApi);
    const add = (kind: SourceObjectKind, path: string, list: () => Promise<unknown>): void => {
      const typedList = list as () => Promise<KubernetesListObject<KubernetesObject>>;
      this.watches.push({ kind, watch: new ResourceWatch(this.kubeconfig, path, typedList, onChange, this.log) });
    };
    add('Node', '/api/v1/nodes', () => this.core.listNode());
    add('Peer', `/apis/${PEER_GROUP}/${PEER_VERSION}/${PEER_PLURAL}`, () =>
      custom.listClusterCustomObject({ group: PEER_GROUP, version: PEER_VERSION, plural: PEER_PLURAL }),
    );
    if (this.withServices) {
      const discovery = this.kubeconfig.makeApiClient(DiscoveryV1Api);
      add('Service', '/api/v1/services', () => this.core.listServiceForAllNamespaces());
      add('EndpointSlice', '/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces());
    }
    await Promise.all(this.watches.map(({ watch }) => watch.start()));
  }

  snapshot(): readonly SourceObject[] {
    return this.watches.flatMap(({ kind, watch }) => watch.objects().map((object) => ({ kind, object: object as KubeObject })));
  }

  async publishNode(name: string, annotations: Readonly<Record<string, string | null>>): Promise<boolean> {
    const node = this.watches.find((w) => w.kind === 'Node')?.watch.objects().find((n) => n.metadata?.name === name);
    const current = node?.metadata?.annotations ?? {};
    // Only send what differs from what the informer last saw: idle resyncs write nothing.
    const patch = Object.fromEntries(
      Object.entries(annotations).filter(([k, v]) => (v === null ? k in current : current[k] !== v)),
    );
    if (Object.keys(patch).length === 0) return false;
    await this.core.patchNode(
      { name, body: { metadata: { annotations: patch } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    return true;
  }

  async stop(): Promise<void> {
    await Promise.all(this.watches.map(({ watch }) => watch.stop()));
  }
}
