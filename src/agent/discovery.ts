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
  /** A dual-stack underlay's address of the other family on internalIP's interface (see MeshNode.otherInternalIP). */
  readonly otherInternalIP?: Cidr;
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
  const candidates = addresses
    .filter((a) => !IGNORED.test(a.iface) && !isOwn(a) && a.cidr.bits < (a.cidr.family === 4 ? 32 : 128))
    // Default-route interface first, IPv4 before IPv6, then input order: a stable preference.
    .map((a, i) => ({ a, i }))
    .sort((x, y) => Number(y.a.onDefaultRoute) - Number(x.a.onDefaultRoute) || x.a.cidr.family - y.a.cidr.family || x.i - y.i)
    .map(({ a }) => a);
  const usable = candidates.map((a) => a.cidr);
  const isPrivate = (c: Cidr): boolean => isPrivateIp(ipOf(c));
  const isInternal = (c: Cidr): boolean =>
    internalCidrs.length > 0 ? internalCidrs.some((range) => containsIp(range, ipOf(c))) : isPrivate(c);
  const internal = candidates.find((a) => isInternal(a.cidr));
  const internalIP = internal?.cidr;
  // The same interface: the underlay the internal IP is on, in its other family.
  const otherInternalIP = internal && candidates.find((a) => a.iface === internal.iface && a.cidr.family !== internal.cidr.family && isInternal(a.cidr))?.cidr;
  const endpointIP = usable.find((c) => !isPrivate(c)) ?? usable[0];
  return { ...(endpointIP && { endpointIP }), ...(internalIP && { internalIP }), ...(otherInternalIP && { otherInternalIP }) };
}
