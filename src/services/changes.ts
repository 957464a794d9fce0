// What changed in the service map since the last apply that succeeded, computed once per sync for
// whichever proxy runs (kube-proxy's change trackers feed every proxier the same way): the ports to
// rewrite, the ports gone, the map-wide fields that moved, and the UDP flows left stale. No I/O: the
// tracker holds the last applied map and what failed applies may have written, nothing else.
//
// Fast on purpose: a one-endpoint change at 10,000 ports × 10 endpoints must reach the eBPF maps
// in a few ms, also when the map is recomputed from scratch (every object new). So ports are
// compared position by position first (the map is sorted: an unchanged port is usually at the same
// index, often the same object, with no key to build and nothing to hash), by key only when they
// do not line up, and field by field as PORT_FIELDS decides (samePort), never by deep equality.
import type { Family } from '../model/ip.js';
import { type ServiceMap, type ServicePort, servicePortKey } from '../model/service.js';
import { type MapField, changedMapFields, nodePortFamilies, samePort } from './port-fields.js';
import { type StaleUdpFlow, StaleUdpFlows } from './stale-udp-flows.js';

export interface ServiceChanges {
  /** The map to program, whole. */
  readonly map: ServiceMap;
  /** servicePortKey of each of `map.servicePorts`, by index. */
  readonly keys: readonly string[];
  /**
   * Ports to write, as indices into `map.servicePorts` (numbers, not [key, port] pairs: 10,000 at a
   * full sync), ascending: those new or changed since the last successful apply, those with a
   * NodePort when the families NodePorts are served in changed, and those an apply that failed
   * since may have half-written.
   */
  readonly updated: readonly number[];
  /** Keys of ports gone since the last successful apply (or written by a failed one and gone now). */
  readonly removed: readonly string[];
  /**
   * No apply succeeded yet: every port is in `updated`, and whatever the proxy finds beyond the
   * map (a previous agent's state) is for it to remove, as `removed` cannot name it.
   */
  readonly full: boolean;
  /** Map-wide fields that differ from the last successful apply (all without one), or that a failed apply may have written. */
  readonly mapFields: Readonly<Record<MapField, boolean>>;
  /** The families this node serves NodePorts in. */
  readonly nodePortFamilies: ReadonlySet<Family>;
  /** UDP conntrack entries (or connected sockets) the change leaves pointing the wrong way. */
  readonly staleUdpFlows: readonly StaleUdpFlow[];
}

/** A map as handed out, with what each comparison reuses. */
interface Snapshot {
  readonly map: ServiceMap;
  readonly keys: readonly string[];
  readonly families: ReadonlySet<Family>;
}

/** What applies that failed since the last success may have written, besides the change to the next map. */
interface Pending {
  readonly keys: Set<string>;
  readonly mapFields: Record<MapField, boolean>;
  /** The map of the last failed apply: its half-written state may have started flows. */
  attempted: Snapshot;
  /** Flows of earlier failed applies' maps that went stale in the failed apply after each. */
  readonly flows: StaleUdpFlows;
}

export class ServiceChangeTracker {
  /** The map of the last apply that succeeded. */
  #applied: Snapshot | undefined;
  #pending: Pending | undefined;
  #applying = false;

  /**
   * Hands `apply` the changes from the last successful apply to `map`. When `apply` resolves, the
   * next changes start from `map`; when it throws, they still start from the last success and also
   * cover whatever this attempt may have half-written (kube-proxy keeps changes until a sync
   * succeeds). One apply at a time.
   */
  async track<R>(map: ServiceMap, apply: (changes: ServiceChanges) => Promise<R>): Promise<R> {
    if (this.#applying) throw new Error('service change tracker: an apply is already running');
    this.#applying = true;
    try {
      const changes = this.#changesTo(map);
      const next: Snapshot = { map, keys: changes.keys, families: changes.nodePortFamilies };
      try {
        const result = await apply(changes);
        this.#applied = next;
        this.#pending = undefined;
        return result;
      } catch (error) {
        this.#remember(changes, next);
        throw error;
      }
    } finally {
      this.#applying = false;
    }
  }

  #changesTo(map: ServiceMap): ServiceChanges {
    const base = this.#applied;
    const pending = this.#pending;
    const families = nodePortFamilies(map);
    const diff = diffPorts(base, map, families);
    const flows = new StaleUdpFlows();
    diff.addStaleFlows(flows);
    const mapFields: Record<MapField, boolean> = base === undefined ? { node: true, nodePortAddresses: true, clusterCIDRs: true } : changedMapFields(base.map, map);
    let { updated, removed } = diff;
    if (pending !== undefined) {
      diffPorts(pending.attempted, map, families).addStaleFlows(flows);
      flows.merge(pending.flows);
      for (const field of Object.keys(mapFields) as MapField[]) mapFields[field] ||= pending.mapFields[field];
      ({ updated, removed } = withPendingKeys(diff, pending.keys));
    }
    return { map, keys: diff.keys, updated, removed, full: base === undefined, mapFields, nodePortFamilies: families, staleUdpFlows: flows.list() };
  }

