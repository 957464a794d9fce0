// kube-proxy's health check node ports: for a LoadBalancer Service with externalTrafficPolicy Local,
// an HTTP server on its healthCheckNodePort tells the load balancer whether this node has local
// endpoints (200) or not (503), so traffic only goes to nodes that can serve it without SNAT.
import type { Server, ServerResponse } from 'node:http';
import { formatIp } from '../model/ip.js';
import type { ServiceMap } from '../model/service.js';
import { closeServer, createBoundedServer, listen } from './http-server.js';

export interface HealthCheck {
  readonly port: number;
  /** `namespace/name`. */
  readonly service: string;
  readonly localEndpoints: number;
}

/** One check per healthCheckNodePort; local endpoints counted once per address across the service's ports. */
export function healthChecksOf(map: ServiceMap): HealthCheck[] {
  const byPort = new Map<number, { service: string; ips: Set<string> }>();
  for (const p of map.servicePorts) {
    if (p.healthCheckNodePort === undefined) continue;
    const entry = byPort.get(p.healthCheckNodePort) ?? { service: p.service, ips: new Set<string>() };
    for (const e of p.externalEndpoints) if (e.local) entry.ips.add(formatIp(e.ip));
    byPort.set(p.healthCheckNodePort, entry);
  }
  return [...byPort].map(([port, { service, ips }]) => ({ port, service, localEndpoints: ips.size })).sort((a, b) => a.port - b.port);
}

export class HealthCheckServers {
  private readonly servers = new Map<number, { server: Server; check: HealthCheck }>();

  /** `onError`: an error of an open server (an accept failure), which must not end the agent. */
  constructor(
    private readonly proxyHealthy: () => boolean,
    private readonly onError: (message: string) => void,
  ) {}

  /** Opens, updates and closes servers to match the map; returns the ports that could not be opened. */
  async apply(map: ServiceMap): Promise<{ opened: number; closed: number; failed: string[] }> {
    const wanted = new Map(healthChecksOf(map).map((c) => [c.port, c]));
    let closed = 0;
    for (const [port, entry] of this.servers) {
      if (wanted.get(port)?.service === entry.check.service) continue;
      await closeServer(entry.server);
      this.servers.delete(port);
      closed++;
    }
    let opened = 0;
    const failed: string[] = [];
    for (const [port, check] of wanted) {
      const existing = this.servers.get(port);
      if (existing) {
        existing.check = check;
        continue;
      }
      const entry = { check, server: createBoundedServer((_req, res) => this.answer(entry.check, res)) };
      try {
        await listen(entry.server, { host: undefined, port }, (err) => this.onError(`health check port ${port}: ${err.message}`));
        this.servers.set(port, entry);
        opened++;
      } catch (err) {
        failed.push(`health check port ${port} of ${check.service}: ${(err as Error).message}`);
      }
    }
    return { opened, closed, failed };
  }

  private answer(check: HealthCheck, res: ServerResponse): void {
    const [namespace, name] = check.service.split('/');
    const healthy = this.proxyHealthy();
    const body = JSON.stringify({ service: { namespace, name }, localEndpoints: check.localEndpoints, serviceProxyHealthy: healthy });
    res
      .writeHead(check.localEndpoints > 0 && healthy ? 200 : 503, {
        'content-type': 'application/json',
        'x-content-type-options': 'nosniff',
        'x-load-balancing-endpoint-weight': String(check.localEndpoints),
      })
      .end(body);
  }

  async close(): Promise<void> {
    await Promise.all([...this.servers.values()].map(({ server }) => closeServer(server)));
    this.servers.clear();
  }
}

