// The resource types this test server knows, with the API group, kind and scope a real server
// would report for them.

export type ResourceName = 'nodes' | 'peers' | 'services' | 'endpointslices' | 'leases';

export interface ResourceType {
  readonly name: ResourceName;
  readonly group: string; // '' for the core group served under /api/v1
  readonly version: string;
  readonly kind: string;
  readonly namespaced: boolean;
  // Real servers leave apiVersion/kind out of the items of a LIST for built-in types but keep
  // them for custom resources (those are served as unstructured JSON).
  readonly builtIn: boolean;
  // Whether a PUT without metadata.resourceVersion is taken (an unconditional update). Real servers
  // refuse it for Leases (422: "must be specified for an update"): a lease is renewed read-modify-write.
  readonly unconditionalUpdate: boolean;
}

export const resourceTypes: Readonly<Record<ResourceName, ResourceType>> = {
  nodes: { name: 'nodes', group: '', version: 'v1', kind: 'Node', namespaced: false, builtIn: true, unconditionalUpdate: true },
  peers: { name: 'peers', group: 'wirelane.io', version: 'v1alpha1', kind: 'Peer', namespaced: false, builtIn: false, unconditionalUpdate: true },
  services: { name: 'services', group: '', version: 'v1', kind: 'Service', namespaced: true, builtIn: true, unconditionalUpdate: true },
  endpointslices: {
    name: 'endpointslices',
    group: 'discovery.k8s.io',
    version: 'v1',
    kind: 'EndpointSlice',
    namespaced: true,
    builtIn: true,
    unconditionalUpdate: true,
  },
  leases: {
    name: 'leases',
    group: 'coordination.k8s.io',
    version: 'v1',
    kind: 'Lease',
    namespaced: true,
    builtIn: true,
    unconditionalUpdate: false,
  },
};

export function apiVersionOf(type: ResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

export function findResourceType(group: string, version: string, plural: string): ResourceType | undefined {
  return Object.values(resourceTypes).find((t) => t.group === group && t.version === version && t.name === plural);
}
