// The last topology, handed out again while nothing it depends on has changed: at 1,000 nodes in
// 100 locations computing one allocated ~9 MiB, and an idle agent did it at every resync.
//
// A topology depends on time only through readiness: a node enters it while it was seen within two
// resync periods of `now` (readiness.ts). So the last one still holds when the nodes and Peers are
// the same apart from their lastSeen, the options the same apart from `now`, and every node's
// readiness verdict at the new `now` the same as at the old one. A heartbeat that ages out between
// two resyncs changes a verdict, and the topology is computed again without that node.
//
// Nodes and Peers compare field by field by identity: decoders hand out the same objects until the
// source's object changes (sources/decode-cache.ts). A copy with equal values counts as a change,
// which costs a computation and never a stale topology. Options compare by value (their subnets
// are lists of CIDRs).
import { type Cidr, equalCidr } from '../model/ip.js';
import { sameItems } from '../model/lists.js';
import type { MeshNode } from '../model/mesh.js';
import { isNodeReady } from './readiness.js';
import { computeTopology } from './topology.js';
import type { MeshInput, MeshOptions, Topology } from './types.js';

interface Computed {
  readonly input: MeshInput;
  readonly opts: MeshOptions;
  /** Per node of `input`, in order: whether it was ready at `opts.now`. */
  readonly ready: readonly boolean[];
  readonly topology: Topology;
}

export class TopologyMemo {
  #last: Computed | undefined;

  /**
   * computeTopology(input, opts), or the last topology when it still holds: then its `options.now`
   * and its nodes' `lastSeen` are those it was computed with (nothing reads them from a topology;
   * the verdicts they gave are the same now).
   */
  compute(input: MeshInput, opts: MeshOptions): Topology {
    const ready = input.nodes.map((n) => isNodeReady(n, opts.now, opts.resyncPeriodSeconds));
    const last = this.#last;
    if (last !== undefined && sameInputs(last, input, opts, ready)) return last.topology;
    const topology = computeTopology(input, opts);
    this.#last = { input, opts, ready, topology };
    return topology;
  }
}

function sameInputs(last: Computed, input: MeshInput, opts: MeshOptions, ready: readonly boolean[]): boolean {
  if (!sameFields(last.opts, opts, 'now', sameOption)) return false;
  const [a, b] = [last.input, input];
  if (a.nodes.length !== b.nodes.length || a.peers.length !== b.peers.length) return false;
  for (let i = 0; i < b.nodes.length; i++) {
    if (last.ready[i] !== ready[i] || !sameFields<MeshNode>(a.nodes[i] as MeshNode, b.nodes[i] as MeshNode, 'lastSeen')) return false;
  }
  for (let i = 0; i < b.peers.length; i++) if (!sameFields(a.peers[i] as object, b.peers[i] as object)) return false;
  return true;
}

/** The same own fields holding the same values (`same`: by identity), `except` one. */
function sameFields<T extends object>(a: T, b: T, except?: keyof T, same: (x: unknown, y: unknown) => boolean = Object.is): boolean {
  if (a === b) return true;
  let count = 0;
  for (const key in a) {
    if (!Object.hasOwn(a, key) || key === except) continue;
    if (!Object.hasOwn(b, key) || !same(a[key], b[key])) return false;
    count++;
  }
  for (const key in b) if (Object.hasOwn(b, key) && key !== except) count--;
  return count === 0;
}

/** An option's values: the same primitive, or lists of the same CIDRs. */
function sameOption(a: unknown, b: unknown): boolean {
  return Object.is(a, b) || (Array.isArray(a) && Array.isArray(b) && sameItems<Cidr>(a, b, equalCidr));
}
