// `--service-proxy userspace`: kube-proxy's old userspace proxier, in this process. Every service
// port gets real proxy sockets (proxy-plan.ts says which), NodePorts are held open, and nat rules
// (portal-rules.ts) send service traffic to the sockets. Sockets live in the network namespace of
// this process; only the iptables part can be pointed at another one.
//
// Limitation of the mode: a backend sees the node (the proxy), never the client, so
// externalTrafficPolicy Local keeps only its endpoint restriction (and DROP without a local
// endpoint), not the client source IP. SCTP is not proxied (Node has no SCTP sockets).
import { type ConntrackFilter, type ConntrackOptions, deleteConntrack } from '../../host/conntrack.js';
import { type Family, formatIp, type Ip, parseIp } from '../../model/ip.js';
import type { ServiceMap } from '../../model/service.js';
import type { ServiceChanges } from '../../services/changes.js';
import { formatBackend } from '../../services/json.js';
import { createLogger, type Logger } from '../../observability/logger.js';
import { IptablesChains } from '../iptables/chains.js';
import { PartialApplyError, type WriteFailure } from '../partial-apply.js';
import { SerialQueue } from '../serial-queue.js';
import type { ServiceProxy, ServiceProxyReport } from '../service-proxy.js';
import { claimNodePort, type NodePortClaim, wildcardAddress } from './node-port-claim.js';
import { raiseOpenFileLimit, WANTED_OPEN_FILES } from './open-file-limit.js';
import { frontendAddress, nodePortClaimKey, portalRules, USERSPACE_OWNER } from './portal-rules.js';
import { isLoopback, type PlannedProxy, planProxies, type ProxyPlan } from './proxy-plan.js';
import { type PortRange, ProxyPorts, validatePortRange } from './proxy-ports.js';
import type { ProxySocket, ProxySocketStats } from './proxy-socket.js';
import { TcpProxy } from './tcp-proxy.js';
import { DEFAULT_UDP_IDLE_TIMEOUT_MS, UdpProxy } from './udp-proxy.js';

export interface UserspaceProxyOptions {
  /**
   * A non-loopback address of this host per family (one Ip or a list): host-originated service
   * traffic is DNATed there. For UDP it must be the source address the host uses towards service
   * IPs, or replies do not match the flow. A family without one gets no host portals.
   */
  readonly hostAddress: Ip | readonly Ip[];
  /** Ports for proxy sockets; default any free port. */
  readonly proxyPortRange?: PortRange;
  /** Idle time after which a UDP flow ends (--udp-timeout); default 250 ms. */
  readonly udpIdleTimeoutMs?: number;
  /**
   * Where proxy sockets listen; default the wildcard of each family ('0.0.0.0', '::'), reached
   * with REDIRECT. A specific address serves its family only (the other keeps the wildcard) and is
   * reached with DNAT.
   */
  readonly listenAddress?: string;
  /** Run the iptables commands in this network namespace; the sockets stay in this process's. */
  readonly netns?: string;
  /** Raise RLIMIT_NOFILE to 64,000 on the first apply (default true). */
  readonly raiseOpenFileLimit?: boolean;
  readonly log?: Logger;
  /** Tests: another conntrack deleter. */
  readonly deleteConntrack?: (filter: ConntrackFilter, opts: ConntrackOptions) => Promise<unknown>;
}

export interface UserspaceProxyStats {
  /** One entry per open proxy socket. */
  readonly proxies: readonly ({ readonly key: string; readonly port: number } & ProxySocketStats)[];
  /** NodePorts held open: `TCP/IPv4/30080` → the service port key holding it. */
  readonly nodePorts: Readonly<Record<string, string>>;
}

interface OpenProxy {
  readonly planned: PlannedProxy;
  readonly socket: ProxySocket;
}

interface HeldNodePort {
  readonly servicePort: string;
  readonly claim: NodePortClaim;
}

/**
 * What a UDP frontend sent where: conntrack entries of flows that went elsewhere are cleared. Not
 * the change's staleUdpFlows: here an entry NATs a frontend to this proxy's socket, never to an
 * endpoint (a gone endpoint is the socket's business), and which socket, if any, is host state no
 * map comparison sees (a socket that failed to open, a NodePort another service port holds).
 */
interface UdpPortal {
  readonly family: Family;
  readonly ip: Ip;
  readonly port: number;
  readonly target: string;
}

const DATAPLANE = 'userspace service proxy';

