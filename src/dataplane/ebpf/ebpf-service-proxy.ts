// `--service-proxy ebpf`: the service map as entries in pinned BPF maps, read by the socket-LB
// programs on the cgroup root (east-west) and, when enabled, by the tc NodePort data path on the
// node's interfaces (north-south, nodeport.ts). A change writes only the entries of the service
// ports that changed; the programs and maps outlive the agent, and the next one re-adopts them.
// Connected UDP sockets still sent to a removed backend are ended afterwards (sock-term.ts).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ensureBpffs, findBpffsMount, findCgroup2Mount, isBpffs } from '../../bpf/index.js';
import type { Ip } from '../../model/ip.js';
import type { ServiceMap } from '../../model/service.js';
import type { Logger } from '../../observability/logger.js';
import type { ServiceChanges } from '../../services/changes.js';
import type { StaleUdpFlow } from '../../services/stale-udp-flows.js';
import { SerialQueue } from '../serial-queue.js';
import type { ServiceProxy, ServiceProxyReport } from '../service-proxy.js';
import { UndoStack } from '../undo-stack.js';
import { BACKEND_STRIDE, EntryBatch, MAP_LAYOUTS, PIN_DIR, SLOT_STRIDE, readNodeAddrKey, writeNodeAddrKey } from './codec.js';
import { frontendsOf } from './frontends.js';
import { type FullTable, MapWrites, type PortChange, ServiceTable, type TableMemory, type UnfitFrontend } from './service-table.js';
import { NodePortDatapath, type NodePortSizes } from './nodeport.js';
import { SockLb, removeSockLbPins } from './sock-lb.js';
import { SockTerminator } from './sock-term.js';
import { discardStaging, settleStaging } from './map-staging.js';
import { type ProgramSwap, swapLogFields } from './program-swap.js';

/** The tc NodePort data path as this proxy drives it (NodePortDatapath; tests may substitute one). */
export interface NorthSouthDatapath {
  attach(): Promise<void>;
  /** Returns the entries it wrote. */
  apply(map: ServiceMap): Promise<number>;
  /** Resolves with whatever it reports (NodePortDatapath: the programs it detached). */
  cleanup(): Promise<unknown>;
  /** Programs attach() replaced in place; for NodePortDatapath, also those commitUpgrade() did. */
  readonly swaps?: readonly ProgramSwap[];
  /** attach() staged a map rebuild and left the running programs until commitUpgrade(). */
  readonly upgradePending?: boolean;
  commitUpgrade?(): Promise<ProgramSwap[]>;
  /** Lets go of this process's handles; what is attached and pinned stays. */
  close?(): void;
}

export interface NorthSouthOptions {
  readonly bpffsDir: string;
  /** Where the proxy's maps are: the staging directory while a rebuild waits for its first full write. */
  readonly sharedMapsDir?: string;
  readonly interfaces: readonly string[];
  /** The mesh's WireGuard interface, attached to once it exists (NodePortOptions.meshInterface). */
  readonly meshInterface?: string;
  readonly log?: Logger;
  readonly sizes?: NodePortSizes;
}

/** Sizes of the maps the programs fill (the agent's flags); unset: the header's, or what is pinned. */
export interface EbpfMapSizes {
  /** wl_sock_rev: sockets translated at connect()/sendmsg() that are open at once. */
  readonly sockLbEntries?: number;
  /** wl_affinity (pods) and wl_np_affinity (outside clients): ClientIP affinity choices. */
  readonly affinityEntries?: number;
  /** wl_np_ct: confirmed NodePort flows. */
  readonly nodePortFlows?: number;
  /** wl_np_pending: NodePort flows not confirmed yet. */
  readonly nodePortPendingFlows?: number;
  /** wl_services: service frontends (a ClusterIP, an external address, a NodePort per scope, each a port). */
  readonly serviceEntries?: number;
  /** wl_backends: distinct endpoints (address:port) over all services. */
  readonly backendEntries?: number;
}

