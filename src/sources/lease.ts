// The Leases (coordination.k8s.io/v1) that carry the agents' heartbeats, built and read here (pure).
//
// Two kinds, in one namespace (--lease-namespace, default `wirelane`), both labelled with a location:
// - a node Lease per node, renewed by its agent every half resync period; only the agents of the same
//   location watch them (a label selector), so a renewal reaches its location, not the cluster;
// - a segment Lease per WireGuard segment, renewed by the segment's leader and naming the members it
//   judges alive; every agent watches these: one renewal per segment per period, whatever the size.
// A Lease's resourceVersion moves with every write: that, not the writer's clock, is the heartbeat.
import { createHash } from 'node:crypto';
import type { MeshNode } from '../model/mesh.js';
import { type KubeObject, isRecord, stringMap } from './objects.js';

export const DEFAULT_LEASE_NAMESPACE = 'wirelane';
export const LEASE_KIND_LABEL = 'wirelane.io/lease';
export const LEASE_LOCATION_LABEL = 'wirelane.io/location';
/** The location as written (a label value cannot hold every location name). */
export const LEASE_LOCATION_ANNOTATION = 'wirelane.io/location';
export const LEASE_SEGMENT_ANNOTATION = 'wirelane.io/segment';
/** The members a segment's leader vouches for, comma-separated, sorted. */
export const LEASE_MEMBERS_ANNOTATION = 'wirelane.io/members';

export type LeaseKind = 'node' | 'segment';

export function leasesPath(namespace: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
}

/** Selects the node Leases of one location. */
export function nodeLeaseSelector(location: string): string {
  return `${LEASE_KIND_LABEL}=node,${LEASE_LOCATION_LABEL}=${locationLabelValue(location)}`;
}

export const SEGMENT_LEASE_SELECTOR = `${LEASE_KIND_LABEL}=segment`;
/** Every heartbeat Lease, of both kinds (a one-off read: the CLI). */
export const HEARTBEAT_LEASE_SELECTOR = LEASE_KIND_LABEL;

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** The location as a label value: itself when it is one, else a digest (`h.` and 40 hex digits, never a location's own spelling). */
export function locationLabelValue(location: string): string {
  if (location.length <= 63 && LABEL_VALUE.test(location) && !location.startsWith('h.')) return location;
  return `h.${digest(location).slice(0, 40)}`;
}

export function nodeLeaseName(node: string): string {
  return objectName(`wirelane-node-${node}`, node);
}

/** Segment keys (`location:east`, `node:a`) hold characters a name cannot: sanitised, with a digest for uniqueness. */
export function segmentLeaseName(segmentKey: string): string {
  const readable = segmentKey.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 200);
  return `wirelane-segment-${readable}-${digest(segmentKey).slice(0, 10)}`.replace(/-+/g, '-');
}

/** Names are DNS subdomains of at most 253 characters; node names already are, the prefix may overrun. */
function objectName(name: string, source: string): string {
  return name.length <= 253 ? name : `${name.slice(0, 230)}-${digest(source).slice(0, 16)}`;
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Kubernetes' MicroTime: RFC 3339 with six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

export interface LeaseWrite {
  readonly namespace: string;
  readonly holder: string;
  readonly location: string;
  /** Now, epoch ms (this agent's clock; readers compare versions, never these times). */
  readonly renewMs: number;
  readonly durationSeconds: number;
}

/** The node Lease of `write.holder`, renewed; `current` is the stored one (its version is the precondition). */
export function nodeLease(write: LeaseWrite, current: KubeObject | undefined): KubeObject {
  return lease('node', nodeLeaseName(write.holder), write, {}, current);
}

/** The segment Lease, renewed by its leader `write.holder`, vouching for `members`. */
export function segmentLease(write: LeaseWrite, segmentKey: string, members: readonly string[], current: KubeObject | undefined): KubeObject {
  return lease(
    'segment',
    segmentLeaseName(segmentKey),
    write,
    { [LEASE_SEGMENT_ANNOTATION]: segmentKey, [LEASE_MEMBERS_ANNOTATION]: [...members].sort().join(',') },
    current,
  );
}

function lease(kind: LeaseKind, name: string, write: LeaseWrite, annotations: Record<string, string>, current: KubeObject | undefined): KubeObject {
  const previous = current && decodeLeaseSpec(current.spec);
  const sameHolder = previous?.holder === write.holder;
  const renewTime = microTime(write.renewMs);
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name,
      namespace: write.namespace,
      labels: { [LEASE_KIND_LABEL]: kind, [LEASE_LOCATION_LABEL]: locationLabelValue(write.location) },
      annotations: { [LEASE_LOCATION_ANNOTATION]: write.location, ...annotations },
      ...(current?.metadata?.resourceVersion !== undefined && { resourceVersion: current.metadata.resourceVersion }),
    },
    spec: {
      holderIdentity: write.holder,
      leaseDurationSeconds: write.durationSeconds,
      acquireTime: sameHolder && previous.acquireTime !== undefined ? previous.acquireTime : renewTime,
      renewTime,
      leaseTransitions: (previous?.transitions ?? 0) + (previous !== undefined && !sameHolder ? 1 : 0),
    },
  };
}