export class UserspaceServiceProxy implements ServiceProxy {
  readonly mode = 'userspace';
  private readonly chains: IptablesChains;
  private readonly ports: ProxyPorts;
  private readonly hostAddresses = new Map<Family, Ip>();
  private readonly listenAddresses = new Map<Family, Ip>();
  private readonly log: Logger;
  private readonly udpIdleTimeoutMs: number;
  private readonly deleteEntries: (filter: ConntrackFilter, opts: ConntrackOptions) => Promise<unknown>;
  private readonly proxies = new Map<string, OpenProxy>();
  private readonly nodePorts = new Map<string, HeldNodePort>();
  private udpPortals = new Map<string, UdpPortal>();
  private readonly reportedUnsupported = new Set<string>();
  private openFilesPending: boolean;
  // apply and cleanup each read and replace the whole state; interleaved they would both open sockets.
  private readonly queue = new SerialQueue();

  constructor(private readonly opts: UserspaceProxyOptions) {
    this.log = opts.log ?? createLogger('silent');
    const hostAddresses: readonly Ip[] = Array.isArray(opts.hostAddress) ? opts.hostAddress : [opts.hostAddress as Ip];
    for (const ip of hostAddresses) {
      if (isLoopback(ip)) throw new Error(`userspace proxy: hostAddress ${formatIp(ip)} is a loopback address`);
      if (this.hostAddresses.has(ip.family)) throw new Error(`userspace proxy: hostAddress has two IPv${ip.family} addresses`);
      this.hostAddresses.set(ip.family, ip);
    }
    if (opts.listenAddress !== undefined && opts.listenAddress !== '0.0.0.0' && opts.listenAddress !== '::') {
      const ip = parseIp(opts.listenAddress);
      if (isLoopback(ip)) throw new Error(`userspace proxy: listenAddress ${opts.listenAddress} is a loopback address`);
      this.listenAddresses.set(ip.family, ip);
    }
    this.ports = new ProxyPorts(opts.proxyPortRange === undefined ? undefined : validatePortRange(opts.proxyPortRange));
    this.udpIdleTimeoutMs = opts.udpIdleTimeoutMs ?? DEFAULT_UDP_IDLE_TIMEOUT_MS;
    if (!(this.udpIdleTimeoutMs > 0)) throw new Error(`userspace proxy: udpIdleTimeoutMs ${opts.udpIdleTimeoutMs} must be positive`);
    this.chains = new IptablesChains({ owner: USERSPACE_OWNER, ...(opts.netns === undefined ? {} : { netns: opts.netns }) });
    this.deleteEntries = opts.deleteConntrack ?? deleteConntrack;
    this.openFilesPending = opts.raiseOpenFileLimit ?? true;
    for (const family of [4, 6] as const) {
      if (!this.hostAddresses.has(family)) this.log.info({ family }, 'userspace proxy: no host address in this family, host-originated service traffic is not proxied');
    }
  }

  /**
   * Makes sockets, NodePort claims and rules match `map`. Unchanged service ports keep their sockets
   * and connections. `written` counts sockets opened and closed, proxies given new endpoints and
   * iptables-restore calls. The first apply also replaces rules left by a crashed run. Throws a
   * PartialApplyError (after doing the rest) when a socket, a NodePort claim, the rules or a
   * conntrack clean-up failed; a NodePort conflict fails the service port that came second.
   */
  apply(changes: ServiceChanges): Promise<ServiceProxyReport> {
    return this.queue.run(() => this.reconcile(changes.map));
  }

  /** Closes every socket, removes every rule (also a crashed run's) and clears UDP conntrack entries. */
  cleanup(): Promise<void> {
    return this.queue.run(async () => {
      const failures: WriteFailure[] = [];
      let written = this.proxies.size + this.nodePorts.size;
      try {
        written += (await this.chains.cleanup()).written;
      } catch (err) {
        failures.push({ what: 'remove the userspace proxy iptables rules', reason: errorMessage(err) });
      }
      for (const key of [...this.proxies.keys()]) await this.closeProxy(key);
      for (const key of [...this.nodePorts.keys()]) await this.releaseNodePort(key);
      failures.push(...(await this.clearUdpConntrack(new Map())));
      if (failures.length > 0) throw new PartialApplyError(DATAPLANE, written, failures);
    });
  }

  stats(): UserspaceProxyStats {
    return {
      proxies: [...this.proxies.values()].map(({ planned, socket }) => ({ key: planned.key, port: socket.port, ...socket.stats() })),
      nodePorts: Object.fromEntries([...this.nodePorts].map(([key, held]) => [key, held.servicePort])),
    };
  }

