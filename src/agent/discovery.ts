// Which of the host's addresses is the node's endpoint and which its internal IP, as Kilo decides:
// the endpoint prefers a public address, the internal IP is a private one (or the first inside
// --internal-cidr). Annotations force-endpoint / force-internal-ip override both (see sources/node.ts).
import { type Cidr, containsIp, ipOf, isPrivateIp } from '../model/ip.js';

export interface HostAddress {
  readonly iface: string;
  /** The address with the interface's prefix length. */
  readonly cidr: Cidr;
  /** True when the interface carries the default route: the address peers most likely reach. */
  readonly onDefaultRoute: boolean;
}

export interface DiscoveredAddresses {
  readonly endpointIP?: Cidr;
  readonly internalIP?: Cidr;
}

// Interfaces whose addresses are never the node's own: ours, container plumbing, tunnels.
const IGNORED = /^(lo|wirelane|wl[.-]|kilo|docker|veth|cni|flannel|cali|cilium|kube-|tunl|vxlan)/;

/** What the agent itself put on the host, whatever it is named: never the node's own address. */
export interface OwnDevices {
  readonly interfaces: readonly string[];
  /** The WireGuard subnet (--subnet): its addresses are the mesh's, not the underlay's. */
  readonly meshSubnets: readonly Cidr[];
}

export function discoverAddresses(addresses: readonly HostAddress[], internalCidrs: readonly Cidr[] = [], own: OwnDevices = { interfaces: [], meshSubnets: [] }): DiscoveredAddresses {
  const isOwn = (a: HostAddress): boolean => own.interfaces.includes(a.iface) || own.meshSubnets.some((s) => containsIp(s, ipOf(a.cidr)));
  const usable = addresses
    .filter((a) => !IGNORED.test(a.iface) && !isOwn(a) && a.cidr.bits < (a.cidr.family === 4 ? 32 : 128))
    // Default-route interface first, IPv4 before IPv6, then input order: a stable preference.
    .map((a, i) => ({ a, i }))
    .sort((x, y) => Number(y.a.onDefaultRoute) - Number(x.a.onDefaultRoute) || x.a.cidr.family - y.a.cidr.family || x.i - y.i)
    .map(({ a }) => a.cidr);
  const isPrivate = (c: Cidr): boolean => isPrivateIp(ipOf(c));
  const internalIP =
    internalCidrs.length > 0
      ? usable.find((c) => internalCidrs.some((range) => containsIp(range, ipOf(c))))
      : usable.find(isPrivate);
  const endpointIP = usable.find((c) => !isPrivate(c)) ?? usable[0];
  return { ...(endpointIP && { endpointIP }), ...(internalIP && { internalIP }) };
}
