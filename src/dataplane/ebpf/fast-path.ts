// The fast path (bpf/fastpath.bpf.c): tc programs that forward pod traffic past netfilter, on the
// host side of every pod veth (fp_pod), the underlay (fp_l2) and the WireGuard device (fp_l3).
//
// Pins, all in `<bpffsDir>/fast-path` (beside the service proxy's, whichever mode runs):
//   wl_fp_*                               the maps (include/wirelane_fastpath.h)
//   links/fastpath-<iface>-<ifindex>      tcx links, so forwarding goes on while the agent restarts
// On kernels without tcx the programs are clsact filters with our handle and priority instead,
// written only where ours is missing or holds a program that differs from this load's, and removed
// from interfaces no longer wanted (only ours: another's handle or priority stays).
// Pods come and go between resyncs: followPorts() reads the bridge's ports from sysfs (no command,
// cheap enough to poll) and attaches or detaches. A link is removed only on positive evidence: its
// interface (by ifindex) is no longer one the desired state names, read from a successful listing.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  BpfObject,
  bpfObjectPath,
  isBpffs,
  openPinnedLink,
  openPinnedMap,
  unpin,
  type BpfMap,
  type TcFilterId,
} from '../../bpf/index.js';
import { type Cidr, containsIp, ipOf, networkOf } from '../../model/ip.js';
import { PIN_LINKS_DIR, writeAddress } from './codec.js';
import { FP_CIDR_KEY, MAPS as LAYOUTS } from './layouts.js';
import { readPinnedCounters, sumCounters } from './counters.js';
import { detachFilter, filterProgram, unlessMissing, unlessNotALink } from './pin-errors.js';
import { layoutDifferences } from './map-staging.js';
import { type ProgramSwapError, swapFilterProgram, swapLinkProgram, swapLogFields, swapOrKeep } from './program-swap.js';

/** The fast path's pin directory under the agent's --bpf-dir. */
export const FAST_PATH_DIR = 'fast-path';

/** wl_fp_stats slots (WL_FP_STAT_*), in order. */
export const FAST_PATH_STATS = [
  'sameNode',
  'toUnderlay',
  'toWireGuard',
  'fromUnderlay',
  'fromWireGuard',
  'passNat',
  'passNeighbour',
  'passRoute',
  'passError',
] as const;
export type FastPathStat = (typeof FAST_PATH_STATS)[number];

const MAPS = {
  cidrs: { name: 'wl_fp_cidrs', key: LAYOUTS.wl_fp_cidrs.key.size, value: LAYOUTS.wl_fp_cidrs.value.size },
  devs: { name: 'wl_fp_devs', key: LAYOUTS.wl_fp_devs.key.size, value: LAYOUTS.wl_fp_devs.value.size },
  ports: { name: 'wl_fp_ports', key: LAYOUTS.wl_fp_ports.key.size, value: LAYOUTS.wl_fp_ports.value.size },
  stats: { name: 'wl_fp_stats', key: LAYOUTS.wl_fp_stats.key.size, value: LAYOUTS.wl_fp_stats.value.size },
} as const;

/** WL_FP_CIDR_FAMILY_BITS: the family byte and padding before the address. */
const CIDR_FAMILY_BITS = 32;
const CIDR_CLUSTER = 1;
const CIDR_LOCAL = 2;
const DEV_KIND = { bridge: 1, wireguard: 2, underlay: 3 } as const;

/** clsact filters (kernels without tcx): after the NodePort program's (priority 1), which passes what is not its own on. */
const CLSACT_HANDLE = 0x4650;
const CLSACT_PRIORITY = 2;
const LINK_PREFIX = 'fastpath-';
/** ARPHRD_NONE: a device without a link-layer header (WireGuard, tun). */
const ARPHRD_NONE = 65534;

