// Which endpoints a service port may use, for one IP family, as kube-proxy's EndpointSliceCache and
// CategorizeEndpoints decide: merge the slices, then ready endpoints, else serving-and-terminating
// ones, with topology hints for the cluster-wide list and node-local lists for Local policies.
import type { Family, Ip } from '../model/ip.js';
import type { Protocol, ServiceBackend } from '../model/service.js';
import type { EndpointSlice } from './input.js';

/** An endpoint of one service port after merging slices: one per ip:port. */
export interface Candidate {
  readonly ip: Ip;
  readonly port: number;
  readonly local: boolean;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly zoneHints: readonly string[];
}

/**
 * The endpoints of one service port of one family, from every slice of its Service, joined by the
 * port's (name, protocol) and never resolved through targetPort. An ip:port listed by several slices
 * (slices overlap while the controller moves endpoints) counts once.
 */
export function mergeSliceEndpoints(
  slices: readonly EndpointSlice[],
  family: Family,
  portName: string,
  protocol: Protocol,
  nodeName: string,
): Candidate[] {
  // IPv4 ip:port as one number (48 bits): a string of a bigint cost each of 100,000 endpoints a
  // conversion and ~50 B at every merge.
  const byAddress = new Map<number | string, Candidate>();
  for (const slice of slices) {
    if (slice.family !== family) continue;
    const port = slice.ports.find((p) => p.name === portName && p.protocol === protocol);
    if (port === undefined) continue;
    for (const e of slice.endpoints) {
      const ip = e.address;
      const candidate: Candidate = {
        ip,
        port: port.port,
        local: e.nodeName === nodeName,
        ready: e.ready,
        serving: e.serving,
        terminating: e.terminating,
        zoneHints: e.zoneHints,
      };
      const key = family === 4 ? Number(ip.value) * 65536 + port.port : `${ip.value}:${port.port}`;
      const known = byAddress.get(key);
      if (known === undefined || preferred(candidate, known)) byAddress.set(key, candidate);
    }
  }
  return [...byAddress.values()];
}

// Between two copies of one ip:port: the local one (kube-proxy favours it), then the more usable one;
// otherwise the first slice by name keeps it, so the choice never depends on arrival order.
function preferred(a: Candidate, b: Candidate): boolean {
  if (a.local !== b.local) return a.local;
  return usability(a) > usability(b);
}

function usability(c: Candidate): number {
  if (c.ready) return 2;
  return c.serving && c.terminating ? 1 : 0;
}

export interface CategorizedEndpoints {
  /** Ready endpoints (narrowed by topology hints), else serving-and-terminating ones. */
  readonly cluster: readonly ServiceBackend[];
  /** Ready endpoints on this node, else serving-and-terminating ones on this node. */
  readonly local: readonly ServiceBackend[];
}

/**
 * kube-proxy's CategorizeEndpoints. The terminating fallback is decided separately for each list:
 * a node whose local endpoints are all terminating uses them even when remote ones are ready.
 * Hints are ignored while falling back, as kube-proxy does: that is a best effort not to drop.
 */
export function categorizeEndpoints(candidates: readonly Candidate[], zone: string | undefined): CategorizedEndpoints {
  const sorted = [...candidates].sort(compareCandidates);
  const ready = sorted.filter((c) => c.ready);
  const fallback = (c: Candidate): boolean => c.serving && c.terminating;
  const inZone = zone !== undefined && usesTopology(ready, zone) ? ready.filter((c) => c.zoneHints.includes(zone)) : ready;
  const cluster = inZone.length > 0 ? inZone : sorted.filter(fallback);
  const localReady = ready.filter((c) => c.local);
  const local = localReady.length > 0 ? localReady : sorted.filter((c) => c.local && fallback(c));
  return { cluster: cluster.map(backendOf), local: local.map(backendOf) };
}

// Hints are all or nothing: one ready endpoint without a hint (an EndpointSlice controller that does
// not write them, or a slice written by hand) or no endpoint for this zone means no filtering at all.
function usesTopology(ready: readonly Candidate[], zone: string): boolean {
  return ready.every((c) => c.zoneHints.length > 0) && ready.some((c) => c.zoneHints.includes(zone));
}

function backendOf(c: Candidate): ServiceBackend {
  return { ip: c.ip, port: c.port, local: c.local };
}

function compareCandidates(a: Candidate, b: Candidate): number {
  if (a.ip.value !== b.ip.value) return a.ip.value < b.ip.value ? -1 : 1;
  return a.port - b.port;
}
