// The mesh's own iptables rules (Kilo's KILO-NAT and its optional FORWARD accepts), as a pure
// function of addresses: what the iptables dataplane should program on this node.
import { type Cidr, compareCidr, containsIp, type Family, formatCidr, hostCidr, type Ip, ipOf, networkOf } from '../../model/ip.js';
import type { DesiredRules, FamilyRules, JumpRule, OwnedChain } from './ruleset.js';

export const MESH_NAT_CHAIN = 'WIRELANE-NAT';
export const MESH_FORWARD_CHAIN = 'WIRELANE-FORWARD';
export const MESH_TUNNEL_CHAIN = 'WIRELANE-TUNNEL';

/** The encapsulation in use, whose packets only the location's members may send (as Calico accepts only known hosts). */
export type TunnelFilter =
  | { readonly mode: 'vxlan'; readonly port: number; readonly members: readonly Ip[] }
  | { readonly mode: 'ipip'; readonly members: readonly Ip[] };

export interface MeshRulesInput {
  /** This node's pod CIDRs, both families: traffic from them is masqueraded unless it stays in the mesh. */
  readonly localPodCidrs: readonly Cidr[];
  /** Every segment's WireGuard IP and allowed IPs, and every Peer's allowed IPs. */
  readonly meshDestinations: readonly Cidr[];
  /** Service CIDRs: traffic to services is not masqueraded either. */
  readonly serviceCidrs?: readonly Cidr[];
  /**
   * With --iptables-forward-rules: the location's pod CIDRs, internal IPs and allowed-location
   * IPs, accepted in FORWARD in both directions. Absent: no FORWARD chain at all.
   */
  readonly forwardCidrs?: readonly Cidr[];
  /** With encapsulation: anyone on the underlay could otherwise inject packets into the pod network. */
  readonly tunnel?: TunnelFilter;
}

/**
 * Sorted, masked, and without prefixes another one already covers: a RETURN or ACCEPT for a
 * covered prefix never matches anything the covering one did not, so it would be a dead rule.
 */
export function coveringPrefixes(cidrs: readonly Cidr[], family: Family): Cidr[] {
  const sorted = cidrs
    .filter((c) => c.family === family)
    .map(networkOf)
    .sort((a, b) => (a.bits !== b.bits ? a.bits - b.bits : compareCidr(a, b)));
  const kept: Cidr[] = [];
  for (const cidr of sorted) {
    if (!kept.some((k) => k.bits <= cidr.bits && containsIp(k, ipOf(cidr)))) kept.push(cidr);
  }
  return kept.sort(compareCidr);
}

function familyRules(input: MeshRulesInput, family: Family): FamilyRules {
  const chains: OwnedChain[] = [];
  const jumps: JumpRule[] = [];
  const pods = coveringPrefixes(input.localPodCidrs, family);
  if (pods.length > 0) {
    const stay = coveringPrefixes([...input.meshDestinations, ...(input.serviceCidrs ?? [])], family);
    chains.push({
      table: 'nat',
      name: MESH_NAT_CHAIN,
      rules: [
        ...stay.map((c) => `-d ${formatCidr(c)} -m comment --comment "wirelane: stays in the mesh" -j RETURN`),
        '-m comment --comment "wirelane: leaves the mesh" -j MASQUERADE',
      ],
    });
    // Appended, as Kilo does: masquerading set up by others (kube-proxy's marks) still comes first.
    for (const pod of pods) {
      jumps.push({
        table: 'nat',
        from: 'POSTROUTING',
        to: MESH_NAT_CHAIN,
        match: `-s ${formatCidr(pod)}`,
        comment: 'wirelane: masquerade pod traffic leaving the mesh',
        position: 'append',
      });
    }
  }
  if (input.forwardCidrs !== undefined) {
    const forward = coveringPrefixes(input.forwardCidrs, family);
    if (forward.length > 0) {
      chains.push({
        table: 'filter',
        name: MESH_FORWARD_CHAIN,
        rules: forward.flatMap((c) => [`-s ${formatCidr(c)} -j ACCEPT`, `-d ${formatCidr(c)} -j ACCEPT`]),
      });
      // Appended: an ACCEPT inserted first would bypass network policies that others put in FORWARD.
      jumps.push({ table: 'filter', from: 'FORWARD', to: MESH_FORWARD_CHAIN, comment: 'wirelane: forward mesh traffic', position: 'append' });
    }
  }
  // Only the underlay's family carries the tunnel (members include this node itself); tunl0 is IPv4 only.
  const tunnel = input.tunnel;
  const members = coveringPrefixes((tunnel?.members ?? []).filter((ip) => ip.family === family).map(hostCidr), family);
  if (tunnel !== undefined && members.length > 0 && (tunnel.mode === 'vxlan' || family === 4)) {
    chains.push({
      table: 'filter',
      name: MESH_TUNNEL_CHAIN,
      rules: [...members.map((c) => `-s ${formatCidr(c)} -j RETURN`), '-m comment --comment "wirelane: encapsulated packet from a non-member" -j DROP'],
    });
    // Inserted: an ACCEPT others put in INPUT first would let the packet reach the tunnel device.
    const match = tunnel.mode === 'vxlan' ? `-p udp -m udp --dport ${tunnel.port}` : '-p ipencap';
    jumps.push({ table: 'filter', from: 'INPUT', to: MESH_TUNNEL_CHAIN, match, comment: 'wirelane: encapsulated packets only from members', position: 'insert' });
  }
  return { chains, jumps };
}

export function computeMeshRules(input: MeshRulesInput): DesiredRules {
  return { 4: familyRules(input, 4), 6: familyRules(input, 6) };
}
