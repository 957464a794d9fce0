// Valid Kubernetes-shaped objects built from typed values: Nodes with every annotation wirelane reads
// (under either prefix, or both), Peers, Services and EndpointSlices, as `kubectl get -o json` prints them.
import { ANNOTATIONS, type AnnotationSuffix, KILO_PREFIX, PREFIX } from '../../src/sources/annotations.js';
import { DEFAULT_TOPOLOGY_LABEL } from '../../src/sources/node.js';
import { SERVICE_NAME_LABEL } from '../../src/sources/endpoint-slice.js';
import { SERVICE_PROXY_NAME_LABEL } from '../../src/sources/service.js';
import { fc } from './setup.js';
import {
  cidr,
  cidrV4,
  cidrV6,
  dnsName,
  endpoint,
  freeText,
  ip,
  ipv4,
  ipv6,
  namespace,
  nodeName,
  nodePort,
  objectName,
  port,
  portName,
  wireGuardKey,
  zone,
} from './values.js';

export const NODE_DECODE_OPTIONS = { topologyLabel: DEFAULT_TOPOLOGY_LABEL };

const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined });

/** Drops the keys whose value is undefined: the objects are JSON, where a field is there or not. */
function present(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

// ---- Node ----

const cidrList = fc
  .tuple(fc.array(cidr, { maxLength: 3 }), fc.constantFrom(',', ', ', ' , '))
  .map(([list, sep]) => list.join(sep));

// Dual-stack internal-ip / wireguard-ip: one CIDR, or one per family in either order.
const cidrPerFamily = fc.oneof(
  cidr,
  fc.tuple(cidrV4, cidrV6, fc.boolean(), fc.constantFrom(',', ', ')).map(([v4, v6, v6First, sep]) => (v6First ? [v6, v4] : [v4, v6]).join(sep)),
);

const kiloEndpoint = fc.tuple(ip, port).map(([a, p]) => ({ IP: a, Port: p }));
const discoveredEndpoints = fc
  .array(fc.tuple(wireGuardKey, fc.oneof(endpoint, kiloEndpoint)), { maxLength: 3 })
  .map((entries) => JSON.stringify(Object.fromEntries(entries)));

/** A valid value for every annotation wirelane reads. */
const ANNOTATION_VALUES: Readonly<Record<AnnotationSuffix, fc.Arbitrary<string>>> = {
  [ANNOTATIONS.location]: freeText,
  [ANNOTATIONS.leader]: fc.constantFrom('', 'true'),
  [ANNOTATIONS.forceEndpoint]: endpoint,
  [ANNOTATIONS.forceInternalIP]: fc.oneof(cidrPerFamily, fc.constantFrom('', '-')),
  [ANNOTATIONS.persistentKeepalive]: fc.integer({ min: 0, max: 65535 }).map(String),
  [ANNOTATIONS.allowedLocationIPs]: cidrList,
  [ANNOTATIONS.key]: wireGuardKey,
  [ANNOTATIONS.endpoint]: endpoint,
  // One per family as the previous version wrote it, or the first family alone with the other in other-* (coherentFamilies).
  [ANNOTATIONS.internalIP]: cidrPerFamily,
  [ANNOTATIONS.otherInternalIP]: cidr,
  [ANNOTATIONS.wireguardIP]: cidrPerFamily,
  [ANNOTATIONS.otherWireguardIP]: cidr,
  [ANNOTATIONS.lastSeen]: fc.integer({ min: 0, max: 999_999_999_999 }).map(String),
  [ANNOTATIONS.discoveredEndpoints]: discoveredEndpoints,
  // Its presence is the mark; the value says since when.
  [ANNOTATIONS.tunnelsBroken]: fc.integer({ min: 0, max: 999_999_999_999 }).map(String),
  [ANNOTATIONS.granularity]: fc.constantFrom('location', 'data-center', 'full', 'node', 'cross'),
  // `lease:<last-seen>` announces Lease heartbeats; any other value is no announcement (last-seen-readers.ts).
  [ANNOTATIONS.heartbeat]: fc.oneof(fc.integer({ min: 0, max: 999_999_999_999 }).map((t) => `lease:${t}`), freeText),
};

const SUFFIXES = Object.values(ANNOTATIONS);

// Each annotation absent, under wirelane.io/, under kilo.squat.ai/, or under both (a Kilo cluster
// switching over), with independent values.
const annotationEntries = (suffix: AnnotationSuffix): fc.Arbitrary<[string, string][]> => {
  const value = ANNOTATION_VALUES[suffix];
  return fc.oneof(
    fc.constant<[string, string][]>([]),
    value.map((v): [string, string][] => [[PREFIX + suffix, v]]),
    value.map((v): [string, string][] => [[KILO_PREFIX + suffix, v]]),
    fc.tuple(value, value).map(([a, b]): [string, string][] => [
      [PREFIX + suffix, a],
      [KILO_PREFIX + suffix, b],
    ]),
  );
};

// other-internal-ip / other-wireguard-ip hold the family a one-CIDR internal-ip / wireguard-ip lacks:
// a value of the family of any spelling of the first (the decoder falls back to Kilo's when ours is
// bad) is invalid, and left out.
function coherentFamilies(annotations: Record<string, string>): Record<string, string> {
  const familyOf = (text: string) => (text.includes(':') ? 6 : 4);
  for (const [first, other] of [[ANNOTATIONS.internalIP, ANNOTATIONS.otherInternalIP], [ANNOTATIONS.wireguardIP, ANNOTATIONS.otherWireguardIP]] as const) {
    const taken = new Set([PREFIX, KILO_PREFIX].flatMap((p) => (annotations[p + first]?.includes(',') === false ? [familyOf(annotations[p + first] as string)] : [])));
    for (const p of [PREFIX, KILO_PREFIX]) {
      const value = annotations[p + other];
      if (value !== undefined && taken.has(familyOf(value))) delete annotations[p + other];
    }
  }
  return annotations;
}

const nodeAnnotations: fc.Arbitrary<Record<string, string>> = fc
  .tuple(fc.dictionary(freeText, freeText, { maxKeys: 2 }), fc.tuple(...SUFFIXES.map(annotationEntries)))
  .map(([others, ours]) => coherentFamilies({ ...others, ...Object.fromEntries(ours.flat()) }));

const podCIDRs = fc.oneof(
  fc.constant(undefined),
  fc.record({ podCIDR: cidrV4 }),
  fc.record({ podCIDRs: fc.tuple(cidrV4, cidrV6) }),
  fc.tuple(cidrV4, cidrV6).map(([v4, v6]) => ({ podCIDR: v4, podCIDRs: [v4, v6] })),
);

export const nodeObject = fc
  .tuple(objectName, nodeAnnotations, optional(freeText), podCIDRs)
  .map(([name, annotations, region, spec]) =>
    present({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, annotations, ...(region !== undefined && { labels: { [DEFAULT_TOPOLOGY_LABEL]: region } }) },
      spec,
    }),
  );

