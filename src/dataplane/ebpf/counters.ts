// Per-CPU counter arrays the BPF programs keep (wl_np_stats on tc, wl_sock_stats at the socket
// layer): slot i is names[i], each slot's per-CPU values summed. Read at the agent's scrape from the
// pins, without loading or attaching anything.
import { BpfError, type BpfMap, openPinnedMap } from '../../bpf/index.js';

/** Each named slot summed over CPUs; slots the map lacks (an older, smaller build) count 0. */
export function sumCounters<Name extends string>(map: BpfMap, names: readonly Name[]): Record<Name, bigint> {
  const out = {} as Record<Name, bigint>;
  names.forEach((name, slot) => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(slot);
    const perCpu = slot < map.maxEntries ? map.lookup(key) : undefined;
    let sum = 0n;
    for (let offset = 0; perCpu !== undefined && offset + 8 <= perCpu.length; offset += 8) sum += perCpu.readBigUInt64LE(offset);
    out[name] = sum;
  });
  return out;
}

/** The counters pinned at `path`; undefined when nothing is pinned there (the data path has not started). */
export function readPinnedCounters<Name extends string>(path: string, names: readonly Name[]): Record<Name, bigint> | undefined {
  let map: BpfMap;
  try {
    map = openPinnedMap(path);
  } catch (error) {
    if (error instanceof BpfError && error.code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return sumCounters(map, names);
  } finally {
    map.close();
  }
}
