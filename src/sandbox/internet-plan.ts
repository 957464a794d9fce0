// The routed shape of the sandbox: locations as LANs behind router namespaces, joined by an
// "internet" segment. Pure, like plan.ts, which calls it when a spec has `internet`.
//
//   [P"internet": br0 (MTU); the core: the first address]
//      ├─ r0 ═ eth0 [P"r-east": NAT] lan0 ── n0 ═ eth0 [P"a"]      (LAN 10.1.1.0/24, masqueraded)
//      │                             lan1 ── n1 ═ eth0 [P"b"]      (LAN 10.1.2.0/24, masqueraded)
//      ├─ r1 ═ eth0 [P"r-west"]      lan0 ── n2 ═ eth0 [P"c"]      (LAN 10.2.1.0/24 + a public prefix)
//      └─ o0 ═ eth0 [P"client"]     (a host right on the internet)
//
// The core (the internet namespace itself) holds the segment's first address, is every router's
// default gateway and routes each LAN's public prefix to its router: a public address is reachable
// from anywhere, a private one only answers (masquerade, no port forward). Every link of
// the internet segment gets its MTU, so a path between locations is narrower than a LAN.
import { containsIp, formatCidr, formatIp, ipOf, nthAddress, overlaps, type Cidr, type Ip } from '../model/ip.js';
import { parseField, SandboxSpecError } from './spec-error.js';

/**
 * One LAN of a location: a bridge in the router's namespace holding the gateways (first
 * addresses). Its own prefixes are private: masqueraded outbound, closed inbound. `publicCidr` is a
 * second prefix on the same bridge, routed to and from the internet as it is (a node with a
 * public address next to its private one, as on a bare-metal host or a cloud VM with both).
 */
export interface LanSpec {
  readonly cidr: string;
  readonly cidr6?: string;
  readonly publicCidr?: string;
}

export interface RouterSpec {
  /** Lower-case letters, digits and '-'; the namespace is P"r-"name. */
  readonly name: string;
  /** The router's address on the internet segment, with the segment's prefix length. */
  readonly internetAddress: string;
  readonly internetAddress6?: string;
  readonly lans: readonly LanSpec[];
}

export interface InternetSpec {
  /** The segment, e.g. '198.51.100.0/24'; its first address is the core's. */
  readonly cidr: string;
  readonly cidr6?: string;
  /** Of every link on the segment (default 1500). */
  readonly mtu?: number;
  readonly routers: readonly RouterSpec[];
}

export interface PlannedLan {
  /** The bridge in the router's namespace: 'lan0', 'lan1', … */
  readonly bridge: string;
  readonly cidr: Cidr;
  readonly cidr6: Cidr | undefined;
  readonly publicCidr: Cidr | undefined;
  /** `ip/bits` of the router on the LAN, per prefix. */
  readonly gateway: string;
  readonly gateway6: string | undefined;
  readonly publicGateway: string | undefined;
}

export interface PlannedRouter {
  readonly name: string;
  readonly netns: string;
  /** The router's end of its link to the core, inside the internet namespace. */
  readonly port: string;
  readonly internet: string;
  readonly internet6: string | undefined;
  readonly lans: readonly PlannedLan[];
}

export interface PlannedInternet {
  readonly netns: string;
  readonly cidr: Cidr;
  readonly cidr6: Cidr | undefined;
  /** `ip/bits` of the core on br0. */
  readonly core: string;
  readonly core6: string | undefined;
  readonly mtu: number;
  readonly routers: readonly PlannedRouter[];
}

/** Where a host's eth0 is plugged in, and how it leaves its segment. */
export interface HostAttachment {
  /** The namespace of the bridge: the internet's, or a router's. */
  readonly netns: string;
  readonly bridge: string;
  /** The default gateways (no `/bits`); none on the flat bridge. */
  readonly gateway: string | undefined;
  readonly gateway6: string | undefined;
  /** The MTU of the host's link (the segment's). */
  readonly mtu: number | undefined;
  /** The router, when the host sits on a LAN. */
  readonly router: string | undefined;
}

const ROUTER_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
const MIN_SEGMENT_MTU = 1280;

function firstOf(cidr: Cidr): string {
  return `${formatIp(nthAddress(cidr, 1n))}/${cidr.bits}`;
}

