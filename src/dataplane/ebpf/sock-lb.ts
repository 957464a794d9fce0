// The socket-LB programs (bpf/sock_lb.bpf.c) on a cgroup, and the maps they share, kept alive by
// pins under one bpffs directory: <dir>/<map name> and <dir>/links/<program>. A new agent finds the
// pins and re-adopts them without detaching anything; only what is missing is loaded and attached.
// Besides the shared maps the object has two of its own, pinned beside them: wl_sock_owned (socket
// storage: what an unconnected UDP socket must have removed when it is released) and wl_sock_stats
// (the calls it refused, by cause, for the agent's metrics).
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BpfLink, type BpfMap, BpfObject, bpfObjectPath, openPinnedLink, openPinnedMap, unpin } from '../../bpf/index.js';
import { MAP_NAMES, type MapName, PIN_LINKS_DIR, checkMapLayouts } from './codec.js';
import { readPinnedCounters } from './counters.js';
import { changedLayouts, copyToStaged, discardStaging, layoutDifferences, promoteStagedPins, stagingDir } from './map-staging.js';
import { type ProgramSwap, type ProgramSwapError, swapLinkProgram, swapOrKeep } from './program-swap.js';

/** Every program of sock_lb.bpf.o, attached to the cgroup root as a link each. */
export const SOCK_LB_PROGRAMS = [
  'sock_connect4',
  'sock_connect6',
  'sock_sendmsg4',
  'sock_sendmsg6',
  'sock_recvmsg4',
  'sock_recvmsg6',
  'sock_getpeername4',
  'sock_getpeername6',
  'sock_release',
] as const;

/** sock_lb's own maps (not shared with the other objects). */
export const SOCK_OWNED_MAP = 'wl_sock_owned';
export const SOCK_STATS_MAP = 'wl_sock_stats';
const OWN_MAPS = [SOCK_OWNED_MAP, SOCK_STATS_MAP] as const;

/** wl_sock_stats slots (WL_SOCK_STAT_*), in order. */
export const SOCK_LB_STATS = ['noEndpoint', 'noLocalEndpoint', 'noBackend'] as const;
export type SockLbStat = (typeof SOCK_LB_STATS)[number];

/** The socket LB's refusal counters pinned in `pinDir`, summed over CPUs; undefined before it pinned them. */
export function readSockLbStats(pinDir: string): Record<SockLbStat, bigint> | undefined {
  return readPinnedCounters(join(pinDir, SOCK_STATS_MAP), SOCK_LB_STATS);
}

export type SockLbMaps = { readonly [K in keyof typeof MAP_NAMES]: BpfMap };

export class SockLbStartError extends Error {
  override readonly name = 'SockLbStartError';
}

export interface SockLbOptions {
  /** The pin directory (on a bpffs). */
  readonly pinDir: string;
  /** The cgroup v2 directory the programs attach to. */
  readonly cgroupRoot: string;
  /** Default: build/bpf/sock_lb.bpf.o. */
  readonly objectPath?: string;
  /**
   * Sizes of the maps: those whose entries the programs make, wl_sock_rev (sockets translated at
   * once) and wl_affinity, and the service tables the agent fills, wl_services and wl_backends.
   * Unset: the header's. Pinned maps of other sizes are rebuilt (see start()).
   */
  readonly sizes?: SockLbSizes;
}

export interface SockLbSizes {
  readonly sockRevEntries?: number;
  readonly affinityEntries?: number;
  /** wl_services: service frontends. */
  readonly serviceEntries?: number;
  /** Distinct backends (address:port); wl_backends has one entry more, as id 0 means none. */
  readonly backends?: number;
}

export function mapPinPath(pinDir: string, map: MapName): string {
  return join(pinDir, map);
}

export function linkPinPath(pinDir: string, program: string): string {
  return join(pinDir, PIN_LINKS_DIR, program);
}

/** A map rebuild waiting for its first full write: the new maps are staged, the old programs still run. */
interface StagedMaps {
  /** The loaded object, whose programs replace the pinned ones at commit(). */
  readonly object: BpfObject;
  /** Shared maps whose pinned layout differs, with what differs. */
  readonly changed: ReadonlyMap<string, readonly string[]>;
}

/** The programs attached and the maps opened, adopted from pins or made now. */
export class SockLb {
  #staged: StagedMaps | undefined;
  #links: readonly BpfLink[];

  /** Made by start(). */
  constructor(
    readonly pinDir: string,
    readonly maps: SockLbMaps,
    links: readonly BpfLink[],
    /** The pins of a serving data path were there and are kept (programs may have been swapped, missing ones attached). */
    readonly adopted: boolean,
    /** Pinned programs this start replaced in place (another build, same maps). */
    readonly swaps: readonly ProgramSwap[],
    /** Pinned programs of other code that could not be replaced and serve on (the same maps). */
    readonly unswapped: readonly ProgramSwapError[],
    staged?: StagedMaps,
  ) {
    this.#links = links;
    this.#staged = staged;
  }

  /** This process's handles on the pinned links (none while a rebuild is staged). */
  get links(): readonly BpfLink[] {
    return this.#links;
  }

