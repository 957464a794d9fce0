// North-south service traffic on tc (bpf/nodeport.bpf.c): the programs on the node's interfaces
// that translate NodePort, ExternalIP and LoadBalancer traffic from outside, and the maps only they
// use (include/wirelane_nodeport.h): conntrack/NAT of confirmed and of unconfirmed flows, outside
// clients' affinity, loadBalancerSourceRanges, the fallback masquerade address, counters. The
// service, backend, node-address and affinity maps are the service proxy's: this object re-uses
// their pins (same definitions, one kernel map), reads them and never writes their entries.
//
// Pins, all in `bpffsDir` (the directory the proxy pins its maps in, e.g. /sys/fs/bpf/wirelane):
//   <map name>                                  every map of the object, shared or ours
//   links/nodeport-<iface>-<ifindex>-<direction>   tcx links, so the data path outlives the agent
// On kernels without tcx the programs are clsact filters with a fixed handle and priority instead,
// which outlive the process by themselves. A new agent re-adopts what it finds instead of
// attaching again; a link for an ifindex the interface no longer has (it was re-created) is
// replaced.
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import {
  BpfError,
  BpfObject,
  bpfObjectPath,
  detachTcFilter,
  isBpffs,
  openPinnedLink,
  openPinnedMap,
  unpin,
  type BpfMap,
  type TcFilterId,
} from '../../bpf/index.js';
import { runCommand } from '../../host/command.js';
import { parseLink } from '../../host/links.js';
import { widthOf, type Ip } from '../../model/ip.js';
import type { ServiceMap } from '../../model/service.js';
import { UndoStack } from '../undo-stack.js';
import { checkMapLayouts, MAP_NAMES, PIN_LINKS_DIR, PROTOCOL_NUMBERS, writeAddress } from './codec.js';
import { readPinnedCounters, sumCounters } from './counters.js';
import { MAPS, NP_RANGE_KEY, NP_SNAT_VALUE } from './layouts.js';
import { copyToStaged, layoutDifferences, stagingDir } from './map-staging.js';
import { filterProgram, unlessMissing, unlessNotALink } from './pin-errors.js';
import { type ProgramSwap, type ProgramSwapError, swapFilterProgram, swapLinkProgram, swapLogFields, swapOrKeep } from './program-swap.js';

/** The maps this data path owns, as in wirelane_nodeport.h (WL_MAP_NP_*), with their sizes (layouts.ts). */
export const NODEPORT_MAPS = {
  conntrack: ownMap('wl_np_ct'),
  pending: ownMap('wl_np_pending'),
  affinity: ownMap('wl_np_affinity'),
  sourceRanges: ownMap('wl_np_ranges'),
  snat: ownMap('wl_np_snat'),
  stats: ownMap('wl_np_stats'),
};

function ownMap<N extends keyof typeof MAPS>(name: N): { readonly name: N; readonly key: number; readonly value: number } {
  return { name, key: MAPS[name].key.size, value: MAPS[name].value.size };
}

/** wl_np_stats slots (WL_NP_STAT_*), in order. */
export const NODEPORT_STATS = [
  'newFlow',
  'forward',
  'replyIngress',
  'replyEgress',
  'dropNoEndpoint',
  'reject',
  'dropSourceRange',
  'dropSnatPorts',
  'dropNoRoute',
  'toKernel',
  'dropError',
  'passNotSyn',
  'dropNotSyn',
  'confirmed',
  'unconfirmedExpired',
  'snatReclaimed',
  'handshakeMismatch',
  'evicted',
] as const;

export type NodePortStat = (typeof NODEPORT_STATS)[number];

const RANGE_KEY = NP_RANGE_KEY.fields;
/** Bits of a source-range key's data (after prefixlen) before the source address (WL_NP_RANGE_FRONTEND_BITS). */
export const RANGE_FRONTEND_BITS = (RANGE_KEY.source.offset - RANGE_KEY.prefixlen.offset - RANGE_KEY.prefixlen.size) * 8;

/** clsact filters (kernels without tcx): ours by this handle and priority. Priority 1 runs first. */
const CLSACT_HANDLE = 0x4e50;
const CLSACT_PRIORITY = 1;

const DIRECTIONS = ['ingress', 'egress'] as const;
type Direction = (typeof DIRECTIONS)[number];