function inSegment(address: string, segment: Cidr, what: string): string {
  const cidr = parseField(address, what, segment.family);
  if (cidr.bits !== segment.bits || !containsIp(segment, ipOf(cidr))) {
    throw new SandboxSpecError(`${what}: "${address}" is not an address of ${formatCidr(segment)}`);
  }
  return address;
}

export function planInternet(spec: InternetSpec, prefix: string): PlannedInternet {
  const cidr = parseField(spec.cidr, 'internet: cidr', 4);
  const cidr6 = spec.cidr6 === undefined ? undefined : parseField(spec.cidr6, 'internet: cidr6', 6);
  const mtu = spec.mtu ?? 1500;
  if (!Number.isInteger(mtu) || mtu < MIN_SEGMENT_MTU || mtu > 9000) throw new SandboxSpecError(`internet: mtu ${mtu} is not an integer in [${MIN_SEGMENT_MTU}, 9000]`);
  const seen: Cidr[] = [cidr, ...(cidr6 ? [cidr6] : [])];
  const routers = spec.routers.map((r, i): PlannedRouter => {
    const what = `router "${r.name}"`;
    if (!ROUTER_NAME.test(r.name)) throw new SandboxSpecError(`${what}: name must be 1-32 of [a-z0-9-], not starting or ending in '-'`);
    if (r.lans.length === 0) throw new SandboxSpecError(`${what}: lans is empty`);
    if ((r.internetAddress6 === undefined) !== (cidr6 === undefined)) throw new SandboxSpecError(`${what}: internetAddress6 goes with internet.cidr6, both or neither`);
    const lans = r.lans.map((lan, j): PlannedLan => {
      const lanCidr = parseField(lan.cidr, `${what}: lans[${j}].cidr`, 4);
      const lanCidr6 = lan.cidr6 === undefined ? undefined : parseField(lan.cidr6, `${what}: lans[${j}].cidr6`, 6);
      const publicCidr = lan.publicCidr === undefined ? undefined : parseField(lan.publicCidr, `${what}: lans[${j}].publicCidr`, 4);
      for (const c of [lanCidr, lanCidr6, publicCidr]) {
        if (c === undefined) continue;
        if (seen.some((s) => overlaps(s, c))) throw new SandboxSpecError(`${what}: lans[${j}]: ${formatCidr(c)} overlaps another segment`);
        seen.push(c);
      }
      return {
        bridge: `lan${j}`,
        cidr: lanCidr,
        cidr6: lanCidr6,
        publicCidr,
        gateway: firstOf(lanCidr),
        gateway6: lanCidr6 && firstOf(lanCidr6),
        publicGateway: publicCidr && firstOf(publicCidr),
      };
    });
    return {
      name: r.name,
      netns: `${prefix}r-${r.name}`,
      port: `r${i}`,
      internet: inSegment(r.internetAddress, cidr, `${what}: internetAddress`),
      internet6: r.internetAddress6 === undefined || cidr6 === undefined ? undefined : inSegment(r.internetAddress6, cidr6, `${what}: internetAddress6`),
      lans,
    };
  });
  const names = new Set(routers.map((r) => r.name));
  if (names.size !== routers.length) throw new SandboxSpecError('internet: two routers share a name');
  return { netns: `${prefix}internet`, cidr, cidr6, core: firstOf(cidr), core6: cidr6 && firstOf(cidr6), mtu, routers };
}

const ipPart = (cidr: string): string => cidr.split('/')[0] as string;

/** Where the host with this IPv4 address is plugged in: the LAN or the internet segment holding it. */
export function attachmentOf(internet: PlannedInternet, address: Cidr, what: string): HostAttachment {
  const ip = ipOf(address);
  for (const router of internet.routers) {
    const lan = router.lans.find((l) => containsIp(l.cidr, ip));
    if (lan === undefined) continue;
    if (lan.cidr.bits !== address.bits) throw new SandboxSpecError(`${what}: prefix length /${address.bits} differs from its LAN's /${lan.cidr.bits}`);
    return { netns: router.netns, bridge: lan.bridge, gateway: ipPart(lan.gateway), gateway6: lan.gateway6 && ipPart(lan.gateway6), mtu: undefined, router: router.name };
  }
  if (containsIp(internet.cidr, ip)) {
    if (internet.cidr.bits !== address.bits) throw new SandboxSpecError(`${what}: prefix length /${address.bits} differs from the internet's /${internet.cidr.bits}`);
    return { netns: internet.netns, bridge: 'br0', gateway: ipPart(internet.core), gateway6: internet.core6 && ipPart(internet.core6), mtu: internet.mtu, router: undefined };
  }
  throw new SandboxSpecError(`${what}: ${formatIp(ip)} is in no LAN and not on the internet`);
}