  /**
   * Where `maps` are pinned: the pin directory, or its staging directory while a rebuild of maps
   * with a changed layout waits for commit() (other objects sharing the maps load over these).
   */
  get mapsDir(): string {
    return this.#staged === undefined ? this.pinDir : stagingDir(this.pinDir);
  }

  /** Maps whose layout changed, staged and not yet serving: write them in full, then commit(). */
  get staged(): ReadonlyMap<string, readonly string[]> | undefined {
    return this.#staged?.changed;
  }

  /**
   * Adopts the pins under `pinDir`: loads the object over the pinned maps (creating and pinning
   * those that are missing), swaps pinned programs that differ from the loaded ones in place, and
   * attaches and pins the programs whose links are missing. When a pinned map's layout differs
   * from the object's, nothing running is touched: the new maps are created in the staging
   * directory and `staged` says so; commit() switches over once they hold the full service map.
   * On failure, whatever this call attached or pinned is removed again and a SockLbStartError says
   * what failed; links and maps that were pinned before are left alone. The verifier runs on the
   * thread pool (BpfObject.loadAsync).
   */
  static async start(options: SockLbOptions): Promise<SockLb> {
    const { pinDir, cgroupRoot } = options;
    mkdirSync(join(pinDir, PIN_LINKS_DIR), { recursive: true });
    const mapNames = Object.values(MAP_NAMES);
    const mapsPinned = mapNames.filter((name) => existsSync(mapPinPath(pinDir, name)));
    const linksPinned = SOCK_LB_PROGRAMS.filter((p) => existsSync(linkPinPath(pinDir, p)));
    // Every map and some program: a data path was serving (an older build may lack a program this one has).
    const serving = mapsPinned.length === mapNames.length && linksPinned.length > 0;

    const made: { links: BpfLink[]; mapPins: string[] } = { links: [], mapPins: [] };
    const kept: BpfLink[] = [];
    const swaps: ProgramSwap[] = [];
    const unswapped: ProgramSwapError[] = [];
    let object: BpfObject | undefined;
    let keepObject = false;
    try {
      object = BpfObject.open(options.objectPath ?? bpfObjectPath('sock_lb'));
      // Before anything reaches the kernel: an object built from another header must not be written.
      checkMapLayouts(object.maps());
      // A size asked for is part of the layout: a pin of another size is rebuilt like one of another build.
      if (options.sizes?.sockRevEntries !== undefined) object.setMaxEntries(MAP_NAMES.sockRev, options.sizes.sockRevEntries);
      if (options.sizes?.affinityEntries !== undefined) object.setMaxEntries(MAP_NAMES.affinity, options.sizes.affinityEntries);
      if (options.sizes?.serviceEntries !== undefined) object.setMaxEntries(MAP_NAMES.services, options.sizes.serviceEntries);
      if (options.sizes?.backends !== undefined) object.setMaxEntries(MAP_NAMES.backends, options.sizes.backends + 1);
      made.mapPins.push(...pinOwnMaps(object, pinDir));
      const wanted = object.maps().filter((m) => (mapNames as readonly string[]).includes(m.name));
      const changed = changedLayouts(pinDir, wanted);
      const mapsDir = changed.size > 0 ? stagingDir(pinDir) : pinDir;
      if (changed.size > 0) mkdirSync(mapsDir, { recursive: true });
      for (const name of mapNames) object.setMapPinPath(name, join(mapsDir, name));
      await object.loadAsync();
      made.mapPins.push(...mapNames.filter((name) => mapsDir !== pinDir || !mapsPinned.includes(name)).map((name) => join(mapsDir, name)));
      if (changed.size > 0) {
        // The old programs keep serving the old maps until commit().
        const maps = openMaps(mapsDir);
        keepObject = true;
        return new SockLb(pinDir, maps, [], serving, [], [], { object, changed });
      }
      // Links pinned over maps that were not there point at maps nobody else sees: replace them.
      const linksUsable = mapsPinned.length === mapNames.length;
      for (const program of SOCK_LB_PROGRAMS) {
        const path = linkPinPath(pinDir, program);
        if (linksPinned.includes(program)) {
          const old = openPinnedLink(path);
          if (linksUsable) {
            kept.push(old);
            const loaded = object;
            const swap = swapOrKeep(() => swapLinkProgram(old, loaded, program, path), (e) => unswapped.push(e));
            if (swap !== undefined) swaps.push(swap);
            continue;
          }
          old.destroy();
        }
        const link = object.attachCgroup(program, cgroupRoot);
        made.links.push(link);
        link.pin(path);
      }
      const maps = openMaps(pinDir);
      return new SockLb(pinDir, maps, [...kept, ...made.links], serving, swaps, unswapped);
    } catch (error) {
      // Programs already swapped stay: each swap was whole, and the new program serves the same maps.
      for (const link of made.links) link.destroy();
      for (const link of kept) link.close();
      for (const path of made.mapPins) unpin(path);
      if (existsSync(stagingDir(pinDir)) && readdirSync(stagingDir(pinDir)).length === 0) rmdirSync(stagingDir(pinDir));
      const what = error instanceof Error ? error.message : String(error);
      throw new SockLbStartError(`socket LB on cgroup ${cgroupRoot} (pins ${pinDir}): ${what}`, { cause: error });
    } finally {
      if (!keepObject) object?.close();
    }
  }