  private async reconcile(map: ServiceMap): Promise<ServiceProxyReport> {
    await this.raiseOpenFiles();
    const plan = planProxies(map);
    for (const key of plan.unsupported) {
      if (this.reportedUnsupported.has(key)) continue;
      this.reportedUnsupported.add(key);
      this.log.warn({ servicePort: key }, 'userspace proxy: SCTP service ports are not proxied in this mode');
    }
    const failures: WriteFailure[] = [];
    let written = 0;

    // NodePorts before proxy sockets, so that a proxy port range overlapping the NodePort range
    // cannot take a NodePort. New sockets first, rules next, old sockets last: no rule ever points
    // at a closed socket that is still wanted, and a removed service's traffic stops at its rules.
    const nodePortResult = await this.holdNodePorts(plan);
    written += nodePortResult.written;
    failures.push(...nodePortResult.failures);
    const wanted = new Map(plan.proxies.map((p) => [p.key, p] as const));
    for (const planned of plan.proxies) {
      const open = this.proxies.get(planned.key);
      if (open === undefined) {
        try {
          this.proxies.set(planned.key, { planned, socket: await this.openProxy(planned) });
          written += 1;
        } catch (err) {
          failures.push({ what: `open the ${planned.protocol} proxy socket of ${planned.key}`, reason: errorMessage(err) });
        }
      } else if (endpointsChanged(open.planned, planned)) {
        open.socket.update(planned.endpoints, planned.affinityTimeoutMs);
        this.proxies.set(planned.key, { planned, socket: open.socket });
        written += 1;
      } else if (open.planned.action !== planned.action) {
        this.proxies.set(planned.key, { planned, socket: open.socket });
      }
    }
    const ports = new Map([...this.proxies].filter(([key]) => wanted.has(key)).map(([key, open]) => [key, open.socket.port] as const));
    const holders = new Map([...this.nodePorts].map(([key, held]) => [key, held.servicePort] as const));
    try {
      const rules = portalRules({
        plan,
        ports,
        nodePortHolders: holders,
        clusterCIDRs: map.clusterCIDRs,
        hostAddresses: this.hostAddresses,
        listenAddresses: this.listenAddresses,
      });
      written += (await this.chains.apply(rules)).written;
    } catch (err) {
      failures.push({ what: 'write the userspace proxy iptables rules', reason: errorMessage(err) });
    }

    for (const key of [...this.proxies.keys()]) {
      if (wanted.has(key)) continue;
      await this.closeProxy(key);
      written += 1;
    }
    failures.push(...(await this.clearUdpConntrack(udpPortalsOf(plan, ports, holders))));

    if (failures.length > 0) throw new PartialApplyError(DATAPLANE, written, failures);
    return { written };
  }

  private async openProxy(planned: PlannedProxy): Promise<ProxySocket> {
    const address = this.listenAddresses.has(planned.family)
      ? formatIp(this.listenAddresses.get(planned.family) as Ip)
      : wildcardAddress(planned.family);
    const socket = await this.ports.bind((port): Promise<ProxySocket> => {
      const common = {
        name: planned.key,
        family: planned.family,
        address,
        port,
        endpoints: planned.endpoints,
        affinityTimeoutMs: planned.affinityTimeoutMs,
        log: this.log,
      };
      return planned.protocol === 'TCP' ? TcpProxy.open(common) : UdpProxy.open({ ...common, idleTimeoutMs: this.udpIdleTimeoutMs });
    });
    this.log.debug({ proxy: planned.key, port: socket.port }, 'opened proxy socket');
    return socket;
  }

  private async closeProxy(key: string): Promise<void> {
    const open = this.proxies.get(key) as OpenProxy;
    this.proxies.delete(key);
    await open.socket.close();
    this.ports.release(open.socket.port);
    this.log.debug({ proxy: key, port: open.socket.port }, 'closed proxy socket');
  }

  private async releaseNodePort(key: string): Promise<void> {
    const held = this.nodePorts.get(key) as HeldNodePort;
    this.nodePorts.delete(key);
    await held.claim.release();
  }

