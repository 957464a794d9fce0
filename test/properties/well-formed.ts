// What a decoded value must look like, whatever it was decoded from: the types the rest of the agent
// trusts without checking again. A decoder that lets junk through (a function found on
// Object.prototype, a number where a name belongs) fails here.
import assert from 'node:assert/strict';
import type { Endpoint } from '../../src/model/endpoint.js';
import type { Cidr, Ip } from '../../src/model/ip.js';
import type { Granularity, MeshNode, MeshPeer } from '../../src/model/mesh.js';
import { PROTOCOLS } from '../../src/model/service.js';
import { type EndpointSlice, SERVICE_TYPES, type Service } from '../../src/services/input.js';

const WIDTH = { 4: 32n, 6: 128n } as const;
const GRANULARITIES: readonly Granularity[] = ['location', 'full', 'cross'];

function assertIp(ip: Ip, what: string, family?: 4 | 6): void {
  assert.ok(ip.family === 4 || ip.family === 6, `${what}: family ${String(ip.family)}`);
  assert.ok(family === undefined || ip.family === family, `${what}: family ${ip.family}, want ${family}`);
  assert.ok(typeof ip.value === 'bigint' && ip.value >= 0n && ip.value < 1n << WIDTH[ip.family], `${what}: value out of range`);
}

function assertCidr(c: Cidr, what: string): void {
  assertIp({ family: c.family, value: c.addr }, what);
  assert.ok(Number.isInteger(c.bits) && c.bits >= 0 && BigInt(c.bits) <= WIDTH[c.family], `${what}: /${c.bits}`);
}

function assertPort(p: unknown, what: string): void {
  assert.ok(typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535, `${what}: port ${String(p)}`);
}

function assertEndpoint(e: Endpoint, what: string): void {
  if (e.host.kind === 'ip') assertIp(e.host.ip, what);
  else assert.ok(e.host.kind === 'dns' && typeof e.host.name === 'string' && e.host.name !== '', `${what}: host`);
  assertPort(e.port, what);
}

const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

function assertKey(k: unknown, what: string): void {
  assert.ok(typeof k === 'string' && KEY.test(k), `${what}: not a canonical WireGuard key`);
}

function assertName(name: unknown, what: string): void {
  assert.ok(typeof name === 'string' && name !== '', `${what}: name ${String(name)}`);
}

export function assertWellFormedNode(n: MeshNode): void {
  assertName(n.name, 'node');
  assert.equal(typeof n.location, 'string');
  assert.equal(typeof n.leader, 'boolean');
  if (n.endpoint) assertEndpoint(n.endpoint, 'endpoint');
  if (n.internalIP) assertCidr(n.internalIP, 'internalIP');
  if (n.otherInternalIP) {
    assertCidr(n.otherInternalIP, 'otherInternalIP');
    assert.ok(n.internalIP && n.internalIP.family !== n.otherInternalIP.family, 'otherInternalIP is of the other family than internalIP');
  }
  if (n.publicKey !== undefined) assertKey(n.publicKey, 'publicKey');
  n.podCIDRs.forEach((c) => assertCidr(c, 'podCIDRs'));
  assert.ok(n.lastSeen === undefined || (Number.isSafeInteger(n.lastSeen) && n.lastSeen >= 0), 'lastSeen');
  assert.ok(Number.isInteger(n.persistentKeepalive) && n.persistentKeepalive >= 0 && n.persistentKeepalive <= 65535, 'keepalive');
  n.allowedLocationIPs.forEach((c) => assertCidr(c, 'allowedLocationIPs'));
  assert.ok(n.discoveredEndpoints instanceof Map, 'discoveredEndpoints');
  for (const [k, e] of n.discoveredEndpoints) {
    assertKey(k, 'discoveredEndpoints key');
    assertEndpoint(e, 'discoveredEndpoints');
  }
  if (n.wireguardIPs) {
    n.wireguardIPs.forEach((c) => assertCidr(c, 'wireguardIPs'));
    assert.ok(n.wireguardIPs.length >= 1 && new Set(n.wireguardIPs.map((c) => c.family)).size === n.wireguardIPs.length, 'wireguardIPs: one per family');
  }
  assert.ok(n.granularity === undefined || GRANULARITIES.includes(n.granularity), `granularity ${String(n.granularity)}`);
}

export function assertWellFormedPeer(p: MeshPeer): void {
  assertName(p.name, 'peer');
  assert.ok(p.allowedIPs.length > 0, 'allowedIPs');
  p.allowedIPs.forEach((c) => assertCidr(c, 'allowedIPs'));
  assertKey(p.publicKey, 'publicKey');
  if (p.presharedKey !== undefined) assertKey(p.presharedKey, 'presharedKey');
  if (p.endpoint) assertEndpoint(p.endpoint, 'endpoint');
  assert.ok(Number.isInteger(p.persistentKeepalive) && p.persistentKeepalive >= 0 && p.persistentKeepalive <= 65535, 'keepalive');
}

export function assertWellFormedService(s: Service): void {
  assertName(s.name, 'service');
  assertName(s.namespace, 'service namespace');
  assert.ok(SERVICE_TYPES.includes(s.type), `type ${String(s.type)}`);
  assert.ok(s.clusterIPs.length <= 2 && (!s.headless || s.clusterIPs.length === 0), 'clusterIPs');
  s.clusterIPs.forEach((ip) => assertIp(ip, 'clusterIPs'));
  assert.ok(s.clusterIPs.length < 2 || s.clusterIPs[0]?.family !== s.clusterIPs[1]?.family, 'clusterIPs of one family');
  for (const p of s.ports) {
    assert.equal(typeof p.name, 'string');
    assert.ok(PROTOCOLS.includes(p.protocol), `protocol ${String(p.protocol)}`);
    assertPort(p.port, 'port');
    if (p.nodePort !== undefined) assertPort(p.nodePort, 'nodePort');
  }
  s.externalIPs.forEach((ip) => assertIp(ip, 'externalIPs'));
  s.loadBalancerSourceRanges.forEach((c) => assertCidr(c, 'loadBalancerSourceRanges'));
  s.loadBalancerIngress.forEach((i) => assertIp(i.ip, 'ingress'));
  assert.ok(['Cluster', 'Local'].includes(s.externalTrafficPolicy) && ['Cluster', 'Local'].includes(s.internalTrafficPolicy), 'policies');
  const timeout = s.sessionAffinityTimeoutSeconds;
  assert.ok(timeout === undefined || (Number.isInteger(timeout) && timeout >= 1 && timeout <= 86400), 'affinity timeout');
  if (s.healthCheckNodePort !== undefined) assertPort(s.healthCheckNodePort, 'healthCheckNodePort');
}

export function assertWellFormedSlice(s: EndpointSlice): void {
  assertName(s.name, 'slice');
  assertName(s.namespace, 'slice namespace');
  assertName(s.service, 'slice service');
  assert.ok(s.family === 4 || s.family === 6, `family ${String(s.family)}`);
  for (const p of s.ports) {
    assert.equal(typeof p.name, 'string');
    assert.ok(PROTOCOLS.includes(p.protocol), `protocol ${String(p.protocol)}`);
    assertPort(p.port, 'slice port');
  }
  for (const e of s.endpoints) {
    assertIp(e.address, 'address', s.family);
    for (const c of [e.ready, e.serving, e.terminating]) assert.equal(typeof c, 'boolean');
    assert.ok(e.nodeName === undefined || (typeof e.nodeName === 'string' && e.nodeName !== ''), 'nodeName');
    e.zoneHints.forEach((z) => assertName(z, 'zone hint'));
  }
}
