// Which UDP conntrack entries a service map change leaves pointing the wrong way (pure). UDP has no
// connection to end: an entry keeps a flow on the endpoint it was first DNATed to (or keeps it
// un-NATed) for as long as the client keeps sending, so kube-proxy deletes (k/k #19029, #48370):
//   - entries to a destination that is gone (the service port deleted, a cluster/external/LB IP or
//     node port removed from it);
//   - entries to a remaining destination whose reply source is an endpoint that is gone;
//   - entries to a service that had no endpoint and now has one.
// The iptables proxy deletes them with conntrack; the eBPF proxy ends connected UDP sockets by the
// same filters (dataplane/ebpf/sock-term.ts).
import { formatIp, type Family, type Ip } from '../model/ip.js';
import type { ServiceBackend, ServicePort } from '../model/service.js';

/** A conntrack filter (host/conntrack.ts's ConntrackFilter) for UDP entries of one destination. */
export interface StaleUdpFlow {
  readonly protocol: 'udp';
  readonly family: Family;
  /** Absent: a NodePort, on any of the node's addresses. */
  readonly origDst?: Ip;
  readonly origDstPort: number;
  /** Absent: whichever endpoint answers. */
  readonly replySrc?: Ip;
}

interface Destination {
  readonly family: Family;
  readonly origDst?: Ip;
  readonly origDstPort: number;
}

function destinationsOf(port: ServicePort, nodePortFamilies: ReadonlySet<Family>): Destination[] {
  const dests: Destination[] = [];
  for (const ip of [...port.clusterIPs, ...port.externalIPs, ...port.loadBalancerIPs]) dests.push({ family: ip.family, origDst: ip, origDstPort: port.port });
  if (port.nodePort !== undefined) {
    for (const family of [4, 6] as const) if (nodePortFamilies.has(family)) dests.push({ family, origDstPort: port.nodePort });
  }
  return dests;
}

function destinationKey(d: Destination): string {
  return `${d.family} ${d.origDst === undefined ? '*' : formatIp(d.origDst)} ${d.origDstPort}`;
}

function endpointsOf(port: ServicePort): Map<string, ServiceBackend> {
  const all = new Map<string, ServiceBackend>();
  for (const b of [...port.clusterEndpoints, ...port.internalEndpoints, ...port.externalEndpoints]) all.set(`${formatIp(b.ip)} ${b.port}`, b);
  return all;
}

/** The stale flows of a change, collected port by port, each filter once. */
export class StaleUdpFlows {
  readonly #flows = new Map<string, StaleUdpFlow>();

  /**
   * A port as it was (in a map serving NodePorts in `oldFamilies`) and as it is now (undefined:
   * gone). Only UDP ports have flows to go stale.
   */
  add(old: ServicePort, oldFamilies: ReadonlySet<Family>, now: ServicePort | undefined, nowFamilies: ReadonlySet<Family>): void {
    if (old.protocol !== 'UDP') return;
    const oldDests = destinationsOf(old, oldFamilies);
    if (now === undefined) {
      for (const d of oldDests) this.#add(d);
      return;
    }
    const nowDests = destinationsOf(now, nowFamilies);
    const kept = new Set(nowDests.map(destinationKey));
    for (const d of oldDests) if (!kept.has(destinationKey(d))) this.#add(d);
    const oldEndpoints = endpointsOf(old);
    const nowEndpoints = endpointsOf(now);
    for (const [key, gone] of oldEndpoints) {
      if (nowEndpoints.has(key)) continue;
      for (const d of oldDests) if (d.family === gone.ip.family && kept.has(destinationKey(d))) this.#add(d, gone.ip);
    }
    if (oldEndpoints.size === 0 && nowEndpoints.size > 0) for (const d of nowDests) this.#add(d);
  }

  /** Every flow of `other` too. */
  merge(other: StaleUdpFlows): void {
    for (const [key, flow] of other.#flows) this.#flows.set(key, flow);
  }

  list(): StaleUdpFlow[] {
    return [...this.#flows.values()];
  }

  #add(d: Destination, replySrc?: Ip): void {
    const key = `${destinationKey(d)} ${replySrc === undefined ? '*' : formatIp(replySrc)}`;
    this.#flows.set(key, {
      protocol: 'udp',
      family: d.family,
      ...(d.origDst === undefined ? {} : { origDst: d.origDst }),
      origDstPort: d.origDstPort,
      ...(replySrc === undefined ? {} : { replySrc }),
    });
  }
}