const LINK_PREFIX = 'nodeport-';

export interface PortRange {
  readonly min: number;
  readonly max: number;
}

export interface NodePortOptions {
  /** A directory on a bpffs where the service proxy pins its maps; ours and our links go there too. */
  readonly bpffsDir: string;
  /** Every interface clients and remote backends' replies arrive on (the underlay, a mesh interface). */
  readonly interfaces: readonly string[];
  /**
   * The mesh's WireGuard interface: replies of masqueraded flows from other locations come back
   * on it, and Peers' ClusterIP traffic arrives on it (np_ingress_mesh translates ClusterIPs too).
   * Optional: a leader's device may come up after the proxy starts, and may be re-created; attach()
   * skips it while it is missing, apply() attaches once it is there or has a new ifindex.
   */
  readonly meshInterface?: string;
  readonly log?: Logger;
  /** A network namespace by path (/var/run/netns/NAME) the interfaces are in; the caller's own when absent. */
  readonly netns?: string;
  /** Masquerade source ports; default 61000-65535. Keep it outside net.ipv4.ip_local_port_range. */
  readonly snatPorts?: PortRange;
  /**
   * Map sizes. flows: confirmed flows (wl_np_ct, two entries each; default 65536); pendingFlows:
   * flows not confirmed yet (wl_np_pending; default 16384); affinityEntries: outside clients'
   * ClientIP affinity (wl_np_affinity; default 65536). Unset: a pinned map keeps its size. A pinned
   * map of another size is rebuilt beside the old one and replaces it at commitUpgrade(), with the
   * flows it holds (map-staging.ts).
   */
  readonly sizes?: NodePortSizes;
  /**
   * Idle timeouts in seconds; defaults tcp 21600, udp 120, closing (after FIN/RST) 10, unconfirmed
   * (a flow whose handshake has not completed, a UDP flow not answered and continued) 30.
   */
  readonly timeouts?: { readonly tcp?: number; readonly udp?: number; readonly closing?: number; readonly unconfirmed?: number };
  /** Seconds an unconfirmed flow must be idle before a new flow may take its masquerade port when all probed ports are held; default 1. */
  readonly snatReclaimAge?: number;
  /** 'auto' (default): tcx where the kernel has it, else clsact filters. */
  readonly tcMode?: 'auto' | 'tcx' | 'clsact';
  /** The compiled object; default build/bpf/nodeport.bpf.o. */
  readonly objectPath?: string;
  /**
   * Where the service proxy's maps are pinned; default bpffsDir. The staging directory while the
   * proxy rebuilds maps of a changed layout (map-staging.ts): then attach() loads over the new maps
   * and leaves the running programs alone until commitUpgrade().
   */
  readonly sharedMapsDir?: string;
}

export interface NodePortSizes {
  readonly flows?: number;
  readonly pendingFlows?: number;
  readonly affinityEntries?: number;
}

/** One program on one interface, as attached or re-adopted. */
export interface NodePortAttachment {
  readonly interface: string;
  readonly direction: Direction;
  /** np_ingress/np_egress, their *_l3 twins on interfaces without a link-layer header, np_ingress_mesh on the mesh interface. */
  readonly program: string;
  readonly mode: 'tcx' | 'clsact';
  /** tcx: the link's pin. */
  readonly pin?: string;
  /** false: it was already there (pinned link or our clsact filter); its program may have been swapped. */
  readonly attached: boolean;
}

/** A rebuild waiting for commitUpgrade(): the loaded object and the programs it replaces then. */
interface PendingUpgrade {
  readonly obj: BpfObject;
  /** Our own maps whose pinned layout differs, staged beside the shared ones. */
  readonly stagedOwn: readonly string[];
  readonly programs: Array<{ readonly program: string; readonly pin?: string; readonly filter?: TcFilterId }>;
}

export class NodePortError extends Error {
  override readonly name = 'NodePortError';
}

interface OwnMaps {
  readonly sourceRanges: BpfMap;
  readonly snat: BpfMap;
  readonly stats: BpfMap;
}

interface InterfaceInfo {
  readonly name: string;
  readonly ifindex: number;
  /** No link-layer header (WireGuard, tun): the *_l3 programs. */
  readonly l3: boolean;
  /** The mesh interface: ClusterIPs from Peers are translated there too. */
  readonly mesh: boolean;
}

