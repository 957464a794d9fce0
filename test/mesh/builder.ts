// Small builders for mesh fixtures: nodes and peers from strings, options with test defaults.
import { createHash } from 'node:crypto';
import { type Endpoint, parseEndpoint } from '../../src/model/endpoint.js';
import { type Cidr, formatCidr, formatIp, parseCidr, parseCidrPerFamily } from '../../src/model/ip.js';
import { type WireGuardKey, parseKey } from '../../src/model/key.js';
import type { MeshNode, MeshPeer } from '../../src/model/mesh.js';
import type { Route, Rule } from '../../src/model/route.js';
import type { MeshOptions } from '../../src/mesh/types.js';

export const NOW = 1_700_000_000;

/** A stable, valid key per name, so expectations can name it. */
export function keyOf(name: string): WireGuardKey {
  return parseKey(createHash('sha256').update(name).digest('base64'));
}

export interface NodeSpec {
  loc?: string;
  ep?: string;
  ip?: string;
  pods?: string[];
  leader?: boolean;
  keepalive?: number;
  lastSeen?: number | null;
  allowed?: string[];
  /** Discovered endpoints by the name of the node or peer whose key was seen. */
  discovered?: Record<string, string>;
  noKey?: boolean;
}

export function node(name: string, spec: NodeSpec = {}): MeshNode {
  const discovered = new Map<WireGuardKey, Endpoint>();
  for (const [who, ep] of Object.entries(spec.discovered ?? {})) discovered.set(keyOf(who), parseEndpoint(ep));
  return {
    name,
    location: spec.loc ?? '',
    ...(spec.ep === undefined ? {} : { endpoint: parseEndpoint(spec.ep) }),
    // `ip` may name one internal IP per family: '192.168.1.1/24,fd31::1/64'.
    ...(spec.ip === undefined ? {} : internalIPs(parseCidrPerFamily(spec.ip))),
    ...(spec.noKey ? {} : { publicKey: keyOf(name) }),
    podCIDRs: (spec.pods ?? []).map(parseCidr),
    ...(spec.lastSeen === null ? {} : { lastSeen: spec.lastSeen ?? NOW }),
    leader: spec.leader ?? false,
    persistentKeepalive: spec.keepalive ?? 0,
    allowedLocationIPs: (spec.allowed ?? []).map(parseCidr),
    discoveredEndpoints: discovered,
  };
}

function internalIPs([internalIP, otherInternalIP]: Cidr[]): Pick<MeshNode, 'internalIP' | 'otherInternalIP'> {
  return { ...(internalIP && { internalIP }), ...(otherInternalIP && { otherInternalIP }) };
}

export interface PeerSpec {
  ips: string[];
  ep?: string;
  keepalive?: number;
  psk?: string;
}

export function peer(name: string, spec: PeerSpec): MeshPeer {
  return {
    name,
    allowedIPs: spec.ips.map(parseCidr),
    publicKey: keyOf(name),
    ...(spec.ep === undefined ? {} : { endpoint: parseEndpoint(spec.ep) }),
    persistentKeepalive: spec.keepalive ?? 0,
    ...(spec.psk === undefined ? {} : { presharedKey: keyOf(spec.psk) }),
  };
}

export function options(hostname: string, over: Partial<MeshOptions> = {}): MeshOptions {
  return {
    hostname,
    granularity: 'location',
    subnets: [parseCidr('10.4.0.0/16')],
    port: 51820,
    encapsulate: 'never',
    local: false,
    wireguardDevice: 'wirelane0',
    tunnelDevice: 'tunl0',
    underlayDevice: 'eth0',
    now: NOW,
    resyncPeriodSeconds: 30,
    ...over,
  };
}

/**
 * A node `<loc><i>` (e.g. a1) in location `loc` (letter) with predictable addresses:
 * endpoint 10.1.<L>.<i>, internal IP 192.168.<L>.<i>/24, pod CIDR 10.2.<L*10+i>.0/24, where L is the
 * letter's index + 1.
 */
export function member(loc: string, i: number, spec: NodeSpec = {}): MeshNode {
  const l = loc.charCodeAt(0) - 96;
  return node(`${loc}${i}`, {
    loc,
    ep: `10.1.${l}.${i}:51820`,
    ip: `192.168.${l}.${i}/24`,
    pods: [`10.2.${l * 10 + i}.0/24`],
    ...spec,
  });
}

/** A route as `ip route` would print it, for readable expectations. */
export function showRoute(r: Route): string {
  return [
    formatCidr(r.dst),
    r.gw && `via ${formatIp(r.gw)}`,
    `dev ${r.dev}`,
    r.src && `src ${formatIp(r.src)}`,
    r.onlink && 'onlink',
    r.table !== 'main' && `table ${r.table}`,
  ]
    .filter(Boolean)
    .join(' ');
}

/** A rule as `ip rule` would print it. */
export function showRule(r: Rule): string {
  return [r.from && `from ${formatCidr(r.from)}`, r.to && `to ${formatCidr(r.to)}`, r.iif && `iif ${r.iif}`, `table ${r.table}`].filter(Boolean).join(' ');
}