  /**
   * Releases NodePorts no longer wanted by their holder, then claims the wanted ones. Of two
   * service ports wanting one NodePort, the one holding it keeps it, else the first in map order;
   * the other is a failure, every apply, until the conflict is gone.
   */
  private async holdNodePorts(plan: ProxyPlan): Promise<{ written: number; failures: WriteFailure[] }> {
    const failures: WriteFailure[] = [];
    let written = 0;
    const wanters = new Map<string, string[]>();
    for (const w of plan.nodePorts) {
      const key = nodePortClaimKey(w.protocol, w.family, w.port);
      const list = wanters.get(key);
      if (list === undefined) wanters.set(key, [w.servicePort]);
      else list.push(w.servicePort);
    }
    for (const [key, held] of [...this.nodePorts]) {
      if (wanters.get(key)?.includes(held.servicePort) === true) continue;
      await this.releaseNodePort(key);
      written += 1;
    }
    for (const w of plan.nodePorts) {
      const key = nodePortClaimKey(w.protocol, w.family, w.port);
      const holder = this.nodePorts.get(key)?.servicePort ?? (wanters.get(key) as string[])[0];
      const what = `hold NodePort ${w.port}/${w.protocol} (IPv${w.family}) for ${w.servicePort}`;
      if (holder !== w.servicePort) {
        failures.push({ what, reason: `${w.servicePort} wants it too, but ${holder} already has it` });
        continue;
      }
      if (this.nodePorts.has(key)) continue;
      try {
        this.nodePorts.set(key, { servicePort: w.servicePort, claim: await claimNodePort(w.protocol, w.family, w.port) });
        written += 1;
      } catch (err) {
        failures.push({ what, reason: errorMessage(err) });
      }
    }
    return { written, failures };
  }

  /**
   * A UDP flow's conntrack entry outlives the rule that NATed it: a client that keeps sending (DNS)
   * would keep going to a port whose socket is gone or whose service has no endpoint left. Entries
   * of frontends that went away or now go elsewhere are deleted.
   */
  private async clearUdpConntrack(next: Map<string, UdpPortal>): Promise<WriteFailure[]> {
    const failures: WriteFailure[] = [];
    for (const [key, before] of this.udpPortals) {
      if (next.get(key)?.target === before.target) continue;
      const filter: ConntrackFilter = { protocol: 'udp', family: before.family, origDst: before.ip, origDstPort: before.port };
      try {
        await this.deleteEntries(filter, this.opts.netns === undefined ? {} : { netns: this.opts.netns });
      } catch (err) {
        failures.push({ what: `delete UDP conntrack entries for ${frontendAddress(before)}`, reason: errorMessage(err) });
        // Kept, so that the next apply tries again.
        next.set(key, { ...before, target: `${before.target} (not cleared)` });
      }
    }
    this.udpPortals = next;
    return failures;
  }

  private async raiseOpenFiles(): Promise<void> {
    if (!this.openFilesPending) return;
    this.openFilesPending = false;
    const outcome = await raiseOpenFileLimit();
    if (outcome.status === 'failed' || outcome.status === 'partly') {
      this.log.warn({ reason: outcome.reason }, `userspace proxy: could not raise the open-file limit to ${WANTED_OPEN_FILES}`);
    }
    if (outcome.status === 'raised' || outcome.status === 'partly') {
      this.log.info({ before: outcome.before.soft, now: outcome.limit.soft }, 'userspace proxy: raised the open-file limit');
    }
  }
}

function endpointsChanged(a: PlannedProxy, b: PlannedProxy): boolean {
  if (a.affinityTimeoutMs !== b.affinityTimeoutMs || a.endpoints.length !== b.endpoints.length) return true;
  const ids = new Set(a.endpoints.map(formatBackend));
  return b.endpoints.some((e) => !ids.has(formatBackend(e)));
}

/** Each UDP frontend and where its new flows go (from outside / from pods and the host). */
function udpPortalsOf(plan: ProxyPlan, ports: ReadonlyMap<string, number>, holders: ReadonlyMap<string, string>): Map<string, UdpPortal> {
  const actions = new Map(plan.proxies.map((p) => [p.key, p.action] as const));
  const targetOf = (key: string): string => `${ports.get(key) ?? 'none'}/${actions.get(key) ?? 'none'}`;
  const portals = new Map<string, UdpPortal>();
  for (const f of plan.frontends) {
    if (f.protocol !== 'UDP') continue;
    if (f.kind === 'nodePort' && holders.get(nodePortClaimKey(f.protocol, f.family, f.port)) !== f.servicePort) continue;
    const key = `IPv${f.family} ${frontendAddress(f)}`;
    portals.set(key, { family: f.family, ip: f.ip, port: f.port, target: `${targetOf(f.proxy)} ${targetOf(f.inClusterProxy)}` });
  }
  return portals;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
