// kube-proxy's network programming latency (wirelane_network_programming_duration_seconds): from an
// EndpointSlice's last-change-trigger-time to the sync that programmed the change. kube-proxy records
// the trigger time of every slice update it receives after it started and observes each once its
// rules are synced. Here the reconciler sees snapshots, not events: a slice's change is a trigger
// time it has not programmed yet, and two updates between syncs count once, from the latest time.

/** Per slice (`namespace/name`), the trigger time as of the last sync that succeeded. */
export type ProgrammedTriggers = ReadonlyMap<string, number>;

export interface TriggerSlice {
  readonly namespace: string;
  readonly name: string;
  readonly triggeredAt?: number;
}

export interface PendingTriggers {
  /** Trigger times (Unix ms) that a successful sync now programs, one per changed slice. */
  readonly pending: readonly number[];
  /** What `ProgrammedTriggers` becomes once that sync succeeded; a failed sync keeps the old one. */
  readonly programmed: ProgrammedTriggers;
}

/**
 * `since`: when this agent started. Earlier trigger times are ignored, as kube-proxy ignores those
 * before its tracker started: the first list would otherwise report every slice's age as latency.
 */
export function pendingTriggers(programmed: ProgrammedTriggers, slices: readonly TriggerSlice[], since: number): PendingTriggers {
  const pending: number[] = [];
  const next = new Map<string, number>();
  for (const slice of slices) {
    if (slice.triggeredAt === undefined) continue;
    const key = [slice.namespace, slice.name].join('/'); // flat, not a rope: held until the next sync
    next.set(key, slice.triggeredAt);
    if (programmed.get(key) !== slice.triggeredAt && slice.triggeredAt >= since) pending.push(slice.triggeredAt);
  }
  return { pending, programmed: next };
}

/**
 * Seconds from each trigger to `programmedAt`. A trigger after it (the controller's clock ahead of
 * this node's) is left out: a negative latency says nothing about programming.
 */
export function programmingLatencies(pending: readonly number[], programmedAt: number): number[] {
  return pending.filter((at) => at <= programmedAt).map((at) => (programmedAt - at) / 1000);
}