/** A heartbeat Lease as read: who renewed it, at which version, and for a segment whom it vouches for. */
export interface HeartbeatLease {
  readonly kind: LeaseKind;
  readonly name: string;
  readonly holder: string;
  /** The resourceVersion: it moves with every renewal. */
  readonly version: string;
  readonly location: string;
  /** Segment Leases only. */
  readonly segment?: string;
  /** Segment Leases only: the members its leader judged alive. */
  readonly members: readonly string[];
  /** spec.renewTime, unix seconds, by the writer's clock; undefined when unreadable. */
  readonly renewedAt?: number;
}

/** One of our Leases, or why it cannot be read (a Lease without our kind label is not ours: undefined). */
export function decodeLease(object: KubeObject): HeartbeatLease | { readonly problem: string } | undefined {
  const labels = object.metadata?.labels ?? {};
  const kind = labels[LEASE_KIND_LABEL];
  if (kind === undefined) return undefined;
  const name = object.metadata?.name ?? '';
  const bad = (why: string) => ({ problem: `Lease "${name}": ${why}` });
  if (kind !== 'node' && kind !== 'segment') return bad(`label ${LEASE_KIND_LABEL}: "${kind}" is neither node nor segment`);
  const version = object.metadata?.resourceVersion;
  if (version === undefined) return bad('no metadata.resourceVersion');
  const spec = decodeLeaseSpec(object.spec);
  if (spec === undefined || spec.holder === '') return bad('no spec.holderIdentity');
  const annotations = stringMap(object.metadata?.annotations) ?? {};
  const location = annotations[LEASE_LOCATION_ANNOTATION] ?? labels[LEASE_LOCATION_LABEL] ?? '';
  const renewed = spec.renewTime === undefined ? NaN : Date.parse(spec.renewTime);
  const common = { name, holder: spec.holder, version, location, ...(Number.isFinite(renewed) && { renewedAt: Math.floor(renewed / 1000) }) };
  if (kind === 'node') return { kind, ...common, members: [] };
  const segment = annotations[LEASE_SEGMENT_ANNOTATION];
  if (segment === undefined) return bad(`no annotation ${LEASE_SEGMENT_ANNOTATION}`);
  const members = (annotations[LEASE_MEMBERS_ANNOTATION] ?? '').split(',').filter((m) => m !== '');
  return { kind, ...common, segment, members };
}

/**
 * Nodes with the latest heartbeat the Leases show as their last-seen (a node's own, or its segment
 * leader's for its members), by the writers' clocks: for a one-off read (the CLI), which cannot watch
 * versions change as the agents do (mesh/liveness.ts).
 */
export function withLeaseLastSeen(nodes: readonly MeshNode[], leases: readonly HeartbeatLease[]): MeshNode[] {
  const latest = new Map<string, number>();
  const saw = (name: string, at: number | undefined): void => {
    if (at !== undefined) latest.set(name, Math.max(latest.get(name) ?? at, at));
  };
  for (const lease of leases) for (const name of new Set([lease.holder, ...lease.members])) saw(name, lease.renewedAt);
  return nodes.map((n) => {
    const renewed = latest.get(n.name);
    return renewed === undefined ? n : { ...n, lastSeen: Math.max(n.lastSeen ?? renewed, renewed) };
  });
}

function decodeLeaseSpec(spec: unknown): { holder: string; acquireTime?: string; renewTime?: string; transitions: number } | undefined {
  if (!isRecord(spec) || typeof spec.holderIdentity !== 'string') return undefined;
  return {
    holder: spec.holderIdentity,
    ...(typeof spec.renewTime === 'string' && { renewTime: spec.renewTime }),
    ...(typeof spec.acquireTime === 'string' && { acquireTime: spec.acquireTime }),
    transitions: typeof spec.leaseTransitions === 'number' && Number.isInteger(spec.leaseTransitions) ? spec.leaseTransitions : 0,
  };
}