export interface FastPathDesired {
  /** Every node's pod CIDRs (this node's too): the only destinations forwarded. */
  readonly clusterPodCidrs: readonly Cidr[];
  /** This node's pod CIDRs. */
  readonly localPodCidrs: readonly Cidr[];
  /** The pod bridge (the CNI bridge plugin's); its ports get fp_pod. The device may not exist yet (no pods). */
  readonly bridge: string;
  /** The WireGuard device; missing or absent: none yet. */
  readonly wireguard?: string;
  /** Interfaces to other nodes. */
  readonly underlay: readonly string[];
}

export interface FastPathOptions {
  /** The agent's pin directory (--bpf-dir); ours is its FAST_PATH_DIR subdirectory. */
  readonly bpffsDir: string;
  readonly log?: Logger;
  /** 'auto' (default): tcx where the kernel has it, else clsact filters. */
  readonly tcMode?: 'auto' | 'tcx' | 'clsact';
  /** The compiled object; default build/bpf/fastpath.bpf.o. */
  readonly objectPath?: string;
}

export interface FastPathReport {
  readonly attached: number;
  readonly detached: number;
  /** Map entries written or deleted. */
  readonly written: number;
}

type Program = 'fp_pod' | 'fp_l2' | 'fp_l3';

interface Wanted {
  readonly iface: string;
  readonly ifindex: number;
  readonly program: Program;
}

export class FastPathError extends Error {
  override readonly name = 'FastPathError';
}

export class FastPathDatapath {
  readonly #opts: FastPathOptions;
  #obj: BpfObject | undefined;
  #maps: Record<keyof typeof MAPS, BpfMap> | undefined;
  #desired: FastPathDesired | undefined;
  /** The CIDR map's entries for the last apply's CIDRs: the same lists (a resync with nothing changed) want the same entries. */
  #wantedCidrs: { readonly of: Pick<FastPathDesired, 'clusterPodCidrs' | 'localPodCidrs'>; readonly entries: ReadonlyMap<string, Buffer> } | undefined;
  /** Adopted link pins whose program this process has compared with its own (once is enough). */
  readonly #checked = new Set<string>();
  /** Set by close(): nothing loads (and pins) the object again, whoever asks afterwards. */
  #closed = false;
  /** The load in flight, which concurrent callers share. */
  #loading: Promise<Record<keyof typeof MAPS, BpfMap>> | undefined;
  /** Our clsact filters on wanted interfaces at the last call (filterKey → program id): known good, not compared again. */
  #filters = new Map<string, number>();
  /** The interfaces wanted at the last call: where a filter may have to go between resyncs. */
  #filterInterfaces: readonly string[] = [];
  /** Every interface was searched for an earlier run's filters: later calls look only where this process put them. */
  #swept = false;

  constructor(opts: FastPathOptions) {
    this.#opts = opts;
  }

