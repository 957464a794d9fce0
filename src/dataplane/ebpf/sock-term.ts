// Ending connected UDP sockets that point at a backend a change removed (bpf/sock_term.bpf.c):
// the eBPF mode's counterpart of kube-proxy's conntrack deletions, by the same filters
// (services/stale-udp-flows.ts). The iterator walks one network namespace per run, so it runs once in
// every namespace a process of this host lives in; the socket cookie in wl_sock_rev keeps it to
// sockets the socket LB translated.
import { readdirSync, statSync } from 'node:fs';
import type { ConntrackFilter } from '../../host/conntrack.js';
import { BpfError, type BpfMap, BpfObject, bpfObjectPath, openPinnedMap } from '../../bpf/index.js';
import { EntryBatch, MAP_NAMES, checkMapLayouts, writeAddress } from './codec.js';
import { MAPS, SOCK_TERM_KEY } from './layouts.js';
import { mapPinPath } from './sock-lb.js';

const TERM_MAP = 'wl_sock_term';
const TERM_KEY = SOCK_TERM_KEY.fields;
const TERM_PROGRAM = 'sock_term_udp';

/** The wl_sock_term keys for these filters (UDP only: other protocols are left to end on their own). */
export function termKeys(filters: readonly ConntrackFilter[]): EntryBatch {
  const batch = new EntryBatch(SOCK_TERM_KEY.size, MAPS.wl_sock_term.value.size);
  for (const f of filters) {
    if (f.protocol !== 'udp' || f.origDstPort === undefined) continue;
    // add() first: it may replace the buffer.
    const at = batch.add();
    const key = at * batch.keySize;
    if (f.origDst !== undefined) writeAddress(batch.keys, key + TERM_KEY.frontend.offset, f.origDst);
    if (f.replySrc !== undefined) writeAddress(batch.keys, key + TERM_KEY.backend.offset, f.replySrc);
    batch.keys.writeUInt16BE(f.origDstPort, key + TERM_KEY.port.offset);
    batch.keys.writeUInt8(f.family, key + TERM_KEY.family.offset);
    batch.values.writeUInt32LE(1, at * batch.valueSize);
  }
  return batch;
}

/** One /proc/PID/ns/net path per network namespace of this host's processes (pid namespace permitting). */
function networkNamespaces(proc = '/proc'): string[] {
  const seen = new Set<string>();
  const paths: string[] = [];
  for (const entry of readdirSync(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    const path = `${proc}/${entry}/ns/net`;
    try {
      const st = statSync(path);
      const id = `${st.dev}:${st.ino}`;
      if (seen.has(id)) continue;
      seen.add(id);
      paths.push(path);
    } catch {
      // The process ended while we looked.
    }
  }
  return paths;
}

export interface TermReport {
  readonly sockets: number;
  readonly namespaces: number;
}

export class SockTerminator {
  readonly #object: BpfObject;
  readonly #term: BpfMap;

  private constructor(object: BpfObject, term: BpfMap) {
    this.#object = object;
    this.#term = term;
  }

  /**
   * Loads the iterator over the socket LB's pinned maps in `pinDir` (which must exist). Throws
   * a BpfError when the kernel lacks UDP iterators or bpf_sock_destroy (before 6.5). The verifier
   * runs on the thread pool (BpfObject.loadAsync).
   */
  static async load(pinDir: string, objectPath?: string): Promise<SockTerminator> {
    const object = BpfObject.open(objectPath ?? bpfObjectPath('sock_term'));
    try {
      checkMapLayouts(object.maps());
      // Every shared map the header declares is reused from its pin, never created anew, with the
      // size the socket LB gave it (libbpf re-uses a pin only when the sizes match).
      for (const name of Object.values(MAP_NAMES)) {
        const path = mapPinPath(pinDir, name);
        const pinned = openPinnedMap(path);
        const size = pinned.maxEntries;
        pinned.close();
        object.setMaxEntries(name, size);
        object.setMapPinPath(name, path);
      }
      await object.loadAsync();
      const term = object.map(TERM_MAP);
      if (term.keySize !== SOCK_TERM_KEY.size) throw new Error(`${TERM_MAP}: key size ${term.keySize}, expected ${SOCK_TERM_KEY.size}`);
      return new SockTerminator(object, term);
    } catch (error) {
      object.close();
      throw error;
    }
  }

  /**
   * Ends the connected UDP sockets these filters match, in every network namespace. The keys go in
   * chunks the map can hold, and each chunk is deleted whatever happens: a key left behind would
   * end healthy sockets of a later backend at the same address.
   */
  terminate(filters: readonly ConntrackFilter[]): TermReport {
    let sockets = 0;
    let namespaces = 0;
    for (let from = 0; from < filters.length; from += this.#term.maxEntries) {
      const keys = termKeys(filters.slice(from, from + this.#term.maxEntries));
      if (keys.count === 0) continue;
      try {
        this.#term.updateBatch(keys.keyBytes(), keys.valueBytes());
        const run = this.#runEverywhere();
        sockets += run.sockets;
        namespaces = Math.max(namespaces, run.namespaces);
      } finally {
        this.#term.deleteBatch(keys.keyBytes());
      }
    }
    return { sockets, namespaces };
  }

  #runEverywhere(): TermReport {
    let bytes = 0;
    let namespaces = 0;
    for (const netns of networkNamespaces()) {
      try {
        bytes += this.#object.runIterator(TERM_PROGRAM, netns);
        namespaces++;
      } catch (error) {
        // A namespace whose last process ended meanwhile; anything else is a real failure.
        if (!(error instanceof BpfError && (error.code === 'ENOENT' || error.code === 'ESRCH'))) throw error;
      }
    }
    return { sockets: bytes / 4, namespaces };
  }

  close(): void {
    this.#term.close();
    this.#object.close();
  }
}
