// Mid-upgrade, agents that predate the Lease heartbeats (sources/lease.ts) judge every node by its
// last-seen annotation alone and would age a Lease-heartbeating node out after two resync periods.
// A Lease-heartbeating agent says so on its Node (wirelane.io/heartbeat); while some node runs an
// agent that does not, last-seen goes on being written on a timer for it to read.
//
// The announcement names the last-seen written with it (`lease:1764745000`): the two are always
// written together, so when an agent rolled back to an older version rewrites last-seen on its own
// (the DaemonSet runs --clean-up=false: the announcement stays behind), it no longer holds.
import { ANNOTATIONS, PREFIX } from './annotations.js';
import type { KubeObject } from './objects.js';

const LAST_SEEN = PREFIX + ANNOTATIONS.lastSeen;
const HEARTBEAT = PREFIX + ANNOTATIONS.heartbeat;

/** last-seen at `now` (unix seconds) and the announcement of Lease heartbeats written with it. */
export function lastSeenAnnouncing(now: number): Record<string, string> {
  return { [LAST_SEEN]: String(now), [HEARTBEAT]: `lease:${now}` };
}

/** Whether a node's agent heartbeats through Leases: its announcement names its current last-seen. */
export function announcesLeases(annotations: Readonly<Record<string, string>>): boolean {
  const lastSeen = annotations[LAST_SEEN];
  return lastSeen !== undefined && annotations[HEARTBEAT] === `lease:${lastSeen}`;
}

/**
 * The nodes other than `self` that run an agent (they carry its key) without announcing Lease
 * heartbeats: agents that may judge others by last-seen alone, sorted by name. Only our own prefix
 * counts: a Kilo agent reads kilo.squat.ai/last-seen, which no wirelane agent writes.
 */
export function lastSeenReaders(nodes: readonly KubeObject[], self: string): string[] {
  return nodes
    .filter((node) => {
      const annotations = node.metadata?.annotations ?? {};
      return node.metadata?.name !== self && PREFIX + ANNOTATIONS.key in annotations && !announcesLeases(annotations);
    })
    .map((node) => node.metadata?.name ?? '')
    .sort();
}
