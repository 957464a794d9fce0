// The cluster's objects read once, for the CLI: one consistent LIST per kind, nothing retried or
// kept. A failed list fails the whole read, naming the resource: a view computed from a partial
// list would show unknown as empty. The one exception is the agent's too: a Peer CRD that is not
// installed (404) means no Peers.
import type { KubeAccess } from './kube-access.js';
import { HEARTBEAT_LEASE_SELECTOR, type HeartbeatLease, decodeLease, leasesPath } from '../lease.js';
import type { SourceObject, SourceObjectKind } from '../source.js';
import type { ApiFailure } from './api-failure.js';
import { RESOURCE_PATHS } from './kubernetes-source.js';
import { ListWatch } from './list-watch.js';
import { LIST_TIMEOUT_MS } from './reflector.js';

export async function listOnce(access: KubeAccess, kinds: readonly SourceObjectKind[]): Promise<SourceObject[]> {
  const abort = new AbortController();
  const listKind = async (kind: SourceObjectKind): Promise<SourceObject[]> => {
    const path = RESOURCE_PATHS[kind];
    try {
      // "" asks for a consistent read (kubectl's), not the watch cache's possibly older copy.
      const { items } = await new ListWatch(access, path).list('', LIST_TIMEOUT_MS, abort.signal);
      return items.map((object) => ({ kind, object }));
    } catch (err) {
      const failure = err as ApiFailure; // ListWatch.list rejects with ApiFailure only
      if (kind === 'Peer' && failure.reason === 'not_found') return [];
      abort.abort(); // the other lists are of no use now
      throw new Error(`cannot list ${kind}s (${path}): ${failure.message}`);
    }
  };
  return (await Promise.all(kinds.map(listKind))).flat();
}

/** The heartbeat Leases in `namespace`, read once; malformed ones are left out (the agents ignore them too). */
export async function listHeartbeatLeases(access: KubeAccess, namespace: string): Promise<HeartbeatLease[]> {
  const path = leasesPath(namespace);
  try {
    const { items } = await new ListWatch(access, path, { labelSelector: HEARTBEAT_LEASE_SELECTOR }).list('', LIST_TIMEOUT_MS, new AbortController().signal);
    return items.flatMap((object) => {
      const lease = decodeLease(object);
      return lease === undefined || 'problem' in lease ? [] : [lease];
    });
  } catch (err) {
    throw new Error(`cannot list heartbeat Leases (${path}): ${(err as ApiFailure).message}`); // ListWatch.list rejects with ApiFailure only
  }
}