export interface EbpfServiceProxyOptions {
  /** Where maps and links are pinned. Default: <bpffs mount>/wirelane (/sys/fs/bpf/wirelane). */
  readonly bpffsDir?: string;
  /** The cgroup v2 directory the socket programs attach to. Default: the cgroup2 mount (every process). */
  readonly cgroupRoot?: string;
  readonly log?: Logger;
  /** NodePort, ExternalIP and LB traffic from outside, by tc programs on these interfaces. */
  readonly nodePort?: { readonly enabled: boolean; readonly interfaces: readonly string[]; readonly meshInterface?: string };
  /** Default: build/bpf/sock_lb.bpf.o. */
  readonly objectPath?: string;
  /** Default: build/bpf/sock_term.bpf.o. */
  readonly sockTermObjectPath?: string;
  /** Default: nodeport.ts's NodePortDatapath. */
  readonly northSouth?: (options: NorthSouthOptions) => NorthSouthDatapath;
  /** A pinned map of another size is rebuilt and replaces the old one at the first full write. */
  readonly sizes?: EbpfMapSizes;
}

export interface EbpfServiceProxyReport extends ServiceProxyReport {
  /** Map entries written or deleted. */
  readonly written: number;
  /** Service ports whose entries were rewritten. */
  readonly ports: number;
  /** From the apply call to the last map write, in ms. */
  readonly ms: number;
  /** Of which computing the writes (the rest is the kernel's). */
  readonly planMs: number;
  /** Connected UDP sockets ended because their backend or frontend went away. */
  readonly socketsTerminated: number;
  readonly unfit: Readonly<Record<FullTable, number>>;
}

export class EbpfStartError extends Error {
  override readonly name = 'EbpfStartError';
}

/** The default pin directory: WL_PIN_DIR on the bpffs mount (/sys/fs/bpf when none is mounted yet). */
export function defaultBpffsDir(): string {
  return join(findBpffsMount() ?? '/sys/fs/bpf', PIN_DIR);
}

export class EbpfServiceProxy implements ServiceProxy {
  readonly mode = 'ebpf' as const;
  readonly pinDir: string;
  readonly cgroupRoot: string;
  readonly #log: Logger | undefined;
  readonly #sockLb: SockLb;
  readonly #northSouth: NorthSouthDatapath | undefined;
  readonly #terminator: SockTerminator | undefined;
  readonly #memory: TableMemory;
  #table: ServiceTable;
  /**
   * The table holds what the maps hold, not what the last apply said (first apply, after a failed
   * write, after cleanup): the next apply plans every port and sweeps what none claims.
   */
  #planEveryPort = true;
  /** wl_node_addrs as programmed, by key bytes. */
  #nodeAddrs: Map<string, Ip>;
  readonly #writes = new MapWrites();
  readonly #nodeAddrWrites = new EntryBatch(MAP_LAYOUTS.wl_node_addrs.key, MAP_LAYOUTS.wl_node_addrs.value);
  readonly #nodeAddrDeletes = new EntryBatch(MAP_LAYOUTS.wl_node_addrs.key, 0);
  readonly #queue = new SerialQueue();
  /** Socket programs replaced by a rebuild's commit (start-time swaps are the SockLb's). */
  readonly #committedSwaps: ProgramSwap[] = [];
  /** What the last apply's unfit frontends were, as logged: a new line only when it changes. */
  #unfitLogged = '';

  private constructor(pinDir: string, cgroupRoot: string, sockLb: SockLb, memory: TableMemory, northSouth: NorthSouthDatapath | undefined, terminator: SockTerminator | undefined, log: Logger | undefined) {
    this.pinDir = pinDir;
    this.cgroupRoot = cgroupRoot;
    this.#sockLb = sockLb;
    this.#northSouth = northSouth;
    this.#terminator = terminator;
    this.#log = log;
    this.#memory = memory;
    this.#table = readTable(sockLb, memory);
    this.#nodeAddrs = readNodeAddrs(sockLb);
  }