export class NodePortDatapath {
  readonly #opts: NodePortOptions;
  readonly #log: Logger | undefined;
  /** Our maps' sizes asked for, in entries, by map name. */
  readonly #sizes: ReadonlyMap<string, number>;
  #maps: OwnMaps | undefined;
  #attachments: NodePortAttachment[] = [];
  #pending: PendingUpgrade | undefined;
  readonly #swaps: ProgramSwap[] = [];
  /** The mesh interface's ifindex at the last attach(); undefined while it was missing. */
  #meshIfindex: number | undefined;
  /**
   * The object the last attach() loaded, kept while its maps are still the pinned ones: attach()
   * again (the mesh interface came up in the first sync) re-uses its programs instead of putting
   * the whole object through the verifier a second time (0.2–0.4 s of CPU at start).
   */
  #loaded: LoadedObject | undefined;

  constructor(opts: NodePortOptions) {
    const ports = opts.snatPorts;
    if (ports !== undefined && !(Number.isInteger(ports.min) && Number.isInteger(ports.max) && ports.min >= 1024 && ports.min <= ports.max && ports.max <= 65535)) {
      throw new NodePortError(`nodeport: snatPorts ${ports.min}-${ports.max} is not a port range within 1024-65535`);
    }
    if (opts.interfaces.length === 0) throw new NodePortError('nodeport: interfaces is empty');
    this.#sizes = ownMapSizes(opts.sizes ?? {});
    this.#opts = opts;
    this.#log = opts.log;
  }

