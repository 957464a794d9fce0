// The socket-LB programs (bpf/sock_lb.bpf.c) on a cgroup, and the maps they share, kept alive by
// pins under one bpffs directory: <dir>/<map name> and <dir>/links/<program>. A new agent finds the
// pins and re-adopts them without detaching anything; only what is missing is loaded and attached.
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BpfLink, type BpfMap, BpfObject, bpfObjectPath, openPinnedLink, openPinnedMap, unpin } from '../../bpf/index.js';
import { MAP_NAMES, type MapName, PIN_LINKS_DIR, checkMapLayouts } from './codec.js';

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
] as const;

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
}

export function mapPinPath(pinDir: string, map: MapName): string {
  return join(pinDir, map);
}

export function linkPinPath(pinDir: string, program: string): string {
  return join(pinDir, PIN_LINKS_DIR, program);
}

/** The programs attached and the maps opened, adopted from pins or made now. */
export class SockLb {
  /** Made by start(). */
  constructor(
    readonly maps: SockLbMaps,
    readonly links: readonly BpfLink[],
    /** Every pin was there: nothing was loaded or attached by this start. */
    readonly adopted: boolean,
  ) {}

  /**
   * Adopts the pins under `pinDir` when they are all there; otherwise loads the object over
   * whichever maps are pinned (creating and pinning the rest) and attaches and pins the programs
   * whose links are missing. On failure, whatever this call attached or pinned is removed again and
   * a SockLbStartError says what failed; links and maps that were pinned before are left alone.
   */
  static start(options: SockLbOptions): SockLb {
    const { pinDir, cgroupRoot } = options;
    mkdirSync(join(pinDir, PIN_LINKS_DIR), { recursive: true });
    const mapNames = Object.values(MAP_NAMES);
    const mapsPinned = mapNames.filter((name) => existsSync(mapPinPath(pinDir, name)));
    const linksPinned = SOCK_LB_PROGRAMS.filter((p) => existsSync(linkPinPath(pinDir, p)));
    if (mapsPinned.length === mapNames.length && linksPinned.length === SOCK_LB_PROGRAMS.length) {
      return adopt(pinDir);
    }

    const made: { links: BpfLink[]; mapPins: string[] } = { links: [], mapPins: [] };
    const kept: BpfLink[] = [];
    let object: BpfObject | undefined;
    try {
      object = BpfObject.open(options.objectPath ?? bpfObjectPath('sock_lb'));
      // Before anything reaches the kernel: an object built from another header must not be written.
      checkMapLayouts(object.maps());
      for (const name of mapNames) object.setMapPinPath(name, mapPinPath(pinDir, name));
      object.load();
      made.mapPins.push(...mapNames.filter((name) => !mapsPinned.includes(name)).map((name) => mapPinPath(pinDir, name)));
      // Links pinned over maps that were not there point at maps nobody else sees: replace them.
      const linksUsable = mapsPinned.length === mapNames.length;
      for (const program of SOCK_LB_PROGRAMS) {
        const path = linkPinPath(pinDir, program);
        if (linksPinned.includes(program)) {
          const old = openPinnedLink(path);
          if (linksUsable) {
            kept.push(old);
            continue;
          }
          old.destroy();
        }
        const link = object.attachCgroup(program, cgroupRoot);
        made.links.push(link);
        link.pin(path);
      }
      const maps = openMaps(pinDir);
      return new SockLb(maps, [...kept, ...made.links], false);
    } catch (error) {
      for (const link of made.links) link.destroy();
      for (const link of kept) link.close();
      for (const path of made.mapPins) unpin(path);
      const what = error instanceof Error ? error.message : String(error);
      throw new SockLbStartError(`socket LB on cgroup ${cgroupRoot} (pins ${pinDir}): ${what}`, { cause: error });
    } finally {
      object?.close();
    }
  }

  /** Releases this process's handles; pinned programs stay attached (the next agent adopts them). */
  close(): void {
    for (const link of this.links) link.close();
    for (const map of Object.values(this.maps)) map.close();
  }
}

function adopt(pinDir: string): SockLb {
  const links: BpfLink[] = [];
  try {
    const maps = openMaps(pinDir);
    for (const program of SOCK_LB_PROGRAMS) links.push(openPinnedLink(linkPinPath(pinDir, program)));
    return new SockLb(maps, links, true);
  } catch (error) {
    // Only handles were opened: closing them detaches nothing that is pinned.
    for (const link of links) link.close();
    const what = error instanceof Error ? error.message : String(error);
    throw new SockLbStartError(`socket LB: re-adopting the pins in ${pinDir}: ${what}`, { cause: error });
  }
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
    for (const name of Object.values(MAP_NAMES)) unpin(mapPinPath(pinDir, name));
    // Another data path's pins (the tc program's) are theirs to remove; leave the directory then.
    if (readdirSync(pinDir).length === 0) rmdirSync(pinDir);
  }
  return detached;
}