  /**
   * Mounts bpffs if needed, re-adopts the pins of a previous agent or loads and attaches the
   * programs, then attaches the tc data path when enabled. Throws EbpfStartError, having removed
   * whatever this call attached, when any step fails.
   */
  static async open(options: EbpfServiceProxyOptions = {}): Promise<EbpfServiceProxy> {
    const log = options.log;
    const pinDir = options.bpffsDir ?? defaultBpffsDir();
    const cgroupRoot = options.cgroupRoot ?? findCgroup2Mount();
    if (cgroupRoot === undefined) throw new EbpfStartError('eBPF service proxy: no cgroup v2 hierarchy is mounted (cgroup2 in /proc/mounts)');
    if (options.bpffsDir === undefined) {
      // Only the default place is mounted on demand (containers often lack /sys/fs/bpf).
      await startStep(`mounting bpffs at ${dirname(pinDir)}`, () => ensureBpffs(dirname(pinDir)));
    } else if (!isBpffs(nearestExisting(pinDir))) {
      // Mounting over a directory someone named could hide what is in it: ask instead.
      throw new EbpfStartError(`eBPF service proxy: pin directory ${pinDir} is not on a bpffs (mount -t bpf bpf DIR first)`);
    }
    const started = await UndoStack.run(async (undo) => {
      const sockLb = await startStep(undefined, () => {
        const settled = settleStaging(pinDir);
        if (settled !== undefined) log?.warn({ pinDir, ...settled }, 'eBPF service proxy: a map rebuild an earlier agent left unfinished was settled');
        const sizes = {
          sockRevEntries: options.sizes?.sockLbEntries,
          affinityEntries: options.sizes?.affinityEntries,
          serviceEntries: options.sizes?.serviceEntries,
          backends: options.sizes?.backendEntries,
        };
        return SockLb.start({ pinDir, cgroupRoot, sizes, ...(options.objectPath !== undefined && { objectPath: options.objectPath }) });
      });
      // A fresh start undoes everything, an adopting one only its staged rebuild (the pins it
      // found were serving and stay).
      undo.push(() => {
        sockLb.close();
        if (!sockLb.adopted) removeSockLbPins(pinDir);
        else discardStaging(pinDir);
      });
      const memory = await startStep('mapping wl_slots and wl_backends', () => mapMemory(sockLb));
      log?.info({ pinDir, cgroupRoot, adopted: sockLb.adopted }, sockLb.adopted ? 'eBPF socket LB re-adopted from pins' : 'eBPF socket LB attached');
      for (const swap of sockLb.swaps) log?.info(swapLogFields(swap), 'eBPF service proxy: socket program replaced in place');
      for (const e of sockLb.unswapped) log?.warn({ program: e.program, where: e.where, err: e.message }, 'eBPF service proxy: a socket program of other code serves on (the same maps): replacing it failed');
      if (sockLb.staged !== undefined) {
        log?.warn({ pinDir, maps: Object.fromEntries(sockLb.staged) }, 'eBPF service proxy: pinned maps have another layout; new maps are built beside them and replace them after the first full write');
      }
      // Both load over the socket LB's maps and nothing of each other's: the kernel verifies them
      // side by side on the thread pool.
      const terminating = loadTerminator(sockLb.mapsDir, options.sockTermObjectPath, log);
      undo.push(async () => (await terminating)?.close());
      let northSouth: NorthSouthDatapath | undefined;
      const nodePort = options.nodePort;
      if (nodePort?.enabled) {
        northSouth = await startStep(`tc NodePort data path on ${nodePort.interfaces.join(', ')}`, async () => {
          const make = options.northSouth ?? ((o: NorthSouthOptions) => new NodePortDatapath(o));
          const sizes = { flows: options.sizes?.nodePortFlows, pendingFlows: options.sizes?.nodePortPendingFlows, affinityEntries: options.sizes?.affinityEntries };
          const mesh = nodePort.meshInterface;
          const datapath = make({ bpffsDir: pinDir, sharedMapsDir: sockLb.mapsDir, interfaces: nodePort.interfaces, sizes, ...(mesh !== undefined && { meshInterface: mesh }), ...(log && { log }) });
          // A failed attach() takes back what it attached itself; a fresh start removes the rest
          // too. Adopted pins were working before and stay: only this process's handles go.
          undo.push(() => (sockLb.adopted ? datapath.close?.() : datapath.cleanup()));
          await datapath.attach();
          return datapath;
        });
      }
      const terminator = await terminating;
      return { sockLb, memory, northSouth, terminator };
    });
    return new EbpfServiceProxy(pinDir, cgroupRoot, started.sockLb, started.memory, started.northSouth, started.terminator, log);
  }

