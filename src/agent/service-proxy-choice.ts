// Which service data path to run. `auto` takes the fastest the host supports, stepping down with a
// reason: eBPF → iptables → userspace.
import type { ServiceProxy } from '../dataplane/service-proxy.js';
import { listAddresses } from '../host/addresses.js';
import { runCommand } from '../host/command.js';
import { listRoutes } from '../host/routes.js';
import { type Ip, parseIp } from '../model/ip.js';
import type { Logger } from '../observability/logger.js';
import type { AgentConfig } from './config.js';

export class ServiceProxyUnavailableError extends Error {
  override readonly name = 'ServiceProxyUnavailableError';
}

/** Why iptables cannot be used here, or undefined when it can (both the tool and the kernel's NAT). */
async function iptablesUnusableReason(): Promise<string | undefined> {
  const probe = await runCommand('iptables', ['-t', 'nat', '-S', 'PREROUTING'], { allowFailure: true }).catch((err: Error) => ({ exitCode: 1, stderr: err.message }));
  return probe.exitCode === 0 ? undefined : `iptables nat table unusable: ${probe.stderr.trim().split('\n')[0]}`;
}

/**
 * A non-loopback address per family for userspace host portals: the source the host uses towards
 * service IPs, i.e. an address of the default-route interface (else any global address).
 */
async function hostAddresses(): Promise<Ip[]> {
  const [addresses, routes] = await Promise.all([listAddresses(), listRoutes({ table: 'main' })]);
  const defaultDevices = new Set(routes.filter((r) => r.dst === '0.0.0.0/0' || r.dst === '::/0').map((r) => r.dev));
  const global = addresses.filter((a) => a.scope === 'global' && a.ifname !== 'lo');
  const out: Ip[] = [];
  for (const family of [4, 6] as const) {
    const ofFamily = global.filter((a) => a.family === family);
    const chosen = ofFamily.find((a) => defaultDevices.has(a.ifname)) ?? ofFamily[0];
    if (chosen) out.push(parseIp(chosen.address));
  }
  return out;
}

export async function openServiceProxy(config: AgentConfig, log: Logger): Promise<ServiceProxy | undefined> {
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
      throw new ServiceProxyUnavailableError('--service-proxy ebpf: the eBPF data path is not part of this build yet; use auto, iptables or userspace');
    case 'auto': {
      const reasons = ['ebpf: not part of this build yet'];
      const reason = await iptablesUnusableReason();
      if (reason === undefined) {
        log.info({ mode: 'iptables', reasons }, 'service proxy chosen');
        return iptables();
      }
      reasons.push(`iptables: ${reason}`);
      log.info({ mode: 'userspace', reasons }, 'service proxy chosen');
      return userspace();
    }
  }
}