// ---- Peer ----

const peerEndpoint = fc.oneof(
  endpoint,
  fc.tuple(ip, port).map(([a, p]) => ({ dnsOrIP: { ip: a }, port: p })),
  fc.tuple(dnsName, port).map(([h, p]) => ({ dnsOrIP: { dns: h }, port: p })),
);

export const peerObject = fc
  .tuple(objectName, fc.array(cidr, { minLength: 1, maxLength: 3 }), wireGuardKey, optional(peerEndpoint), optional(fc.integer({ min: 0, max: 65535 })), optional(wireGuardKey))
  .map(([name, allowedIPs, publicKey, ep, keepalive, psk]) => ({
    apiVersion: 'wirelane.io/v1alpha1',
    kind: 'Peer',
    metadata: { name },
    spec: present({ allowedIPs, publicKey, endpoint: ep, persistentKeepalive: keepalive, presharedKey: psk }),
  }));

// ---- Service ----

const protocol = optional(fc.constantFrom('TCP', 'UDP', 'SCTP'));

// Ports unique by number/protocol and by name; a lone port may go unnamed.
const servicePorts = (withNodePorts: boolean): fc.Arbitrary<Record<string, unknown>[]> =>
  fc
    .uniqueArray(fc.tuple(port, protocol, withNodePorts ? optional(nodePort) : fc.constant(undefined)), {
      maxLength: 3,
      selector: ([p, proto]) => `${p}/${proto ?? 'TCP'}`,
    })
    .chain((ports) =>
      fc.tuple(fc.constant(ports), fc.uniqueArray(portName, { minLength: ports.length, maxLength: ports.length }), fc.boolean()),
    )
    .map(([ports, names, unnamed]) =>
      ports.map(([p, proto, np], i) =>
        present({ name: unnamed && ports.length === 1 ? undefined : names[i], protocol: proto, port: p, nodePort: np }),
      ),
    );

const clusterIPs = fc.oneof(
  fc.constant({}),
  fc.constant({ clusterIP: 'None' }),
  ip.map((a) => ({ clusterIP: a })),
  ipv4.map((a) => ({ clusterIPs: [a] })),
  fc.tuple(ipv4, ipv6).map(([a, b]) => ({ clusterIP: a, clusterIPs: [a, b] })),
  fc.tuple(ipv6, ipv4).map(([a, b]) => ({ clusterIPs: [a, b] })),
);