  #remember(failed: ServiceChanges, attempted: Snapshot): void {
    const pending = this.#pending;
    if (pending === undefined) {
      this.#pending = { keys: touchedKeys(failed, new Set()), mapFields: { ...failed.mapFields }, attempted, flows: new StaleUdpFlows() };
      return;
    }
    touchedKeys(failed, pending.keys);
    for (const field of Object.keys(pending.mapFields) as MapField[]) pending.mapFields[field] ||= failed.mapFields[field];
    diffPorts(pending.attempted, attempted.map, attempted.families).addStaleFlows(pending.flows);
    pending.attempted = attempted;
  }
}

function touchedKeys(changes: ServiceChanges, into: Set<string>): Set<string> {
  for (const i of changes.updated) into.add(changes.keys[i]!);
  for (const key of changes.removed) into.add(key);
  return into;
}

/** `diff` plus the pending keys: rewritten where they are in the map, removed where not. */
function withPendingKeys(diff: PortDiff, keys: ReadonlySet<string>): { updated: number[]; removed: string[] } {
  const updated = new Set(diff.updated);
  const removed = new Set(diff.removed);
  const index = new Map(diff.keys.map((key, i) => [key, i] as const));
  for (const key of keys) {
    const i = index.get(key);
    if (i !== undefined) updated.add(i);
    else removed.add(key);
  }
  return { updated: [...updated].sort((a, b) => a - b), removed: [...removed] };
}

interface PortDiff {
  /** The next map's keys, by index. */
  readonly keys: readonly string[];
  /** Indices of ports new or changed, ascending. */
  readonly updated: number[];
  readonly removed: string[];
  /** Into `flows`: those of the changed and removed ports (none when there was no previous map). */
  addStaleFlows(flows: StaleUdpFlows): void;
}

/**
 * The ports that differ from `previous` (undefined: all are new). With the NodePort families
 * changed, every port with a NodePort counts as changed: its NodePort frontends come or go.
 */
function diffPorts(previous: Snapshot | undefined, map: ServiceMap, families: ReadonlySet<Family>): PortDiff {
  const ports = map.servicePorts;
  const keys = new Array<string>(ports.length);
  const updated: number[] = [];
  /** Parallel to `updated`: the port it was (undefined: new). */
  const was: (ServicePort | undefined)[] = [];
  const familiesChanged = previous !== undefined && !sameFamilies(previous.families, families);
  const changed = (old: ServicePort, p: ServicePort) => (familiesChanged && (p.nodePort !== undefined || old.nodePort !== undefined)) || !samePort(old, p);
  const result = (removed: string[], removedPorts: ServicePort[]): PortDiff => ({
    keys,
    updated,
    removed,
    addStaleFlows(flows) {
      if (previous === undefined) return;
      // Indexed loops: this runs at every sync, mostly over nothing.
      for (let u = 0; u < updated.length; u++) {
        const old = was[u];
        if (old !== undefined) flows.add(old, previous.families, ports[updated[u]!], families);
      }
      for (let r = 0; r < removedPorts.length; r++) flows.add(removedPorts[r]!, previous.families, undefined, families);
    },
  });

  let aligned = previous !== undefined && previous.keys.length === ports.length;
  for (let i = 0; i < ports.length && aligned; i++) {
    const p = ports[i]!;
    const old = previous!.map.servicePorts[i]!;
    const key = p === old ? previous!.keys[i]! : servicePortKey(p);
    if (key !== previous!.keys[i]) aligned = false;
    keys[i] = key;
    if (aligned && changed(old, p)) {
      updated.push(i);
      was.push(old);
    }
  }
  if (aligned) return result([], []);

  const before = new Map<string, ServicePort>();
  if (previous !== undefined) previous.keys.forEach((key, i) => before.set(key, previous.map.servicePorts[i]!));
  updated.length = 0;
  was.length = 0;
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i]!;
    const key = servicePortKey(p);
    keys[i] = key;
    const old = before.get(key);
    if (old === undefined || changed(old, p)) {
      updated.push(i);
      was.push(old);
    }
    before.delete(key);
  }
  return result([...before.keys()], [...before.values()]);
}

function sameFamilies(a: ReadonlySet<Family>, b: ReadonlySet<Family>): boolean {
  return a.size === b.size && [...a].every((f) => b.has(f));
}
