// Where the agent learns what the cluster looks like (the Kubernetes API, a cluster file), and what
// differs between such places: whether the agent publishes its own node there, how its key is checked.
import type { WireGuardKey } from '../model/key.js';
import type { KubeObject } from './objects.js';

export type SourceObjectKind = 'Node' | 'Peer' | 'Service' | 'EndpointSlice';

export interface SourceObject {
  readonly kind: SourceObjectKind;
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

export interface ResourceStatus {
  readonly kind: SourceObjectKind;
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
  start(onChange: (kind?: SourceObjectKind) => void): Promise<void>;
  /** Every object the source currently holds. */
  snapshot(): readonly SourceObject[];
  /** True once every resource has settled (see ResourceStatus.settled). */
  hasSynced(): boolean;
  /** One entry per resource the source reads. */
  resourceStatus(): readonly ResourceStatus[];
  /**
   * How the agent writes its own Node's annotations (its key, addresses and last-seen heartbeat);
   * undefined where someone else writes them (a cluster file: the operator). Without it no node
   * publishes a heartbeat, so none can be judged gone, and the addresses the source holds for this
   * node stand over those the agent discovers.
   */
  readonly publisher: NodePublisher | undefined;
  /**
   * Throws, naming the mismatch, when what the source holds about this node contradicts the agent's
   * key; called once, after the first sync. A source the agent publishes its key to has nothing to check.
   */
  checkOwnKey(node: string, publicKey: WireGuardKey, keyFile: string): void;
  stop(): Promise<void>;
}

/** Where the agent publishes its own Node's annotations. */
export interface NodePublisher {
  /** Writes this node's agent-owned annotations (null removes one). Returns whether anything was written. */
  publishNode(name: string, annotations: Readonly<Record<string, string | null>>): Promise<boolean>;
  /** Removes every agent-written annotation the node has (a clean exit); one line per annotation removed. */
  unpublishNode(name: string): Promise<readonly string[]>;
}
