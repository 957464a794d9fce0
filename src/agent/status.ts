// The agent's `/status` document (`wirelane status`, like `cilium status`): readiness, the service
// proxy mode and why, the mesh's segments and leaders, the WireGuard device's peers, and each loop's
// and each resource's last sync. Built by a pure function from what the agent holds; times are
// absolute (ISO 8601) with the agent's own `time`, so a reader computes ages against the agent's
// clock. No private or preshared key is ever in it: the device status it reads has none (dump.ts),
// and error lines are masked like /healthz's.
import type { ServiceProxyMode } from '../dataplane/service-proxy.js';
import { type SegmentJSON, segmentToJSON } from '../mesh/json.js';
import type { Topology } from '../mesh/types.js';
import { formatEndpoint } from '../model/endpoint.js';
import { formatCidr } from '../model/ip.js';
import type { ResourceStatus, ResourceSyncState, SourceObjectKind } from '../sources/source.js';
import type { WireGuardStatus } from '../wireguard/dump.js';
import type { ServiceProxyChoice } from './service-proxy-choice.js';
import { type LoopName, type LoopSync, safeLine } from './sync-health.js';

export interface AgentStatus {
  readonly node: string;
  readonly version: string;
  /** The agent's clock when it answered. */
  readonly time: string;
  readonly ready: boolean;
  /** Why not ready, as /readyz says it; null when ready. */
  readonly notReady: string | null;
  /** What /healthz answers. */
  readonly healthy: boolean;
  readonly serviceProxy: ServiceProxyStatus;
  /** Null before the first topology. */
  readonly mesh: MeshStatus | null;
  readonly wireguard: WireGuardDeviceStatus;
  readonly syncs: readonly LoopSyncStatus[];
  readonly sources: readonly SourceStatus[];
  /** The latest failed sync of any loop, even when a later one succeeded. */
  readonly lastError: { readonly at: string; readonly loop: LoopName; readonly error: string } | null;
}

export interface ServiceProxyStatus {
  readonly mode: ServiceProxyMode | 'off';
  /** Null with `off`. */
  readonly chosenBy: ServiceProxyChoice['by'] | null;
  /** `auto`: why each faster mode was passed over. */
  readonly reasons: readonly string[];
  /** Programmed by the last successful apply; null before it (or `off`). */
  readonly servicePorts: number | null;
}

export interface MeshStatus {
  /** This node's segment. */
  readonly segment: string;
  readonly leader: boolean;
  readonly granularity: string;
  readonly nodes: readonly { readonly name: string; readonly location: string; readonly segment: string; readonly leader: boolean }[];
  /** As `wirelane topology -o json` has them. */
  readonly segments: readonly SegmentJSON[];
  /** Peer objects (WireGuard hosts outside the cluster) by name. */
  readonly peers: readonly string[];
}

export interface WireGuardDeviceStatus {
  readonly interface: string;
  /** Why the device could not be read; null when it was. */
  readonly error: string | null;
  readonly publicKey: string | null;
  readonly listenPort: number | null;
  readonly peers: readonly WireGuardPeerStatus[];
}

export interface WireGuardPeerStatus {
  /** The segment (`location:east`) or Peer the key belongs to in the topology; null when neither. */
  readonly name: string | null;
  readonly kind: 'segment' | 'peer' | null;
  readonly publicKey: string;
  readonly endpoint: string | null;
  /** Null when no handshake has completed. */
  readonly latestHandshake: string | null;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly allowedIPs: readonly string[];
}

export interface LoopSyncStatus {
  readonly loop: LoopName;
  readonly lastSuccess: string | null;
  readonly lastFailure: { readonly at: string; readonly error: string } | null;
  /** Since when a sync has been due without a successful one. */
  readonly dueSince: string | null;
  readonly runningSince: string | null;
}

export interface SourceStatus {
  readonly resource: SourceObjectKind;
  readonly state: ResourceSyncState;
  /** The last successful list (or read of the cluster file). */
  readonly lastSynced: string | null;
  readonly watchingSince: string | null;
  readonly lastError: string | null;
}