const affinity = fc.oneof(
  fc.constant({}),
  fc.constant({ sessionAffinity: 'None' }),
  optional(fc.integer({ min: 1, max: 86400 })).map((timeoutSeconds) =>
    timeoutSeconds === undefined
      ? { sessionAffinity: 'ClientIP' }
      : { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds } } },
  ),
);

const ingress = fc.array(
  fc.oneof(
    fc.tuple(ip, optional(fc.constantFrom('VIP', 'Proxy'))).map(([a, ipMode]) => present({ ip: a, ipMode })),
    dnsName.map((hostname) => ({ hostname })),
  ),
  { maxLength: 2 },
);

export const serviceObject = fc
  .record({
    name: objectName,
    namespace: optional(namespace),
    proxyName: optional(fc.constantFrom('wirelane', 'other')),
    type: optional(fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName')),
    clusterIPs,
    affinity,
    externalIPs: optional(fc.array(ip, { maxLength: 2 })),
    externalTrafficPolicy: optional(fc.constantFrom('Cluster', 'Local', 'Global')),
    internalTrafficPolicy: optional(fc.constantFrom('Cluster', 'Local')),
    healthCheckNodePort: optional(nodePort),
    sourceRanges: optional(fc.array(fc.tuple(cidr, fc.constantFrom('', ' ')).map(([c, pad]) => pad + c + pad), { maxLength: 2 })),
    ingress: optional(ingress),
  })
  .chain((s) => servicePorts(s.type === 'NodePort' || s.type === 'LoadBalancer').map((ports) => ({ ...s, ports })))
  .map((s) =>
    present({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: present({
        name: s.name,
        namespace: s.namespace,
        labels: s.proxyName === undefined ? undefined : { [SERVICE_PROXY_NAME_LABEL]: s.proxyName },
      }),
      spec: present({
        type: s.type,
        ...s.clusterIPs,
        ...s.affinity,
        ports: s.ports,
        externalIPs: s.externalIPs,
        externalTrafficPolicy: s.externalTrafficPolicy,
        internalTrafficPolicy: s.internalTrafficPolicy,
        healthCheckNodePort: s.healthCheckNodePort,
        loadBalancerSourceRanges: s.sourceRanges,
      }),
      status: s.ingress === undefined ? undefined : { loadBalancer: { ingress: s.ingress } },
    }),
  );

// ---- EndpointSlice ----

const slicePorts = fc
  .uniqueArray(fc.tuple(fc.oneof(portName, fc.constant('')), protocol, optional(port)), { maxLength: 3, selector: ([name]) => name })
  .map((ports) => ports.map(([name, proto, p]) => present({ name, protocol: proto, port: p })));

const sliceEndpoint = (family: 4 | 6): fc.Arbitrary<Record<string, unknown>> =>
  fc
    .record({
      addresses: fc.array(family === 4 ? ipv4 : ipv6, { minLength: 1, maxLength: 2 }),
      conditions: optional(fc.record({ ready: fc.boolean(), serving: fc.boolean(), terminating: fc.boolean() }, { requiredKeys: [] })),
      nodeName: optional(nodeName),
      zone: optional(zone),
      hints: optional(fc.record({ forZones: fc.array(zone.map((name) => ({ name })), { maxLength: 2 }) })),
    })
    .map(present);

const sliceMeta = fc
  .tuple(objectName, optional(namespace), objectName)
  .map(([name, ns, service]) => present({ name, namespace: ns, labels: { [SERVICE_NAME_LABEL]: service } }));

export const endpointSliceObject = fc
  .constantFrom(4 as const, 6 as const)
  .chain((family) =>
    fc.record({
      metadata: sliceMeta,
      family: fc.constant(family),
      ports: optional(slicePorts),
      endpoints: optional(fc.array(sliceEndpoint(family), { maxLength: 3 })),
    }),
  )
  .map(({ metadata, family, ports, endpoints }) =>
    present({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata, addressType: `IPv${family}`, ports, endpoints }),
  );

/** Ignored by design (no proxy forwards to names), whatever its endpoints hold. */
export const fqdnSliceObject = fc
  .tuple(sliceMeta, fc.array(dnsName, { maxLength: 2 }))
  .map(([metadata, names]) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata,
    addressType: 'FQDN',
    endpoints: names.map((n) => ({ addresses: [n] })),
  }));