/** Checks a host's second, public address against the public prefix of its own LAN. */
export function checkPublicAddress(internet: PlannedInternet, attachment: HostAttachment, address: Cidr, what: string): void {
  const lan = internet.routers.find((r) => r.name === attachment.router)?.lans.find((l) => l.bridge === attachment.bridge);
  const ok = lan?.publicCidr !== undefined && containsIp(lan.publicCidr, ipOf(address)) && lan.publicCidr.bits === address.bits;
  if (!ok) throw new SandboxSpecError(`${what}: publicAddress ${formatCidr(address)} is not in the public prefix of the host's LAN`);
}

/** The router's own nft table (inet), and its sets of the UDP destinations it drops, per family. */
const ROUTER_TABLE = 'wirelane_sandbox';
const DROPPED_UDP_SETS = { 4: 'dropped_udp4', 6: 'dropped_udp6' } as const;

/**
 * The nft arguments, run in a router's namespace, that start (`add`) or stop (`delete`) dropping
 * the UDP it forwards to `ip`'s `port`: a WireGuard port cut at a location's router while the
 * node, its agent and its Node stay healthy.
 */
export function udpDropCommand(op: 'add' | 'delete', ip: Ip, port: number): string[] {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`UDP port ${port} is not in [1, 65535]`);
  return [op, 'element', 'inet', ROUTER_TABLE, DROPPED_UDP_SETS[ip.family], `{ ${formatIp(ip)} . ${port} }`];
}

/** The router's nft ruleset: masquerade what leaves from its LANs' private prefixes, and let only answers in. */
export function routerRuleset(router: PlannedRouter): string {
  const v4 = router.lans.map((l) => formatCidr(l.cidr));
  const v6 = router.lans.flatMap((l) => (l.cidr6 ? [formatCidr(l.cidr6)] : []));
  const lines = [
    `table inet ${ROUTER_TABLE} {`,
    // As a home router's firewall: no unasked-for TCP or UDP reaches the router itself. Such a
    // packet would otherwise leave a conntrack entry that takes the port a LAN host's mapping keeps
    // (masquerade preserves source ports), and two hosts behind NATs could never meet. ICMP stays
    // open: IPv6 needs neighbour discovery on the internet, and a router answers pings.
    '  chain input {',
    '    type filter hook input priority 0; policy accept;',
    '    iifname "eth0" meta l4proto { tcp, udp } ct state != { established, related } drop',
    '  }',
    // A path broken upstream of a host (udpDropCommand): what the router forwards to these
    // address-port pairs is dropped, answers included, so the host and its agent see nothing wrong.
    `  set ${DROPPED_UDP_SETS[4]} { type ipv4_addr . inet_service; }`,
    `  set ${DROPPED_UDP_SETS[6]} { type ipv6_addr . inet_service; }`,
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    `    ip daddr . udp dport @${DROPPED_UDP_SETS[4]} drop`,
    `    ip6 daddr . udp dport @${DROPPED_UDP_SETS[6]} drop`,
    `    iifname "eth0" ip daddr { ${v4.join(', ')} } ct state != { established, related } drop`,
    ...(v6.length > 0 ? [`    iifname "eth0" ip6 daddr { ${v6.join(', ')} } ct state != { established, related } drop`] : []),
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority 100; policy accept;',
    `    oifname "eth0" ip saddr { ${v4.join(', ')} } masquerade`,
    ...(v6.length > 0 ? [`    oifname "eth0" ip6 saddr { ${v6.join(', ')} } masquerade`] : []),
    '  }',
    '}',
    '',
  ];
  return lines.join('\n');
}