  get linksDir(): string {
    return join(this.#opts.bpffsDir, PIN_LINKS_DIR);
  }

  /** Programs replaced in place, by attach() or commitUpgrade(). */
  get swaps(): readonly ProgramSwap[] {
    return this.#swaps;
  }

  /** Whether attach() staged a rebuild that commitUpgrade() must finish. */
  get upgradePending(): boolean {
    return this.#pending !== undefined;
  }

  /** What attach() found or made, per interface and direction. */
  get attachments(): readonly NodePortAttachment[] {
    return this.#attachments;
  }

  /**
   * Loads the programs over the pinned maps (creating and pinning those that are missing) and
   * attaches them on both directions of every interface, re-adopting what is already attached.
   */
  async attach(): Promise<void> {
    await this.#attach(await this.#readLinks());
  }

  /** attach() with the interfaces as just read. */
  async #attach(links: ReadonlyMap<string, InterfaceInfo>): Promise<void> {
    const dir = this.#opts.bpffsDir;
    if (!isBpffs(existsSync(dir) ? dir : dirname(dir))) throw new NodePortError(`nodeport: bpffsDir "${dir}" is not on a bpffs`);
    mkdirSync(this.linksDir, { recursive: true });
    const interfaces = this.#opts.interfaces.map((name) => {
      const info = links.get(name);
      if (info === undefined) throw new NodePortError(`nodeport: interface "${name}" does not exist`);
      return info;
    });
    const mesh = this.#opts.meshInterface === undefined ? undefined : links.get(this.#opts.meshInterface);
    if (mesh !== undefined && !interfaces.some((i) => i.name === mesh.name)) interfaces.push(mesh);

    const reused = this.#reusableObject();
    const obj = reused ?? BpfObject.open(this.#opts.objectPath ?? bpfObjectPath('nodeport'), { name: 'nodeport' });
    let pending: PendingUpgrade | undefined;
    let attached = false;
    const swapsBefore = this.#swaps.length;
    try {
      if (reused === undefined) {
        const stagedOwn = this.#configure(obj);
        await obj.loadAsync();
        const sharedDir = this.#opts.sharedMapsDir ?? dir;
        if (stagedOwn.length > 0 || sharedDir !== dir) pending = { obj, stagedOwn, programs: [] };
        checkMapLayouts(obj.maps());
        checkOwnLayouts(obj.maps());
      }
      this.#closeMaps();
      this.#maps = {
        sourceRanges: obj.map(NODEPORT_MAPS.sourceRanges.name),
        snat: obj.map(NODEPORT_MAPS.snat.name),
        stats: obj.map(NODEPORT_MAPS.stats.name),
      };
      // Links of interfaces that are no longer configured go (clsact filters there cannot be found).
      const configured = new Set(interfaces.map((i) => i.name));
      for (const pin of this.#linkPins()) {
        const parsed = parseLinkPin(pin);
        if (parsed !== undefined && !configured.has(parsed.iface)) this.#destroyLink(pin, 'an interface no longer configured');
      }
      // Never half a data path: what this call attached goes again; what it adopted stays.
      this.#attachments = await UndoStack.run((undo) => {
        const attachments: NodePortAttachment[] = [];
        for (const iface of interfaces) {
          for (const direction of DIRECTIONS) attachments.push(this.#attachOne(obj, iface, direction, undo, pending));
        }
        return attachments;
      });
      attached = true;
    } finally {
      // Attached programs live on in their links and filters; a failed attach lets its object go
      // (a kept one too: the next loads afresh).
      if (!attached) {
        obj.close();
        if (reused !== undefined) this.#loaded = undefined;
      }
    }
    // Kept either way: to replace the running programs at commitUpgrade(), or to attach again.
    if (reused === undefined) {
      this.#dropLoaded();
      if (pending === undefined) this.#loaded = loadedObject(obj, dir);
    }
    this.#pending?.obj.close();
    this.#pending = pending;
    this.#meshIfindex = mesh?.ifindex;
    for (const swap of this.#swaps.slice(swapsBefore)) this.#log?.info(swapLogFields(swap), 'nodeport: tc program replaced in place');
    const made = this.#attachments.filter((a) => a.attached).length;
    this.#log?.info({ interfaces: interfaces.map((i) => i.name), attached: made, adopted: this.#attachments.length - made, upgradePending: pending !== undefined }, 'nodeport: tc programs in place');
  }

  /**
   * Finishes a staged rebuild (the maps the programs will read hold the full service map by now):
   * copies flows and affinity from the old maps where ours were staged, swaps every program
   * attach() deferred, copies what the old programs made meanwhile, and moves our staged pins over
   * the old ones. The proxy's staged pins are its own to move, after this. A failure leaves it
   * pending; calling again finishes it.
   */
  async commitUpgrade(): Promise<ProgramSwap[]> {
    const pending = this.#pending;
    if (pending === undefined) return [];
    const dir = this.#opts.bpffsDir;
    // What the programs remember (flows, outside clients' affinity) goes over; the counters start
    // again, as any counter does after an upgrade.
    const remembered = [NODEPORT_MAPS.conntrack.name, NODEPORT_MAPS.pending.name, NODEPORT_MAPS.affinity.name].filter((name) => pending.stagedOwn.includes(name));
    const copyRemembered = (onlyMissing: boolean): void => {
      for (const name of remembered) copyToStaged(dir, name, { onlyMissing });
    };
    copyRemembered(false);
    const swaps: ProgramSwap[] = [];
    for (const { program, pin, filter } of pending.programs) {
      let swap: ProgramSwap | undefined;
      if (pin !== undefined) {
        const link = openPinnedLink(pin);
        try {
          swap = swapLinkProgram(link, pending.obj, program, pin);
        } finally {
          link.close();
        }
      } else if (filter !== undefined) {
        swap = swapFilterProgram(filter, pending.obj, program);
      }
      if (swap !== undefined) {
        swaps.push(swap);
        this.#swaps.push(swap);
        this.#log?.info(swapLogFields(swap), 'nodeport: tc program replaced in place');
      }
    }
    copyRemembered(true);
    for (const name of pending.stagedOwn) renameSync(join(stagingDir(dir), name), join(dir, name));
    // Only ours were staged (the proxy's maps kept their layout): nobody else removes the directory.
    if (existsSync(stagingDir(dir)) && readdirSync(stagingDir(dir)).length === 0) rmdirSync(stagingDir(dir));
    pending.obj.close();
    this.#pending = undefined;
    return swaps;
  }

  /**
   * Writes what the tc programs need beyond the proxy's maps: loadBalancerSourceRanges and the
   * fallback masquerade addresses. Only differences are written; returns the entries written or
   * deleted. Call it before the proxy writes services that carry WL_SVC_SOURCE_RANGES.
   */
  async apply(map: ServiceMap): Promise<number> {
    await this.#followMeshInterface();
    const maps = this.#openMaps();
    let written = 0;

    for (const [index, family] of [[0, 4], [1, 6]] as const) {
      const value = Buffer.alloc(NODEPORT_MAPS.snat.value);
      const ip = map.nodePortAddresses.find((a) => a.family === family);
      if (ip !== undefined) writeAddress(value, NP_SNAT_VALUE.fields.addr.offset, ip);
      const key = u32(index);
      if (!maps.snat.lookup(key)?.equals(value)) {
        maps.snat.update(key, value);
        written++;
      }
    }

    const wanted = new Map<string, Buffer>();
    for (const p of map.servicePorts) {
      if (p.loadBalancerSourceRanges.length === 0 || p.protocol === 'SCTP') continue;
      for (const lb of p.loadBalancerIPs) {
        for (const range of p.loadBalancerSourceRanges) {
          if (range.family !== lb.family) continue;
          const key = sourceRangeKey(lb, p.port, PROTOCOL_NUMBERS[p.protocol], { family: range.family, value: range.addr }, range.bits);
          wanted.set(key.toString('hex'), key);
        }
      }
    }
    const present = new Set(maps.sourceRanges.keys().map((k) => k.toString('hex')));
    const stale = [...present].filter((hex) => !wanted.has(hex)).map((hex) => Buffer.from(hex, 'hex'));
    const missing = [...wanted].filter(([hex]) => !present.has(hex)).map(([, key]) => key);
    // Additions first: a range that moves from one entry to another never leaves a gap.
    if (missing.length > 0) written += maps.sourceRanges.updateBatch(Buffer.concat(missing), Buffer.alloc(missing.length * NODEPORT_MAPS.sourceRanges.value));
    if (stale.length > 0) written += maps.sourceRanges.deleteBatch(Buffer.concat(stale));
    return written;
  }

  /** The programs' counters, summed over CPUs. */
  stats(): Record<NodePortStat, bigint> {
    return sumCounters(this.#openMaps().stats, NODEPORT_STATS);
  }

  /**
   * Detaches every program this data path attached (here or in an earlier run: pinned links and
   * our clsact filters on the configured interfaces) and removes its own pins, also a pin at a
   * link's path that holds no link. Other programs' filters, the qdisc and the proxy's maps stay.
   * Returns how many programs were detached.
   */
  async cleanup(): Promise<number> {
    const failures: string[] = [];
    let detached = 0;
    const attempt = (what: string, step: () => void): void => {
      try {
        step();
      } catch (error) {
        failures.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    for (const pin of this.#linkPins()) {
      attempt(`link ${pin}`, () => {
        const link = unlessNotALink(() => openPinnedLink(pin));
        if (link === undefined) {
          unpin(pin);
          return;
        }
        link.destroy();
        detached++;
      });
    }
    for (const name of [...this.#opts.interfaces, ...(this.#opts.meshInterface === undefined ? [] : [this.#opts.meshInterface])]) {
      for (const direction of DIRECTIONS) {
        const filter = this.#filterId(name, direction);
        attempt(`clsact filter on ${name} ${direction}`, () => {
          if (filterProgram(filter) !== undefined && detachTcFilter(filter)) detached++;
        });
      }
    }
    this.close();
    for (const { name } of Object.values(NODEPORT_MAPS)) attempt(`pin of map ${name}`, () => unpin(join(this.#opts.bpffsDir, name)));
    // The links directory is shared with the socket programs: only an empty one goes.
    attempt(`directory ${this.linksDir}`, () => {
      try {
        rmdirSync(this.linksDir);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTEMPTY') throw error;
      }
    });
    this.#attachments = [];
    if (failures.length > 0) throw new NodePortError(`nodeport cleanup: ${failures.join('; ')}`);
    return detached;
  }

  /** Lets go of this process's handles (maps, loaded objects); what is attached and pinned stays. */
  close(): void {
    this.#closeMaps();
    this.#dropLoaded();
    this.#pending?.obj.close();
    this.#pending = undefined;
  }

  /** The kept object when every map it loaded is still the one pinned at its path (nobody cleaned up or rebuilt them since). */
  #reusableObject(): BpfObject | undefined {
    const loaded = this.#loaded;
    if (loaded === undefined) return undefined;
    for (const [pin, id] of loaded.mapIds) {
      const pinned = unlessMissing(() => openPinnedMap(pin));
      pinned?.close();
      if (pinned?.id !== id) {
        this.#dropLoaded();
        return undefined;
      }
    }
    return loaded.obj;
  }

  #dropLoaded(): void {
    this.#loaded?.obj.close();
    this.#loaded = undefined;
  }

  /**
   * Sets constants, sizes and pin paths; returns our own maps whose pin holds another layout or
   * size (staged instead: the running programs keep the old ones until commitUpgrade()).
   */
  #configure(obj: BpfObject): string[] {
    const ports = this.#opts.snatPorts ?? { min: 61000, max: 65535 };
    const timeouts = this.#opts.timeouts ?? {};
    obj.setConstant('snat_port_min', ports.min);
    obj.setConstant('snat_port_max', ports.max);
    obj.setConstant('ct_timeout_tcp', timeouts.tcp ?? 21600);
    obj.setConstant('ct_timeout_udp', timeouts.udp ?? 120);
    obj.setConstant('ct_timeout_closing', timeouts.closing ?? 10);
    obj.setConstant('ct_timeout_unconfirmed', timeouts.unconfirmed ?? 30);
    obj.setConstant('snat_reclaim_age', this.#opts.snatReclaimAge ?? 1);
    const shared = new Set<string>(Object.values(MAP_NAMES));
    const staged: string[] = [];
    for (const info of obj.maps()) {
      if (info.internal) continue;
      let pin = join(shared.has(info.name) ? (this.#opts.sharedMapsDir ?? this.#opts.bpffsDir) : this.#opts.bpffsDir, info.name);
      const pinned = unlessMissing(() => openPinnedMap(pin));
      // libbpf re-uses a pin only when the sizes match: shared maps are the proxy's, whose size
      // this object takes over; ours have the size asked for, else the pinned one.
      const size = (shared.has(info.name) ? undefined : this.#sizes.get(info.name)) ?? pinned?.maxEntries ?? info.maxEntries;
      if (pinned !== undefined && !shared.has(info.name) && layoutDifferences(pinned, { ...info, maxEntries: size }).length > 0) {
        // Another build's layout, or another size: a new map beside it, swapped in by commitUpgrade().
        staged.push(info.name);
        mkdirSync(stagingDir(this.#opts.bpffsDir), { recursive: true });
        pin = join(stagingDir(this.#opts.bpffsDir), info.name);
        unpin(pin);
      }
      pinned?.close();
      if (size !== info.maxEntries) obj.setMaxEntries(info.name, size);
      obj.setMapPinPath(info.name, pin);
    }
    if (staged.length > 0) this.#log?.warn({ maps: staged }, 'nodeport: pinned maps of another layout or size; new ones are built beside them and replace them after the first full write');
    return staged;
  }

  /** Attaches one program, or adopts it; `undo` gets the step that would detach what it attached. */
  #attachOne(obj: BpfObject, iface: InterfaceInfo, direction: Direction, undo: UndoStack, pending: PendingUpgrade | undefined): NodePortAttachment {
    const program = iface.mesh && iface.l3 && direction === 'ingress' ? 'np_ingress_mesh' : `np_${direction}${iface.l3 ? '_l3' : ''}`;
    const target = { interface: iface.name, direction, ...(this.#opts.netns === undefined ? {} : { netns: this.#opts.netns }) };
    const pin = join(this.linksDir, `${LINK_PREFIX}${iface.name}-${iface.ifindex}-${direction}`);
    const base = { interface: iface.name, direction, program };
    // A pin of this interface for an ifindex it no longer has: the device was re-created and the
    // old link is defunct.
    for (const old of this.#linkPins()) {
      const parsed = parseLinkPin(old);
      if (old !== pin && parsed?.iface === iface.name && parsed.direction === direction) this.#destroyLink(old, 'a re-created interface');
    }
    const adopted = unlessMissing(() => openPinnedLink(pin));
    if (adopted !== undefined) {
      try {
        // During a rebuild the running program stays until the new maps are full.
        if (pending !== undefined) pending.programs.push({ program, pin });
        else this.#recordSwap(swapOrKeep(() => swapLinkProgram(adopted, obj, program, pin), (e) => this.#keep(e)));
      } finally {
        adopted.close();
      }
      return { ...base, mode: 'tcx', pin, attached: false };
    }
    const filter = this.#filterId(iface.name, direction);
    if (this.#opts.tcMode !== 'tcx' && filterProgram(filter) !== undefined) {
      if (pending !== undefined) pending.programs.push({ program, filter });
      else this.#recordSwap(swapOrKeep(() => swapFilterProgram(filter, obj, program), (e) => this.#keep(e)));
      return { ...base, mode: 'clsact', attached: false };
    }
    const attachment = obj.attachTc(program, target, {
      mode: this.#opts.tcMode ?? 'auto',
      handle: CLSACT_HANDLE,
      priority: CLSACT_PRIORITY,
    });
    if (attachment.mode === 'clsact') {
      undo.push(() => detachTcFilter(filter));
      return { ...base, mode: 'clsact', attached: true };
    }
    try {
      attachment.link.pin(pin);
    } catch (error) {
      attachment.link.destroy();
      throw error;
    }
    attachment.link.close();
    undo.push(() => openPinnedLink(pin).destroy());
    return { ...base, mode: 'tcx', pin, attached: true };
  }

  #recordSwap(swap: ProgramSwap | undefined): void {
    if (swap !== undefined) this.#swaps.push(swap);
  }

  /** A program of other code over the same maps still serves correctly: an upgrade deferred, not a failure. */
  #keep(error: ProgramSwapError): void {
    this.#log?.warn({ program: error.program, where: error.where, err: error.message }, 'nodeport: a tc program of other code serves on (the same maps): replacing it failed');
  }

  #destroyLink(pin: string, why: string): void {
    openPinnedLink(pin).destroy();
    this.#log?.info({ pin }, `nodeport: removed the link of ${why}`);
  }

  #filterId(name: string, direction: Direction): TcFilterId {
    return { interface: name, direction, handle: CLSACT_HANDLE, priority: CLSACT_PRIORITY, ...(this.#opts.netns === undefined ? {} : { netns: this.#opts.netns }) };
  }

  /** Our link pins, of any interface (a configured one may have been dropped since). */
  #linkPins(): string[] {
    try {
      return readdirSync(this.linksDir)
        .filter((name) => name.startsWith(LINK_PREFIX))
        .map((name) => join(this.linksDir, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  /** Attaches again when the mesh interface appeared, went or was re-created since the last attach(). */
  async #followMeshInterface(): Promise<void> {
    const name = this.#opts.meshInterface;
    if (name === undefined || this.#pending !== undefined) return;
    const links = await this.#readLinks();
    if (links.get(name)?.ifindex === this.#meshIfindex) return;
    await this.#attach(links);
  }

  /** Every interface there is, by name: one `ip` process for all of them (each costs the agent a fork). */
  async #readLinks(): Promise<Map<string, InterfaceInfo>> {
    const argv = ['ip', '-j', 'link', 'show'];
    const netns = this.#opts.netns;
    const result = netns === undefined ? await runCommand(argv[0] as string, argv.slice(1), { allowFailure: true }) : await runCommand('nsenter', [`--net=${netns}`, ...argv], { allowFailure: true });
    if (result.exitCode !== 0) throw new NodePortError(`nodeport: ip link show: ${result.stderr.trim().split('\n')[0] ?? ''}`);
    const links = new Map<string, InterfaceInfo>();
    for (const { name, index, linkType } of (JSON.parse(result.stdout || '[]') as unknown[]).map(parseLink)) {
      links.set(name, { name, ifindex: index, l3: linkType === 'none', mesh: name === this.#opts.meshInterface });
    }
    return links;
  }

  #openMaps(): OwnMaps {
    this.#maps ??= {
      sourceRanges: openPinnedMap(join(this.#opts.bpffsDir, NODEPORT_MAPS.sourceRanges.name)),
      snat: openPinnedMap(join(this.#opts.bpffsDir, NODEPORT_MAPS.snat.name)),
      stats: openPinnedMap(join(this.#opts.bpffsDir, NODEPORT_MAPS.stats.name)),
    };
    return this.#maps;
  }

  #closeMaps(): void {
    if (this.#maps === undefined) return;
    for (const map of Object.values(this.#maps)) map.close();
    this.#maps = undefined;
  }
}

/** A loaded object and the ids of the maps it pinned (or re-used), by pin path. */
interface LoadedObject {
  readonly obj: BpfObject;
  readonly mapIds: ReadonlyMap<string, number>;
}

/** Records which kernel map each of the object's pins held at load (all in `dir`: nothing was staged). */
function loadedObject(obj: BpfObject, dir: string): LoadedObject {
  const mapIds = new Map<string, number>();
  for (const info of obj.maps()) {
    if (info.internal) continue;
    const map = obj.map(info.name);
    mapIds.set(join(dir, info.name), map.id);
    map.close();
  }
  return { obj, mapIds };
}

/** The sizes asked for, in entries, by map name (two entries per flow). */
function ownMapSizes(sizes: NodePortSizes): Map<string, number> {
  const out = new Map<string, number>();
  const set = (name: string, value: number | undefined, what: string, entriesEach: number): void => {
    if (value === undefined) return;
    if (!Number.isSafeInteger(value) || value < 1 || value * entriesEach > MAX_MAP_ENTRIES) {
      throw new NodePortError(`nodeport: ${what} ${value} is not a whole number within 1-${MAX_MAP_ENTRIES / entriesEach}`);
    }
    out.set(name, value * entriesEach);
  };
  set(NODEPORT_MAPS.conntrack.name, sizes.flows, 'flows', 2);
  set(NODEPORT_MAPS.pending.name, sizes.pendingFlows, 'pendingFlows', 2);
  set(NODEPORT_MAPS.affinity.name, sizes.affinityEntries, 'affinityEntries', 1);
  return out;
}

/** Bound of a map size the agent asks for (2^25 entries: gigabytes of preallocated LRU). */
export const MAX_MAP_ENTRIES = 1 << 25;

/**
 * The counters of the tc data path pinned in `bpffsDir`, summed over CPUs, without attaching or
 * loading anything (for the agent's metrics); undefined when the data path has not pinned them.
 */
export function readNodePortStats(bpffsDir: string): Record<NodePortStat, bigint> | undefined {
  return readPinnedCounters(join(bpffsDir, NODEPORT_MAPS.stats.name), NODEPORT_STATS);
}

function checkOwnLayouts(maps: readonly { name: string; keySize: number; valueSize: number }[]): void {
  for (const layout of Object.values(NODEPORT_MAPS)) {
    const map = maps.find((m) => m.name === layout.name);
    if (map === undefined || map.keySize !== layout.key || map.valueSize !== layout.value) {
      const found = map === undefined ? 'missing' : `key ${map.keySize}, value ${map.valueSize}`;
      throw new NodePortError(`nodeport: map ${layout.name}: ${found} in the object, key ${layout.key}, value ${layout.value} expected`);
    }
  }
}

/** A wl_np_ranges key: {prefixlen, frontend addr, port, protocol, family, pad, source, pad}. */
export function sourceRangeKey(frontend: Ip, port: number, protocol: number, source: Ip, bits: number): Buffer {
  if (bits < 0 || bits > widthOf(source.family)) throw new NodePortError(`nodeport: source range /${bits} does not fit IPv${source.family}`);
  const key = Buffer.alloc(NP_RANGE_KEY.size);
  key.writeUInt32LE(RANGE_FRONTEND_BITS + bits, RANGE_KEY.prefixlen.offset);
  writeAddress(key, RANGE_KEY.addr.offset, frontend);
  key.writeUInt16BE(port, RANGE_KEY.port.offset);
  key[RANGE_KEY.protocol.offset] = protocol;
  key[RANGE_KEY.family.offset] = frontend.family;
  writeAddress(key, RANGE_KEY.source.offset, source);
  return key;
}

function u32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(value);
  return buf;
}

/** A link pin's name (nodeport-<iface>-<ifindex>-<direction>) taken apart; undefined when it is not one of ours. */
function parseLinkPin(pin: string): { readonly iface: string; readonly ifindex: number; readonly direction: Direction } | undefined {
  const match = /^nodeport-(.+)-(\d+)-(ingress|egress)$/.exec(basename(pin));
  if (match === null) return undefined;
  return { iface: match[1] as string, ifindex: Number(match[2]), direction: match[3] as Direction };
}