  /** True when this instance took over pinned programs instead of attaching its own. */
  get adopted(): boolean {
    return this.#sockLb.adopted;
  }

  /** Pinned programs replaced in place by this proxy, socket and tc, at start and by a rebuild's commit. */
  get programSwaps(): readonly ProgramSwap[] {
    return [...this.#sockLb.swaps, ...this.#committedSwaps, ...(this.#northSouth?.swaps ?? [])];
  }

  /** A map rebuild is staged: the old programs serve until the first full write commits it. */
  get upgradePending(): boolean {
    return this.#sockLb.staged !== undefined || this.#northSouth?.upgradePending === true;
  }

  /** The maps, for inspection (tests, bench). */
  get maps(): SockLb['maps'] {
    return this.#sockLb.maps;
  }

  apply(changes: ServiceChanges): Promise<EbpfServiceProxyReport> {
    return this.#queue.run(async () => {
      const { map, keys, nodePortFamilies: families } = changes;
      // The tc side first: source ranges must be in place before services flagged with them appear.
      const northSouthWritten = (await this.#northSouth?.apply(map)) ?? 0;
      const started = performance.now();
      // Also what a previous agent left for services that are gone now.
      const sweep = this.#planEveryPort || changes.full;
      const plan: PortChange[] = [];
      const ports = map.servicePorts;
      // Indexed, no destructuring: unoptimized, `[a, b] = pair` runs the iterator protocol.
      if (sweep) for (let i = 0; i < ports.length; i++) plan.push({ portKey: keys[i]!, frontends: frontendsOf(ports[i]!, families) });
      else {
        for (let u = 0; u < changes.updated.length; u++) {
          const i = changes.updated[u]!;
          plan.push({ portKey: keys[i]!, frontends: frontendsOf(ports[i]!, families) });
        }
      }
      for (const portKey of changes.removed) plan.push({ portKey, frontends: undefined });
      const writes = this.#writes;
      writes.clear();
      this.#table.plan(plan, writes, { sweep });
      for (const c of this.#table.conflicts) {
        this.#log?.warn({ servicePort: c.portKey, owner: c.owner, frontend: c.frontend }, 'eBPF service proxy: frontend already served by another service port; skipped');
      }
      const unfit = this.#reportUnfit(this.#table.unfit);
      const nodeAddrs = this.#planNodeAddrs(map.nodePortAddresses);
      const planMs = performance.now() - started;
      let written = 0;
      try {
        written = this.#write(writes);
      } catch (error) {
        // The maps hold part of this change: read them back before the next apply.
        this.#table = readTable(this.#sockLb, this.#memory);
        this.#nodeAddrs = readNodeAddrs(this.#sockLb);
        this.#planEveryPort = true;
        throw new Error(`eBPF service proxy: writing the maps in ${this.pinDir}: ${(error as Error).message}`, { cause: error });
      }
      this.#nodeAddrs = nodeAddrs;
      // What did not fit is planned again at every apply until it does: room a removal frees (or a
      // bigger map after a restart) is used without waiting for its service to change.
      this.#planEveryPort = this.#table.unfit.length > 0;
      const ms = performance.now() - started;
      const stale = changes.staleUdpFlows;
      const socketsTerminated = stale.length > 0 ? this.#terminate(stale) : 0;
      if (this.upgradePending) await this.#commitUpgrade();
      return { written: written + northSouthWritten, ports: plan.length, ms, planMs, socketsTerminated, unfit };
    });
  }