export interface StatusInput {
  readonly node: string;
  readonly version: string;
  /** Epoch ms, on the clock of the loops' times (loop-health.ts). */
  readonly now: number;
  readonly readiness: Readiness;
  readonly healthy: boolean;
  /** Undefined with `--service-proxy off`. */
  readonly serviceProxy: { readonly mode: ServiceProxyMode; readonly chosen: ServiceProxyChoice; readonly servicePorts: number | undefined } | undefined;
  readonly topology: Topology | undefined;
  readonly device: { readonly interface: string } & ({ readonly status: WireGuardStatus } | { readonly error: string });
  readonly loops: readonly LoopSync[];
  readonly resources: readonly ResourceStatus[];
}

export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string };

/** /readyz's rule: every resource synced once, then a first apply in which every step succeeded. */
export function readinessOf(unsyncedResources: readonly string[], applied: boolean): Readiness {
  if (unsyncedResources.length > 0) return { ready: false, reason: `not synced: ${unsyncedResources.join('; ')}` };
  if (!applied) return { ready: false, reason: 'no successful apply yet' };
  return { ready: true };
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export function buildStatus(input: StatusInput): AgentStatus {
  const t = input.topology;
  const failures = input.loops.flatMap((l) => (l.state.lastFailure ? [{ loop: l.loop, ...l.state.lastFailure }] : []));
  const last = failures.reduce<(typeof failures)[number] | undefined>((a, b) => (a === undefined || b.at > a.at ? b : a), undefined);
  const proxy = input.serviceProxy;
  return {
    node: input.node,
    version: input.version,
    time: new Date(input.now).toISOString(),
    ready: input.readiness.ready,
    notReady: input.readiness.ready ? null : input.readiness.reason,
    healthy: input.healthy,
    serviceProxy: {
      mode: proxy?.mode ?? 'off',
      chosenBy: proxy?.chosen.by ?? null,
      reasons: proxy?.chosen.reasons.map(safeLine) ?? [],
      servicePorts: proxy?.servicePorts ?? null,
    },
    mesh: t === undefined ? null : meshStatus(t),
    wireguard: deviceStatus(input.device, t),
    syncs: input.loops.map(({ loop, state }) => ({
      loop,
      lastSuccess: iso(state.lastSuccess),
      lastFailure: state.lastFailure ? { at: new Date(state.lastFailure.at).toISOString(), error: safeLine(state.lastFailure.error) } : null,
      dueSince: iso(state.dueSince),
      runningSince: iso(state.runningSince),
    })),
    sources: input.resources.map((r) => ({
      resource: r.kind,
      state: r.state,
      lastSynced: iso(r.lastSynced),
      watchingSince: iso(r.watchingSince),
      lastError: r.lastError === undefined ? null : safeLine(r.lastError),
    })),
    lastError: last ? { at: new Date(last.at).toISOString(), loop: last.loop, error: safeLine(last.error) } : null,
  };
}

function meshStatus(t: Topology): MeshStatus {
  return {
    segment: t.segment.key,
    leader: t.leader,
    granularity: t.options.granularity,
    nodes: t.segments
      .flatMap((s) => s.nodes.map((n) => ({ name: n.name, location: n.location, segment: s.key, leader: s.leader.name === n.name })))
      .sort((a, b) => a.name.localeCompare(b.name)),
    segments: t.segments.map(segmentToJSON),
    peers: t.peers.map((p) => p.name),
  };
}

function deviceStatus(device: StatusInput['device'], t: Topology | undefined): WireGuardDeviceStatus {
  if ('error' in device) return { interface: device.interface, error: safeLine(device.error), publicKey: null, listenPort: null, peers: [] };
  const owners = new Map<string, { name: string; kind: 'segment' | 'peer' }>();
  for (const s of t?.segments ?? []) owners.set(s.publicKey, { name: s.key, kind: 'segment' });
  for (const p of t?.peers ?? []) owners.set(p.publicKey, { name: p.name, kind: 'peer' });
  const { status } = device;
  return {
    interface: device.interface,
    error: null,
    publicKey: status.publicKey ?? null,
    listenPort: status.listenPort,
    peers: status.peers.map((p) => {
      const owner = owners.get(p.publicKey);
      return {
        name: owner?.name ?? null,
        kind: owner?.kind ?? null,
        publicKey: p.publicKey,
        endpoint: p.endpoint === undefined ? null : formatEndpoint(p.endpoint),
        latestHandshake: p.latestHandshake === undefined ? null : p.latestHandshake.toISOString(),
        rxBytes: Number(p.rxBytes),
        txBytes: Number(p.txBytes),
        allowedIPs: p.allowedIPs.map(formatCidr),
      };
    }),
  };
}
