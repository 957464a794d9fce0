// Which UDP conntrack entries a service map change leaves pointing the wrong way (pure). UDP has no
// connection to end: an entry keeps a flow on the endpoint it was first DNATed to (or keeps it
// un-NATed) for as long as the client keeps sending, so kube-proxy deletes (k/k #19029, #48370):
//   - entries to a destination that is gone (the service port deleted, a cluster/external/LB IP or
//     node port removed from it);
//   - entries to a remaining destination whose reply source is an endpoint that is gone;
//   - entries to a service that had no endpoint and now has one.
// The eBPF proxy ends connected UDP sockets by the same filters (ebpf/sock-term.ts).
import { formatIp, type Family, type Ip } from '../model/ip.js';
import { servicePortKey, type ServiceBackend, type ServiceMap, type ServicePort } from '../model/service.js';
import type { ConntrackFilter } from '../host/conntrack.js';

interface Destination {
  readonly family: Family;
  readonly origDst?: Ip;
  readonly origDstPort: number;
}

function destinationsOf(port: ServicePort, map: ServiceMap): Destination[] {
  const dests: Destination[] = [];
  for (const ip of [...port.clusterIPs, ...port.externalIPs, ...port.loadBalancerIPs]) dests.push({ family: ip.family, origDst: ip, origDstPort: port.port });
  if (port.nodePort !== undefined) {
    for (const family of [4, 6] as const) {
      if (map.nodePortAddresses.some((ip) => ip.family === family)) dests.push({ family, origDstPort: port.nodePort });
    }
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

function filterOf(d: Destination, replySrc?: Ip): ConntrackFilter {
  return {
    protocol: 'udp',
    family: d.family,
    ...(d.origDst === undefined ? {} : { origDst: d.origDst }),
    origDstPort: d.origDstPort,
    ...(replySrc === undefined ? {} : { replySrc }),
  };
}

/** The conntrack deletions moving from `before` to `after` calls for; none without `before`. */
export function staleUdpFlows(before: ServiceMap | undefined, after: ServiceMap): ConntrackFilter[] {
  if (before === undefined) return [];
  const afterPorts = new Map(after.servicePorts.filter((p) => p.protocol === 'UDP').map((p) => [servicePortKey(p), p]));
  const filters = new Map<string, ConntrackFilter>();
  const add = (d: Destination, replySrc?: Ip) => filters.set(`${destinationKey(d)} ${replySrc === undefined ? '*' : formatIp(replySrc)}`, filterOf(d, replySrc));
  for (const old of before.servicePorts) {
    if (old.protocol !== 'UDP') continue;
    const oldDests = destinationsOf(old, before);
    const now = afterPorts.get(servicePortKey(old));
    if (now === undefined) {
      for (const d of oldDests) add(d);
      continue;
    }
    const nowDests = destinationsOf(now, after);
    const kept = new Set(nowDests.map(destinationKey));
    for (const d of oldDests) if (!kept.has(destinationKey(d))) add(d);
    const oldEndpoints = endpointsOf(old);
    const nowEndpoints = endpointsOf(now);
    for (const [key, gone] of oldEndpoints) {
      if (nowEndpoints.has(key)) continue;
      for (const d of oldDests) if (d.family === gone.ip.family && kept.has(destinationKey(d))) add(d, gone.ip);
    }
    if (oldEndpoints.size === 0 && nowEndpoints.size > 0) for (const d of nowDests) add(d);
  }
  return [...filters.values()];
}