  /**
   * The staged maps hold the full service map now: the tc programs, then the socket programs,
   * move to them (each swap whole), and the staged pins replace the old ones. A failure throws and
   * leaves the rest staged: the next apply keeps writing the new maps and retries the switch.
   */
  async #commitUpgrade(): Promise<void> {
    const staged = this.#sockLb.staged;
    try {
      await this.#northSouth?.commitUpgrade?.();
      const swaps = this.#sockLb.commit(this.cgroupRoot);
      this.#committedSwaps.push(...swaps);
      for (const swap of swaps) this.#log?.info(swapLogFields(swap), 'eBPF service proxy: socket program replaced in place');
    } catch (error) {
      throw new Error(`eBPF service proxy: switching to the rebuilt maps in ${this.pinDir}: ${(error as Error).message}`, { cause: error });
    }
    if (staged !== undefined) this.#log?.info({ pinDir: this.pinDir, maps: [...staged.keys()] }, 'eBPF service proxy: rebuilt maps in service, the old ones released');
  }

  /**
   * One line when the frontends the maps have no room for change (every apply re-plans them, so
   * a line per apply would repeat itself every resync), and the count by full table for the metric.
   */
  #reportUnfit(unfit: readonly UnfitFrontend[]): Record<FullTable, number> {
    const counts: Record<FullTable, number> = { services: 0, backends: 0, slots: 0 };
    for (const u of unfit) counts[u.table]++;
    const seen = unfit.map((u) => `${u.portKey} ${u.frontend} ${u.table} ${u.kept}`).join('\n');
    if (seen === this.#unfitLogged) return counts;
    this.#unfitLogged = seen;
    if (unfit.length === 0) {
      this.#log?.info('eBPF service proxy: every service frontend fits in the maps again');
      return counts;
    }
    const { maps } = this.#sockLb;
    const sizes = { services: maps.services.maxEntries, backends: maps.backends.maxEntries - 1, slots: maps.slots.maxEntries };
    const full = (Object.keys(counts) as FullTable[]).filter((t) => counts[t] > 0).map((t) => `${MAP_TABLE[t].map} (${sizes[t]} ${MAP_TABLE[t].unit}${MAP_TABLE[t].flag})`);
    const kept = unfit.filter((u) => u.kept).length;
    const examples = unfit.slice(0, 5).map((u) => `${u.portKey} ${u.frontend}${u.kept ? ' (kept its previous endpoints)' : ''}`);
    this.#log?.warn(
      { notProgrammed: unfit.length - kept, keptPreviousEndpoints: kept, byTable: counts, examples },
      `eBPF service proxy: ${unfit.length} service frontend(s) do not fit: ${full.join(', ')} full; ${unfit.length - kept} not programmed, ${kept} kept their previous endpoints (first: ${examples.join('; ')})`,
    );
    return counts;
  }

  /** The maps are right whatever happens here: a failure costs only the stale sockets, so it is logged, not thrown. */
  #terminate(stale: readonly StaleUdpFlow[]): number {
    if (!this.#terminator) return 0;
    try {
      const { sockets, namespaces } = this.#terminator.terminate(stale);
      if (sockets > 0) this.#log?.info({ sockets, namespaces }, 'eBPF service proxy: ended connected UDP sockets of removed backends');
      return sockets;
    } catch (error) {
      this.#log?.error({ err: (error as Error).message }, 'eBPF service proxy: ending UDP sockets of removed backends failed');
      return 0;
    }
  }

  /** New node addresses are written before the services, gone ones deleted after: a NodePort never points at nothing. */
  #planNodeAddrs(addresses: readonly Ip[]): Map<string, Ip> {
    this.#nodeAddrWrites.clear();
    this.#nodeAddrDeletes.clear();
    const next = new Map<string, Ip>();
    const scratch = Buffer.alloc(MAP_LAYOUTS.wl_node_addrs.key);
    for (const ip of addresses) {
      writeNodeAddrKey(scratch, 0, ip);
      const id = scratch.toString('latin1');
      next.set(id, ip);
      if (!this.#nodeAddrs.has(id)) addNodeAddr(this.#nodeAddrWrites, ip);
    }
    for (const [id, ip] of this.#nodeAddrs) if (!next.has(id)) addNodeAddr(this.#nodeAddrDeletes, ip);
    return next;
  }

  /** The kernel's part of a change, between plan() and finish(): node addresses and service entries. */
  #write(writes: MapWrites): number {
    const { services, nodeAddrs } = this.#sockLb.maps;
    let n = 0;
    if (this.#nodeAddrWrites.count > 0) n += nodeAddrs.updateBatch(this.#nodeAddrWrites.keyBytes(), this.#nodeAddrWrites.valueBytes());
    if (writes.heads.count > 0) n += services.updateBatch(writes.heads.keyBytes(), writes.heads.valueBytes());
    if (writes.headDeletes.count > 0) n += services.deleteBatch(writes.headDeletes.keyBytes());
    this.#table.finish(writes);
    if (this.#nodeAddrDeletes.count > 0) n += nodeAddrs.deleteBatch(this.#nodeAddrDeletes.keyBytes());
    return n + writes.stores;
  }

  /**
   * Detaches every program, removes every pin and the pin directory (also pins a crashed agent
   * left there), and the tc data path's filters.
   */
  cleanup(): Promise<void> {
    return this.#queue.run(async () => {
      await this.#northSouth?.cleanup();
      this.#sockLb.close();
      this.#terminator?.close();
      const detached = removeSockLbPins(this.pinDir);
      this.#log?.info({ pinDir: this.pinDir, detached }, 'eBPF service proxy removed');
      this.#planEveryPort = true;
    });
  }

  /** Lets go of this process's handles and leaves everything attached and pinned, as a crash would. */
  close(): void {
    this.#sockLb.close();
    this.#terminator?.close();
    this.#northSouth?.close?.();
  }
}