  get dir(): string {
    return join(this.#opts.bpffsDir, FAST_PATH_DIR);
  }

  get linksDir(): string {
    return join(this.dir, PIN_LINKS_DIR);
  }

  /** Writes the maps and attaches to every interface `desired` names, detaching from those it no longer does. */
  async apply(desired: FastPathDesired): Promise<FastPathReport> {
    const maps = await this.#ready();
    this.#desired = desired;
    const devices = this.#devices(desired);
    const written = this.#writeCidrs(maps.cidrs, desired) + this.#writeDevs(maps.devs, devices);
    return { ...this.#attachAll(maps.ports, devices, true), written };
  }

  /**
   * Loads the programs over the pinned maps (apply() does so when not yet done), for the kernel's
   * word before the first apply. The verifier runs on the thread pool; calls meanwhile share the load.
   */
  async load(): Promise<void> {
    await this.#ready();
  }

  #ready(): Promise<Record<keyof typeof MAPS, BpfMap>> {
    if (this.#maps !== undefined) return Promise.resolve(this.#maps);
    // A failed load is not kept: the next call (the next resync's apply) tries again.
    this.#loading ??= this.#load().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /** Between resyncs: the bridge's ports as they are now (pods made or deleted since). */
  followPorts(): FastPathReport {
    const desired = this.#desired;
    const maps = this.#maps;
    if (desired === undefined || maps === undefined) return { attached: 0, detached: 0, written: 0 };
    const devices = this.#devices(desired);
    return { ...this.#attachAll(maps.ports, devices, false), written: this.#writeDevs(maps.devs, devices) };
  }

  /**
   * The counters, never by loading: a /metrics scrape before the first apply or during the agent's
   * clean-up (after close()) must not load the programs and pin the maps again. Undefined when
   * nothing is pinned.
   */
  stats(): Record<FastPathStat, bigint> | undefined {
    if (this.#maps !== undefined) return sumCounters(this.#maps.stats, FAST_PATH_STATS);
    return readFastPathStats(this.#opts.bpffsDir);
  }

  /** Closes this process's handles; attached programs and pins stay. */
  close(): void {
    this.#closed = true;
    for (const map of Object.values(this.#maps ?? {})) map.close();
    this.#maps = undefined;
    this.#obj?.close();
    this.#obj = undefined;
  }

  async #load(): Promise<Record<keyof typeof MAPS, BpfMap>> {
    if (this.#closed) throw new FastPathError('fast path: closed');
    if (!isBpffs(this.#opts.bpffsDir)) throw new FastPathError(`fast path: "${this.#opts.bpffsDir}" is not on a bpffs`);
    mkdirSync(this.linksDir, { recursive: true });
    const obj = BpfObject.open(this.#opts.objectPath ?? bpfObjectPath('fastpath'), { name: 'fastpath' });
    let maps: Record<keyof typeof MAPS, BpfMap>;
    try {
      this.#pinMaps(obj);
      await obj.loadAsync();
      // close() while the verifier ran: what it pinned stays (as after any load), nothing is kept open.
      if (this.#closed) throw new FastPathError('fast path: closed while loading');
      for (const info of obj.maps().filter((m) => !m.internal)) {
        const layout = Object.values(MAPS).find((m) => m.name === info.name);
        if (layout === undefined || layout.key !== info.keySize || layout.value !== info.valueSize) {
          throw new FastPathError(`fast path: map ${info.name} has key ${info.keySize}, value ${info.valueSize}; this build expects ${layout ? `${layout.key}, ${layout.value}` : 'no such map'}`);
        }
      }
      maps = { cidrs: obj.map(MAPS.cidrs.name), devs: obj.map(MAPS.devs.name), ports: obj.map(MAPS.ports.name), stats: obj.map(MAPS.stats.name) };
    } catch (error) {
      obj.close();
      throw error;
    }
    // Kept open: the programs' fds attach new pods' veths between resyncs.
    this.#obj = obj;
    this.#maps = maps;
    return maps;
  }

  /**
   * Points the object's maps at their pins. A pin of another layout (an older build's) is replaced,
   * not staged as the service maps are: everything in these maps is derived (CIDRs and devices
   * rewritten every apply, ports relearnt from the next packet, counters restart), and the attached
   * programs keep the old maps until this load's programs replace them.
   */
  #pinMaps(obj: BpfObject): void {
    const replaced: string[] = [];
    for (const info of obj.maps().filter((m) => !m.internal)) {
      const pin = join(this.dir, info.name);
      const pinned = unlessMissing(() => openPinnedMap(pin));
      const differences = pinned === undefined ? [] : layoutDifferences(pinned, info);
      pinned?.close();
      if (differences.length > 0) {
        unpin(pin);
        replaced.push(`${info.name} (${differences.join(', ')})`);
      }
      obj.setMapPinPath(info.name, pin);
    }
    if (replaced.length > 0) this.#opts.log?.warn({ maps: replaced }, 'fast path: pinned maps of another layout replaced; their contents are derived (rewritten, relearnt; counters restart)');
  }

  /** The interfaces to attach to, as they are now. */
  #devices(desired: FastPathDesired): { wanted: Wanted[]; bridge: number | undefined; wireguard: number | undefined; underlay: number[] } {
    const wanted: Wanted[] = [];
    const bridge = ifindexOf(desired.bridge);
    for (const port of bridgePorts(desired.bridge)) {
      const ifindex = ifindexOf(port);
      if (ifindex !== undefined) wanted.push({ iface: port, ifindex, program: 'fp_pod' });
    }
    const underlay: number[] = [];
    for (const name of desired.underlay) {
      const ifindex = ifindexOf(name);
      if (ifindex === undefined) continue;
      underlay.push(ifindex);
      wanted.push({ iface: name, ifindex, program: linkType(name) === ARPHRD_NONE ? 'fp_l3' : 'fp_l2' });
    }
    const wireguard = desired.wireguard === undefined ? undefined : ifindexOf(desired.wireguard);
    if (wireguard !== undefined && desired.wireguard !== undefined) wanted.push({ iface: desired.wireguard, ifindex: wireguard, program: 'fp_l3' });
    return { wanted, bridge, wireguard, underlay };
  }

  #writeCidrs(map: BpfMap, desired: FastPathDesired): number {
    const last = this.#wantedCidrs;
    if (last !== undefined && last.of.clusterPodCidrs === desired.clusterPodCidrs && last.of.localPodCidrs === desired.localPodCidrs) return syncMap(map, last.entries);
    const wanted = new Map<string, Buffer>();
    for (const cidr of desired.clusterPodCidrs) {
      const local = desired.localPodCidrs.some((l) => l.family === cidr.family && l.bits <= cidr.bits && containsIp(l, ipOf(cidr)));
      const value = Buffer.alloc(MAPS.cidrs.value);
      value.writeUInt32LE(CIDR_CLUSTER | (local ? CIDR_LOCAL : 0));
      wanted.set(cidrKey(cidr).toString('hex'), value);
    }
    this.#wantedCidrs = { of: { clusterPodCidrs: desired.clusterPodCidrs, localPodCidrs: desired.localPodCidrs }, entries: wanted };
    return syncMap(map, wanted);
  }

  #writeDevs(map: BpfMap, devices: { bridge: number | undefined; wireguard: number | undefined; underlay: number[] }): number {
    const wanted = new Map<string, Buffer>();
    const set = (ifindex: number | undefined, kind: number): void => {
      if (ifindex === undefined) return;
      const value = Buffer.alloc(MAPS.devs.value);
      value.writeUInt32LE(kind);
      wanted.set(u32(ifindex).toString('hex'), value);
    };
    for (const ifindex of devices.underlay) set(ifindex, DEV_KIND.underlay);
    set(devices.wireguard, DEV_KIND.wireguard);
    set(devices.bridge, DEV_KIND.bridge);
    return syncMap(map, wanted);
  }

  /**
   * Attaches where a program is missing and detaches where one is no longer wanted. `everywhere`
   * (apply): at the first one our clsact filters are looked for on every interface, those of an
   * earlier run too; otherwise only on interfaces the last call wanted (one netlink query each).
   */
  #attachAll(ports: BpfMap, devices: { wanted: Wanted[]; bridge: number | undefined }, everywhere: boolean): { attached: number; detached: number } {
    const obj = this.#obj;
    if (obj === undefined) throw new FastPathError('fast path: not loaded');
    const pins = new Set(this.#wantedPins(devices.wanted));
    for (const pin of this.#checked) if (!pins.has(pin)) this.#checked.delete(pin);
    let detached = 0;
    // Pins of interfaces (by ifindex) no longer wanted: a pod deleted, a device re-created.
    for (const pin of linkPins(this.linksDir)) {
      if (pins.has(pin)) continue;
      const link = unlessNotALink(() => openPinnedLink(pin));
      if (link === undefined) unpin(pin);
      else link.destroy();
      detached++;
    }
    detached += this.#detachUnwantedFilters(devices.wanted, everywhere);
    // Learnt MACs of ports that are gone: their ifindex names nothing to redirect to.
    const portIfindexes = new Set(devices.wanted.filter((w) => w.program === 'fp_pod').map((w) => w.ifindex));
    for (const [key, value] of ports.entries()) if (!portIfindexes.has(value.readUInt32LE(0))) ports.delete(key);

    let attached = 0;
    const filters = new Map<string, number>();
    for (const want of devices.wanted) {
      const pin = join(this.linksDir, `${LINK_PREFIX}${want.iface}-${want.ifindex}`);
      const adopted = unlessMissing(() => openPinnedLink(pin));
      if (adopted !== undefined) {
        if (this.#checked.has(pin)) {
          adopted.close();
          continue;
        }
        this.#checked.add(pin);
        try {
          swapOrKeep(() => swapLinkProgram(adopted, obj, want.program, pin), (e) => this.#keep(e));
        } finally {
          adopted.close();
        }
        continue;
      }
      try {
        const filter = filterId(want.iface);
        const running = this.#opts.tcMode === 'tcx' ? undefined : filterProgram(filter);
        if (running !== undefined) {
          filters.set(filterKey(want), this.#adoptFilter(obj, want, filter, running));
          continue;
        }
        const attachment = obj.attachTc(want.program, { interface: want.iface, direction: 'ingress' }, { mode: this.#opts.tcMode ?? 'auto', handle: CLSACT_HANDLE, priority: CLSACT_PRIORITY });
        if (attachment.mode === 'tcx') {
          try {
            attachment.link.pin(pin);
          } finally {
            attachment.link.close();
          }
        } else filters.set(filterKey(want), attachment.filter.progId);
        attached++;
      } catch (error) {
        // A pod's veth deleted between the listing and the attach: gone is not a failure.
        if (ifindexOf(want.iface) === want.ifindex) throw error;
      }
    }
    this.#filters = filters;
    if (attached + detached > 0) this.#opts.log?.info({ attached, detached, interfaces: devices.wanted.length }, 'fast path: programs attached where wanted');
    return { attached, detached };
  }

  /**
   * Our clsact filter on a wanted interface, holding program `running`: kept when it is the one
   * this process attached or compared already, else replaced in place when it differs from this
   * load's (swapFilterProgram: code, constants or maps), so an earlier run's identical program is
   * not written over. The program id now in the filter.
   */
  #adoptFilter(obj: BpfObject, want: Wanted, filter: TcFilterId, running: number): number {
    if (this.#filters.get(filterKey(want)) === running) return running;
    const swap = swapOrKeep(() => swapFilterProgram(filter, obj, want.program), (e) => this.#keep(e));
    if (swap === undefined) return running;
    this.#opts.log?.info(swapLogFields(swap), 'fast path: tc program replaced in place');
    return swap.to.id;
  }

  /**
   * Removes our clsact filter (our handle and priority, nobody else's) from interfaces not wanted
   * now: a device that stopped being the underlay or WireGuard device, a port that left the bridge
   * while its veth stays, anything an earlier run attached. Positive evidence only: `wanted` and
   * the interface list are read successfully; an interface without our filter is left alone.
   */
  #detachUnwantedFilters(wanted: readonly Wanted[], everywhere: boolean): number {
    if (this.#opts.tcMode === 'tcx') return 0;
    const names = new Set(wanted.map((w) => w.iface));
    // Only this process attaches after the sweep, so what it wanted last covers every filter of ours.
    const sweep = everywhere && !this.#swept;
    const candidates = sweep ? listInterfaces() : this.#filterInterfaces;
    let detached = 0;
    for (const iface of candidates) {
      // Queried first: the common case (no filter, often no clsact qdisc) stays a read.
      if (names.has(iface) || filterProgram(filterId(iface)) === undefined || !detachFilter(filterId(iface))) continue;
      this.#opts.log?.info({ interface: iface }, 'fast path: filter removed from an interface no longer wanted');
      detached++;
    }
    // After the loop: a failed removal leaves its interface a candidate (or the sweep to do again).
    this.#filterInterfaces = [...names];
    if (sweep) this.#swept = true;
    return detached;
  }

  /** A program of other code over the same maps still serves correctly: an upgrade deferred, not a failure. */
  #keep(error: ProgramSwapError): void {
    this.#opts.log?.warn({ program: error.program, where: error.where, err: error.message }, 'fast path: a program of other code serves on');
  }

  #wantedPins(wanted: readonly Wanted[]): string[] {
    return wanted.map((w) => join(this.linksDir, `${LINK_PREFIX}${w.iface}-${w.ifindex}`));
  }
}

/** Removes every fast-path program and pin under `bpffsDir`; how many programs were detached. */
export function removeFastPath(bpffsDir: string, interfaces: readonly string[]): number {
  const dir = join(bpffsDir, FAST_PATH_DIR);
  const linksDir = join(dir, PIN_LINKS_DIR);
  let detached = 0;
  for (const pin of linkPins(linksDir)) {
    const link = unlessNotALink(() => openPinnedLink(pin));
    if (link === undefined) unpin(pin);
    else {
      link.destroy();
      detached++;
    }
  }
  for (const name of interfaces) if (detachFilter(filterId(name))) detached++;
  for (const { name } of Object.values(MAPS)) unpin(join(dir, name));
  for (const d of [linksDir, dir]) {
    if (existsSync(d) && readdirSync(d).length === 0) rmdirSync(d);
  }
  return detached;
}

/** `wirelane cleanup` and --fast-path off: one line per kind of thing removed, none on a clean host. */
export function removeFastPathLeftovers(bpffsDir: string): string[] {
  const had = existsSync(join(bpffsDir, FAST_PATH_DIR));
  const detached = removeFastPath(bpffsDir, listInterfaces());
  return [...(detached > 0 ? [`${detached} fast-path tc programs detached`] : []), ...(had ? [`fast-path pins removed from ${bpffsDir}`] : [])];
}

/** The counters pinned under `bpffsDir`, without loading anything; undefined when the fast path has not run. */
export function readFastPathStats(bpffsDir: string): Record<FastPathStat, bigint> | undefined {
  return readPinnedCounters(join(bpffsDir, FAST_PATH_DIR, MAPS.stats.name), FAST_PATH_STATS);
}

/** A wl_fp_cidrs key: {prefixlen, family, pad[3], addr[16]}. */
export function cidrKey(cidr: Cidr): Buffer {
  const net = networkOf(cidr);
  const key = Buffer.alloc(MAPS.cidrs.key);
  const { prefixlen, family, addr } = FP_CIDR_KEY.fields;
  key.writeUInt32LE(CIDR_FAMILY_BITS + net.bits, prefixlen.offset);
  key[family.offset] = net.family;
  writeAddress(key, addr.offset, ipOf(net));
  return key;
}

/** Makes `map` hold exactly `wanted` (hex key → value): additions and changes first, then removals. */
function syncMap(map: BpfMap, wanted: ReadonlyMap<string, Buffer>): number {
  let written = 0;
  for (const [hex, value] of wanted) {
    const key = Buffer.from(hex, 'hex');
    if (map.lookup(key)?.equals(value)) continue;
    map.update(key, value);
    written++;
  }
  for (const key of map.keys()) {
    if (!wanted.has(key.toString('hex')) && map.delete(key)) written++;
  }
  return written;
}

function filterId(iface: string): TcFilterId {
  return { interface: iface, direction: 'ingress', handle: CLSACT_HANDLE, priority: CLSACT_PRIORITY };
}

/** A wanted filter by interface, ifindex and program: a re-created device or a changed role is compared anew. */
function filterKey(want: Wanted): string {
  return `${want.iface}/${want.ifindex}/${want.program}`;
}

function linkPins(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((name) => name.startsWith(LINK_PREFIX))
      .map((name) => join(dir, name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

// sysfs of the agent's network namespace: `ip netns exec` mounts the namespace's own /sys.
function sysfs(name: string, file: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function ifindexOf(name: string): number | undefined {
  const text = sysfs(name, 'ifindex');
  return text === undefined ? undefined : Number(text);
}

function linkType(name: string): number | undefined {
  const text = sysfs(name, 'type');
  return text === undefined ? undefined : Number(text);
}

/** A bridge's ports; none when there is no such bridge (no pod was made yet). */
function bridgePorts(bridge: string): string[] {
  try {
    return readdirSync(`/sys/class/net/${bridge}/brif`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

function listInterfaces(): string[] {
  return readdirSync('/sys/class/net');
}

function u32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(value);
  return buf;
}
