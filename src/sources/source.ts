// Where the agent learns what the cluster looks like (the Kubernetes API, a cluster file), and what
// differs between such places: whether the agent publishes its own node there, how its key is checked.
import type { WireGuardKey } from '../model/key.js';
import type { HeartbeatLease } from './lease.js';
import type { KubeObject } from './objects.js';

export type SourceObjectKind = 'Node' | 'Peer' | 'Service' | 'EndpointSlice';

/** What a reflector may hold: the source's objects, or the Leases that carry heartbeats (sources/lease.ts). */
export type ReflectedKind = SourceObjectKind | 'Lease';

export interface SourceObject {
  readonly kind: SourceObjectKind;
  /**
   * As the source holds it (held-object.ts): a Node or Peer trimmed of what no decoder reads; a
   * Service or EndpointSlice only its identity (name, namespace, resourceVersion), its decoded form
   * beside it for decodeServiceInput. The same object until it changes.
   */
  readonly object: KubeObject;
  /** Where it came from, for error messages (the cluster file's document); absent for API objects. */
  readonly where?: string;
}

/**
 * Where a source stands with one kind of object. Only `synced` and `missing` are positive knowledge;
 * in every other state the snapshot holds the last objects known (none before the first sync).
 * - never-synced: no list has succeeded yet.
 * - synced: listed, and the last request about it succeeded.
 * - stale: was synced; the API now fails (5xx, timeouts, broken watches): the last objects stay.
 * - missing: the API answers 404 for the whole resource (a CRD not installed). Before the first sync
 *   this counts as "no objects of this kind"; after it, the last objects stay until a list succeeds.
 * - forbidden: 403 (RBAC). Never read as an empty list: not synced until a list succeeds.
 */
export type ResourceSyncState = 'never-synced' | 'synced' | 'stale' | 'missing' | 'forbidden';

export interface ResourceStatus<K extends ReflectedKind = SourceObjectKind> {
  readonly kind: K;
  readonly state: ResourceSyncState;
  /** A list has succeeded at least once, or the resource was `missing` before it ever listed. */
  readonly settled: boolean;
  /** Why the last request failed, one line; absent while it works. */
  readonly lastError?: string;
  /** Since when (epoch ms) a watch has streamed changes without a break; absent while none does. */
  readonly watchingSince?: number;
  /** When (epoch ms) the last list succeeded (a cluster file: the last read of a valid file); absent before. */
  readonly lastSynced?: number;
}

export interface ClusterSource {
  /**
   * Resolves once every resource is settled (listed successfully once, or explicitly missing), or
   * when the source is stopped first; `onChange` fires on every later change, with the kind of object
   * that changed where the source knows it.
   */
  start(onChange: (kind?: ReflectedKind) => void): Promise<void>;
  /** Every object the source currently holds. */
  snapshot(): readonly SourceObject[];
  /** True once every resource has settled (see ResourceStatus.settled). */
  hasSynced(): boolean;
  /** One entry per resource the source reads. */
  resourceStatus(): readonly ResourceStatus[];
  /**
   * How the agent writes its own Node's annotations (its key, addresses, and last-seen for Kilo's
   * readers); undefined where someone else writes them (a cluster file: the operator). Without it the
   * addresses the source holds for this node stand over those the agent discovers.
   */
  readonly publisher: NodePublisher | undefined;
  /**
   * Where the agent shares only its run-time annotations (SHARED_BY_FILE in annotations.ts: its
   * tunnels-broken mark, discovered endpoints, WireGuard IPs) where it does not own its Node: a
   * cluster file with an annotations directory. The source's addresses for this node still stand
   * over those the agent discovers. Undefined where the publisher carries them, or nothing does.
   */
  readonly sharedAnnotations: NodePublisher | undefined;
  /**
   * Where the agent's heartbeats go and whose it hears; undefined where nobody publishes any (a
   * cluster file): then no node can be judged gone.
   */
  readonly heartbeats: Heartbeats | undefined;
  /**
   * Throws, naming the mismatch, when what the source holds about this node contradicts the agent's
   * key; called once, after the first sync. A source the agent publishes its key to has nothing to check.
   */
  checkOwnKey(node: string, publicKey: WireGuardKey, keyFile: string): void;
  stop(): Promise<void>;
}

/** Where the agent publishes its own Node's annotations. */
export interface NodePublisher {
  /**
   * Writes this node's agent-owned annotations (null removes one) where they differ; `alongside` is
   * written with them when anything is, never alone. Returns whether anything was written.
   */
  publishNode(name: string, annotations: Readonly<Record<string, string | null>>, alongside?: Readonly<Record<string, string>>): Promise<boolean>;
  /** Removes every agent-written annotation the node has (a clean exit); one line per annotation removed. */
  unpublishNode(name: string): Promise<readonly string[]>;
}

/** The segment a leader renews the Lease of, and the members it judges alive. */
export interface LeadSegment {
  readonly key: string;
  readonly location: string;
  readonly members: readonly string[];
}

/**
 * Heartbeats through the API (sources/kubernetes/lease-heartbeats.ts): this node's, renewed every
 * half resync period, and what the agent hears: its own location's nodes, and every segment's leader.
 */
export interface Heartbeats {
  /** Renews this node's heartbeat as a member of `location`, and hears that location's nodes. */
  follow(location: string): void;
  /** Renews `segment`'s heartbeat as its leader, vouching for its members; undefined: leads none. */
  lead(segment: LeadSegment | undefined): void;
  heard(): HeardLeases;
}

export interface HeardLeases {
  /** The followed location's node heartbeats: node name → version (a change is a heartbeat). */
  readonly nodes: ReadonlyMap<string, string>;
  readonly segments: readonly HeartbeatLease[];
  /** Since when (epoch ms) every heartbeat watch has streamed without a break; undefined while one does not. */
  readonly watchingSince: number | undefined;
  /** When (epoch ms) a renewal last failed; absent when none has. */
  readonly renewFailedAt?: number;
}
