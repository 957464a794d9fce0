// Which service data path to run. `auto` takes the fastest the host supports, stepping down with a
// reason: eBPF → iptables → userspace. One function decides (decideServiceProxy); `wirelane probe`
// prints its answer and the agent acts on it.
import type { EbpfServiceProxyOptions } from '../dataplane/ebpf/ebpf-service-proxy.js';
import { type EbpfSupport, probeEbpfSupport } from '../dataplane/ebpf/support.js';
import type { ServiceProxy, ServiceProxyMode } from '../dataplane/service-proxy.js';
import { listAddresses } from '../host/addresses.js';
import { runCommand } from '../host/command.js';
import { listRoutes } from '../host/routes.js';
import { type Ip, parseIp } from '../model/ip.js';
import type { Logger } from '../observability/logger.js';
import type { AgentConfig } from './config.js';

export class ServiceProxyUnavailableError extends Error {
  override readonly name = 'ServiceProxyUnavailableError';
}

export interface ServiceProxyDecision {
  /** What `auto` runs. */
  readonly mode: ServiceProxyMode;
  /** Why each faster mode was passed over, in order: `ebpf: …`, `iptables: …`. Empty for eBPF. */
  readonly reasons: readonly string[];
  readonly ebpf: EbpfSupport;
  /** Undefined when iptables is usable. */
  readonly iptablesReason: string | undefined;
}

/** Where the eBPF data path attaches and pins; the agent's flags fill these in. */
export interface EbpfPlacement {
  /** Default: the cgroup v2 mount. */
  readonly cgroupRoot?: string;
  /** Default: <bpffs>/wirelane. */
  readonly bpffsDir?: string;
  /** Where NodePort/ExternalIP/LB traffic from outside arrives; default: the default routes' interfaces. */
  readonly nodePortInterfaces?: readonly string[];
}

/** Why iptables cannot be used here, or undefined when it can (both the tool and the kernel's NAT). */
async function iptablesUnusableReason(): Promise<string | undefined> {
  const probe = await runCommand('iptables', ['-t', 'nat', '-S', 'PREROUTING'], { allowFailure: true }).catch((err: Error) => ({ exitCode: 1, stderr: err.message }));
  return probe.exitCode === 0 ? undefined : `iptables nat table unusable: ${probe.stderr.trim().split('\n')[0]}`;
}

/** The one decision `auto` makes, from what the kernel and the host offer. */
export async function decideServiceProxy(): Promise<ServiceProxyDecision> {
  const ebpf = probeEbpfSupport();
  const iptablesReason = await iptablesUnusableReason();
  const reasons: string[] = [];
  if (ebpf.usable) return { mode: 'ebpf', reasons, ebpf, iptablesReason };
  reasons.push(`ebpf: ${ebpf.reason ?? 'unusable'}`);
  if (iptablesReason === undefined) return { mode: 'iptables', reasons, ebpf, iptablesReason };
  reasons.push(`iptables: ${iptablesReason}`);
  return { mode: 'userspace', reasons, ebpf, iptablesReason };
}

async function defaultRouteDevices(): Promise<Set<string>> {
  const routes = await listRoutes({ table: 'main' });
  const devices = new Set<string>();
  for (const r of routes) if ((r.dst === '0.0.0.0/0' || r.dst === '::/0') && r.dev !== undefined) devices.add(r.dev);
  return devices;
}

/**
 * A non-loopback address per family for userspace host portals: the source the host uses towards
 * service IPs, i.e. an address of the default-route interface (else any global address).
 */
async function hostAddresses(): Promise<Ip[]> {
  const [addresses, defaultDevices] = await Promise.all([listAddresses(), defaultRouteDevices()]);
  const global = addresses.filter((a) => a.scope === 'global' && a.ifname !== 'lo');
  const out: Ip[] = [];
  for (const family of [4, 6] as const) {
    const ofFamily = global.filter((a) => a.family === family);
    const chosen = ofFamily.find((a) => defaultDevices.has(a.ifname)) ?? ofFamily[0];
    if (chosen) out.push(parseIp(chosen.address));
  }
  return out;
}

export async function openServiceProxy(config: AgentConfig, log: Logger, placement: EbpfPlacement = {}): Promise<ServiceProxy | undefined> {
  const userspace = async (): Promise<ServiceProxy> => {
    const { UserspaceServiceProxy } = await import('../dataplane/userspace/index.js');
    return new UserspaceServiceProxy({
      hostAddress: await hostAddresses(),
      udpIdleTimeoutMs: config.udpTimeoutMs,
      ...(config.proxyPortRange && { proxyPortRange: config.proxyPortRange }),
      log,
    });
  };
  const iptables = async (): Promise<ServiceProxy> => {
    const { IptablesServiceProxy } = await import('../dataplane/service-iptables/index.js');
    return new IptablesServiceProxy();
  };
  const ebpf = async (): Promise<ServiceProxy> => {
    const { EbpfServiceProxy } = await import('../dataplane/ebpf/ebpf-service-proxy.js');
    const interfaces = placement.nodePortInterfaces ?? [...(await defaultRouteDevices())];
    const options: EbpfServiceProxyOptions = {
      log,
      ...(placement.cgroupRoot !== undefined && { cgroupRoot: placement.cgroupRoot }),
      ...(placement.bpffsDir !== undefined && { bpffsDir: placement.bpffsDir }),
      // Without an interface to attach to there is no traffic from outside to translate.
      nodePort: { enabled: interfaces.length > 0, interfaces },
    };
    return EbpfServiceProxy.open(options);
  };
  switch (config.serviceProxy) {
    case 'off':
      return undefined;
    case 'userspace':
      return userspace();
    case 'iptables': {
      const reason = await iptablesUnusableReason();
      if (reason) throw new ServiceProxyUnavailableError(`--service-proxy iptables: ${reason}`);
      return iptables();
    }
    case 'ebpf':
      try {
        return await ebpf();
      } catch (error) {
        throw new ServiceProxyUnavailableError(`--service-proxy ebpf: ${(error as Error).message}`, { cause: error });
      }
    case 'auto': {
      const decision = await decideServiceProxy();
      const reasons = [...decision.reasons];
      if (decision.mode === 'ebpf') {
        try {
          const proxy = await ebpf();
          log.info({ mode: 'ebpf', reasons }, 'service proxy chosen');
          return proxy;
        } catch (error) {
          // The probe said yes but the start failed (it removed what it attached): step down.
          reasons.push(`ebpf: start failed: ${(error as Error).message.split('\n')[0]}`);
          log.warn({ err: (error as Error).message }, 'eBPF service proxy failed to start; falling back');
        }
      }
      if (decision.iptablesReason === undefined) {
        log.info({ mode: 'iptables', reasons }, 'service proxy chosen');
        return iptables();
      }
      if (!reasons.some((r) => r.startsWith('iptables:'))) reasons.push(`iptables: ${decision.iptablesReason}`);
      log.info({ mode: 'userspace', reasons }, 'service proxy chosen');
      return userspace();
    }
  }
}