  /**
   * After a rebuild's maps hold the full service map: copies what the programs remember
   * (affinity, reverse translation) from the old maps, swaps every pinned program for the new one
   * over the new maps (attaching those that are missing), copies what the old programs added
   * meanwhile, and moves the staged pins over the old ones (also the other objects' staged maps:
   * swap their programs before this). Returns the swaps; a failure leaves the rebuild staged, and
   * calling commit() again finishes it (a program already swapped is the same as the loaded one).
   */
  commit(cgroupRoot: string): ProgramSwap[] {
    const staged = this.#staged;
    if (staged === undefined) return [];
    const copy = (onlyMissing: boolean): void => {
      for (const name of [MAP_NAMES.affinity, MAP_NAMES.sockRev]) copyToStaged(this.pinDir, name, { onlyMissing });
    };
    copy(false);
    const swaps: ProgramSwap[] = [];
    const links: BpfLink[] = [];
    try {
      for (const program of SOCK_LB_PROGRAMS) {
        const path = linkPinPath(this.pinDir, program);
        if (existsSync(path)) {
          const link = openPinnedLink(path);
          links.push(link);
          const swap = swapLinkProgram(link, staged.object, program, path);
          if (swap !== undefined) swaps.push(swap);
        } else {
          const link = staged.object.attachCgroup(program, cgroupRoot);
          link.pin(path);
          links.push(link);
        }
      }
    } catch (error) {
      for (const link of links) link.close();
      throw error;
    }
    copy(true);
    promoteStagedPins(this.pinDir);
    this.#staged = undefined;
    staged.object.close();
    this.#links = links;
    return swaps;
  }

  /** Releases this process's handles; pinned programs stay attached (the next agent adopts them). */
  close(): void {
    for (const link of this.#links) link.close();
    for (const map of Object.values(this.maps)) map.close();
    this.#staged?.object.close();
  }
}

/**
 * Points the object's own maps at their pins in `pinDir`. A pin of another layout is removed first:
 * what wl_sock_owned lists only spares the LRU some work, wl_sock_stats starts counting again, and
 * the programs still using them keep them alive. Returns the pins this start makes.
 */
function pinOwnMaps(object: BpfObject, pinDir: string): string[] {
  const made: string[] = [];
  for (const name of OWN_MAPS) {
    const path = join(pinDir, name);
    const info = object.maps().find((m) => m.name === name);
    if (info === undefined) throw new Error(`map ${name}: missing from the object`);
    let absent = !existsSync(path);
    if (!absent) {
      const pinned = openPinnedMap(path);
      const differs = layoutDifferences(pinned, info).length > 0;
      pinned.close();
      if (differs) {
        unpin(path);
        absent = true;
      }
    }
    object.setMapPinPath(name, path);
    if (absent) made.push(path);
  }
  return made;
}

function openMaps(pinDir: string): SockLbMaps {
  const opened: BpfMap[] = [];
  try {
    const open = (name: MapName): BpfMap => {
      const map = openPinnedMap(mapPinPath(pinDir, name));
      opened.push(map);
      return map;
    };
    const maps: SockLbMaps = {
      services: open(MAP_NAMES.services),
      slots: open(MAP_NAMES.slots),
      backends: open(MAP_NAMES.backends),
      nodeAddrs: open(MAP_NAMES.nodeAddrs),
      affinity: open(MAP_NAMES.affinity),
      sockRev: open(MAP_NAMES.sockRev),
    };
    // Pins from another build of the header must not be written through this codec.
    checkMapLayouts(Object.values(maps));
    return maps;
  } catch (error) {
    for (const map of opened) map.close();
    throw error;
  }
}

/**
 * Detaches the socket programs pinned under `pinDir/links` and removes their pins, the maps' pins
 * and the directories once empty (the tc data path's pins there are its own): what cleanup()
 * needs, also for pins a crashed agent left. Returns how many links were detached.
 */
export function removeSockLbPins(pinDir: string): number {
  let detached = 0;
  const linksDir = join(pinDir, PIN_LINKS_DIR);
  for (const program of SOCK_LB_PROGRAMS) {
    const path = linkPinPath(pinDir, program);
    if (!existsSync(path)) continue;
    try {
      openPinnedLink(path).destroy();
      detached++;
    } catch {
      // Not a link (or gone meanwhile): the pin still goes.
      unpin(path);
    }
  }
  if (existsSync(linksDir) && readdirSync(linksDir).length === 0) rmdirSync(linksDir);
  if (existsSync(pinDir)) {
    discardStaging(pinDir);
    for (const name of [...Object.values(MAP_NAMES), ...OWN_MAPS]) unpin(join(pinDir, name));
    // Another data path's pins (the tc program's) are theirs to remove; leave the directory then.
    if (readdirSync(pinDir).length === 0) rmdirSync(pinDir);
  }
  return detached;
}