/** What the unfit report names per full table: the map, what its size counts, and the flag that sets it. */
const MAP_TABLE: Readonly<Record<FullTable, { map: string; unit: string; flag: string }>> = {
  services: { map: 'wl_services', unit: 'frontends', flag: ': --service-entries' },
  backends: { map: 'wl_backends', unit: 'backends', flag: ': --backend-entries' },
  slots: { map: 'wl_slots', unit: 'slots', flag: '' },
};

function addNodeAddr(batch: EntryBatch, ip: Ip): void {
  // add() first: it may replace the buffer.
  const at = batch.add();
  writeNodeAddrKey(batch.keys, at * batch.keySize, ip);
}

/** One step of open(): its failure is an EbpfStartError naming the step (`what`) and why. */
async function startStep<T>(what: string | undefined, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw new EbpfStartError(`eBPF service proxy: ${what === undefined ? '' : `${what}: `}${(error as Error).message}`, { cause: error });
  }
}

/**
 * The socket terminator, or undefined where the kernel cannot run it: services work without it
 * (Cilium runs so on kernels before 6.5), only a connected UDP socket stays on a removed backend
 * until the application reconnects.
 */
async function loadTerminator(mapsDir: string, objectPath: string | undefined, log: Logger | undefined): Promise<SockTerminator | undefined> {
  try {
    return await SockTerminator.load(mapsDir, objectPath);
  } catch (error) {
    log?.warn({ err: (error as Error).message }, 'eBPF service proxy: cannot end UDP sockets of removed backends (needs bpf_sock_destroy, kernel 6.5+)');
    return undefined;
  }
}

function nearestExisting(path: string): string {
  let dir = path;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

/** wl_slots and wl_backends as this process's mapping of them (the same memory the programs read). */
function mapMemory(sockLb: SockLb): TableMemory {
  const slots = sockLb.maps.slots.mmap();
  const backends = sockLb.maps.backends.mmap();
  // The table indexes by the codec's strides: a kernel laying arrays out otherwise must stop here.
  if (slots.stride !== SLOT_STRIDE * 4 || backends.stride !== BACKEND_STRIDE * 4) {
    throw new Error(`array strides ${slots.stride} and ${backends.stride} bytes, the codec expects ${SLOT_STRIDE * 4} and ${BACKEND_STRIDE * 4}`);
  }
  return { slots: new Uint32Array(slots.buffer), backends: new Uint32Array(backends.buffer) };
}

function readTable(sockLb: SockLb, memory: TableMemory): ServiceTable {
  return ServiceTable.fromMaps(sockLb.maps.services.entries(), memory, sockLb.maps.services.maxEntries);
}

function readNodeAddrs(sockLb: SockLb): Map<string, Ip> {
  const out = new Map<string, Ip>();
  for (const key of sockLb.maps.nodeAddrs.keys()) out.set(key.toString('latin1'), readNodeAddrKey(key));
  return out;
}
