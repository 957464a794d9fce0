// The byte layouts of bpf/include/wirelane_maps.h, in TypeScript: encoders that write keys and
// values straight into one preallocated Buffer per batch (encoding dominates a full sync, and a
// Buffer per entry costs four times the kernel's work), decoders for reading the maps back, and
// the load-time check that the object's maps have exactly the sizes this codec writes.
import { endianness } from 'node:os';
import type { Family, Ip } from '../../model/ip.js';
import type { Protocol } from '../../model/service.js';

// Host-order fields are written little-endian; a big-endian host would need every writer changed.
if (endianness() !== 'LE') throw new Error('the eBPF map codec writes host-order fields little-endian; this host is big-endian');

/** Map names, as in the header (WL_MAP_*), also the pin file names. */
export const MAP_NAMES = {
  services: 'wl_services',
  backends: 'wl_backends',
  nodeAddrs: 'wl_node_addrs',
  affinity: 'wl_affinity',
  sockRev: 'wl_sock_rev',
} as const;

export type MapName = (typeof MAP_NAMES)[keyof typeof MAP_NAMES];

/** Key and value sizes in bytes, as the header's _Static_asserts pin them. */
export const MAP_LAYOUTS: Readonly<Record<MapName, { readonly key: number; readonly value: number }>> = {
  wl_services: { key: 24, value: 16 },
  wl_backends: { key: 4, value: 20 },
  wl_node_addrs: { key: 20, value: 4 },
  wl_affinity: { key: 24, value: 16 },
  wl_sock_rev: { key: 32, value: 24 },
};

/** Pins: <bpffs>/PIN_DIR/<map name>, links at <bpffs>/PIN_DIR/links/<program>. */
export const PIN_DIR = 'wirelane';
export const PIN_LINKS_DIR = 'links';

/** wl_service_key.scope */
export const Scope = { internal: 0, external: 1 } as const;
export type ScopeValue = (typeof Scope)[keyof typeof Scope];

/** wl_service_value.flags (WL_SVC_*) */
export const ServiceFlag = {
  noEndpointDrop: 1 << 0,
  localOnly: 1 << 1,
  affinity: 1 << 2,
  nodePort: 1 << 3,
  clusterIP: 1 << 4,
  externalIP: 1 << 5,
  loadBalancer: 1 << 6,
  sourceRanges: 1 << 7,
} as const;

/** wl_backend.flags (WL_BACKEND_*) */
export const BackendFlag = { local: 1 << 0 } as const;

/** wl_affinity_key.kind (WL_AFFINITY_*) */
export const AffinityKind = { netns: 1, addr: 2, socket: 3 } as const;

export const PROTOCOL_NUMBERS: Readonly<Record<Protocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 };
const PROTOCOLS_BY_NUMBER = new Map<number, Protocol>(Object.entries(PROTOCOL_NUMBERS).map(([name, n]) => [n, name as Protocol]));

/** A map as the loaded object or a pin describes it. */
export interface MapShape {
  readonly name: string;
  readonly keySize: number;
  readonly valueSize: number;
}

export class MapLayoutError extends Error {
  override readonly name = 'MapLayoutError';
}

/**
 * Refuses maps whose sizes differ from the codec's (an object built from another header): writing
 * them would corrupt entries silently. Every codec map must be among `maps`.
 */
export function checkMapLayouts(maps: readonly MapShape[]): void {
  const problems: string[] = [];
  for (const [name, layout] of Object.entries(MAP_LAYOUTS)) {
    // A map opened from a pin carries the kernel's name, which keeps 15 characters.
    const map = maps.find((m) => m.name === name || m.name === name.slice(0, 15));
    if (map === undefined) {
      problems.push(`map ${name}: missing from the object`);
      continue;
    }
    if (map.keySize !== layout.key) problems.push(`map ${name}: key size ${map.keySize} in the object, ${layout.key} in the codec`);
    if (map.valueSize !== layout.value) problems.push(`map ${name}: value size ${map.valueSize} in the object, ${layout.value} in the codec`);
  }
  if (problems.length > 0) throw new MapLayoutError(problems.join('; '));
}

/**
 * N keys and N values back to back, in buffers that grow by doubling and are reused across
 * batches: one allocation per batch size ever reached, not one per entry. Unused bytes are zero
 * (hash keys compare padding too).
 */
export class EntryBatch {
  keys: Buffer;
  values: Buffer;
  count = 0;

  constructor(
    readonly keySize: number,
    readonly valueSize: number,
    capacity = 256,
  ) {
    this.keys = Buffer.alloc(keySize * capacity);
    this.values = Buffer.alloc(Math.max(valueSize, 1) * capacity);
  }

  /** Room for one more entry: its index (key at index × keySize, value at index × valueSize). */
  add(): number {
    if ((this.count + 1) * this.keySize > this.keys.length) {
      const keys = Buffer.alloc(this.keys.length * 2);
      this.keys.copy(keys);
      this.keys = keys;
      const values = Buffer.alloc(this.values.length * 2);
      this.values.copy(values);
      this.values = values;
    }
    return this.count++;
  }

  keyBytes(): Buffer {
    return this.keys.subarray(0, this.count * this.keySize);
  }

  valueBytes(): Buffer {
    return this.values.subarray(0, this.count * this.valueSize);
  }

  /** Empties the batch, zeroing what was written. */
  clear(): void {
    this.keys.fill(0, 0, this.count * this.keySize);
    this.values.fill(0, 0, this.count * this.valueSize);
    this.count = 0;
  }
}

const LOW_64 = (1n << 64n) - 1n;

/** An address as the maps hold it: 16 bytes, network order, IPv4 in bytes 0..3 and zeros after. */
export function writeAddress(buf: Buffer, offset: number, ip: Ip): void {
  if (ip.family === 4) {
    buf.writeUInt32BE(Number(ip.value), offset);
    buf.fill(0, offset + 4, offset + 16);
  } else {
    buf.writeBigUInt64BE(ip.value >> 64n, offset);
    buf.writeBigUInt64BE(ip.value & LOW_64, offset + 8);
  }
}

export function readAddress(buf: Buffer, offset: number, family: Family): Ip {
  if (family === 4) return { family, value: BigInt(buf.readUInt32BE(offset)) };
  return { family, value: (buf.readBigUInt64BE(offset) << 64n) | buf.readBigUInt64BE(offset + 8) };
}

function familyOf(byte: number, what: string): Family {
  if (byte === 4 || byte === 6) return byte;
  throw new MapLayoutError(`${what}: family ${byte} is neither 4 nor 6`);
}

function protocolOf(byte: number, what: string): Protocol {
  const protocol = PROTOCOLS_BY_NUMBER.get(byte);
  if (protocol === undefined) throw new MapLayoutError(`${what}: protocol ${byte} is not TCP, UDP or SCTP`);
  return protocol;
}

// ---- wl_services ----------------------------------------------------------------------------

export interface ServiceKey {
  /** undefined: the NodePort wildcard (all-zero address). */
  readonly addr: Ip | undefined;
  readonly port: number;
  readonly slot: number;
  readonly protocol: Protocol;
  readonly family: Family;
  readonly scope: ScopeValue;
}

export function writeServiceKey(buf: Buffer, offset: number, key: ServiceKey): void {
  if (key.addr === undefined) buf.fill(0, offset, offset + 16);
  else writeAddress(buf, offset, key.addr);
  buf.writeUInt16BE(key.port, offset + 16);
  buf.writeUInt16LE(key.slot, offset + 18);
  buf[offset + 20] = PROTOCOL_NUMBERS[key.protocol];
  buf[offset + 21] = key.family;
  buf[offset + 22] = key.scope;
  buf[offset + 23] = 0;
}

/** Byte offset of the slot field in a service key: copy a frontend's key once, then patch the slot. */
export const SERVICE_KEY_SLOT_OFFSET = 18;

export function readServiceKey(buf: Buffer, offset = 0): ServiceKey {
  const family = familyOf(buf[offset + 21] ?? 0, 'wl_services key');
  let wildcard = true;
  for (let i = 0; i < 16; i++) if (buf[offset + i] !== 0) wildcard = false;
  const scope = buf[offset + 22];
  if (scope !== Scope.internal && scope !== Scope.external) throw new MapLayoutError(`wl_services key: scope ${scope} is unknown`);
  return {
    addr: wildcard ? undefined : readAddress(buf, offset, family),
    port: buf.readUInt16BE(offset + 16),
    slot: buf.readUInt16LE(offset + 18),
    protocol: protocolOf(buf[offset + 20] ?? 0, 'wl_services key'),
    family,
    scope,
  };
}

export interface ServiceValue {
  /** Slots 1..count: the backend; slot 0: 0. */
  readonly backendId: number;
  readonly serviceId: number;
  /** Slot 0: backend slots 1..count. */
  readonly count: number;
  /** Slot 0: ServiceFlag bits. */
  readonly flags: number;
  /** Slot 0: seconds; 0 = no affinity. */
  readonly affinityTimeout: number;
}

export function writeServiceValue(buf: Buffer, offset: number, backendId: number, serviceId: number, count: number, flags: number, affinityTimeout: number): void {
  buf.writeUInt32LE(backendId, offset);
  buf.writeUInt32LE(serviceId, offset + 4);
  buf.writeUInt16LE(count, offset + 8);
  buf.writeUInt16LE(flags, offset + 10);
  buf.writeUInt32LE(affinityTimeout, offset + 12);
}

export function readServiceValue(buf: Buffer, offset = 0): ServiceValue {
  return {
    backendId: buf.readUInt32LE(offset),
    serviceId: buf.readUInt32LE(offset + 4),
    count: buf.readUInt16LE(offset + 8),
    flags: buf.readUInt16LE(offset + 10),
    affinityTimeout: buf.readUInt32LE(offset + 12),
  };
}

// ---- wl_backends ----------------------------------------------------------------------------

export interface BackendValue {
  readonly addr: Ip;
  readonly port: number;
  /** BackendFlag bits. */
  readonly flags: number;
}

export function writeBackendKey(buf: Buffer, offset: number, id: number): void {
  buf.writeUInt32LE(id, offset);
}

export function writeBackendValue(buf: Buffer, offset: number, backend: BackendValue): void {
  writeAddress(buf, offset, backend.addr);
  buf.writeUInt16BE(backend.port, offset + 16);
  buf[offset + 18] = backend.addr.family;
  buf[offset + 19] = backend.flags;
}

export function readBackendValue(buf: Buffer, offset = 0): BackendValue {
  const family = familyOf(buf[offset + 18] ?? 0, 'wl_backends value');
  return { addr: readAddress(buf, offset, family), port: buf.readUInt16BE(offset + 16), flags: buf[offset + 19] ?? 0 };
}

// ---- wl_node_addrs --------------------------------------------------------------------------

export function writeNodeAddrKey(buf: Buffer, offset: number, ip: Ip): void {
  writeAddress(buf, offset, ip);
  buf[offset + 16] = ip.family;
  buf.fill(0, offset + 17, offset + 20);
}

export function readNodeAddrKey(buf: Buffer, offset = 0): Ip {
  return readAddress(buf, offset, familyOf(buf[offset + 16] ?? 0, 'wl_node_addrs key'));
}

// ---- wl_affinity ----------------------------------------------------------------------------

export type AffinityClient = { readonly kind: 'netns' | 'socket'; readonly cookie: bigint } | { readonly kind: 'addr'; readonly addr: Ip };

export interface AffinityKey {
  readonly client: AffinityClient;
  readonly serviceId: number;
  readonly family: Family;
}

export interface AffinityValue {
  readonly backendId: number;
  readonly slot: number;
  readonly lastUsedNs: bigint;
}

export function writeAffinityKey(buf: Buffer, offset: number, key: AffinityKey): void {
  buf.fill(0, offset, offset + 24);
  if (key.client.kind === 'addr') writeAddress(buf, offset, key.client.addr);
  else buf.writeBigUInt64LE(key.client.cookie, offset);
  buf.writeUInt32LE(key.serviceId, offset + 16);
  buf[offset + 20] = AffinityKind[key.client.kind];
  buf[offset + 21] = key.family;
}

export function readAffinityKey(buf: Buffer, offset = 0): AffinityKey {
  const family = familyOf(buf[offset + 21] ?? 0, 'wl_affinity key');
  const kind = buf[offset + 20];
  const serviceId = buf.readUInt32LE(offset + 16);
  if (kind === AffinityKind.addr) return { client: { kind: 'addr', addr: readAddress(buf, offset, family) }, serviceId, family };
  if (kind === AffinityKind.netns || kind === AffinityKind.socket) {
    return { client: { kind: kind === AffinityKind.netns ? 'netns' : 'socket', cookie: buf.readBigUInt64LE(offset) }, serviceId, family };
  }
  throw new MapLayoutError(`wl_affinity key: kind ${kind} is unknown`);
}

export function readAffinityValue(buf: Buffer, offset = 0): AffinityValue {
  return { backendId: buf.readUInt32LE(offset), slot: buf.readUInt16LE(offset + 4), lastUsedNs: buf.readBigUInt64LE(offset + 8) };
}

// ---- wl_sock_rev ----------------------------------------------------------------------------

export interface SockRevEntry {
  readonly cookie: bigint;
  readonly backend: Ip;
  readonly backendPort: number;
  readonly frontend: Ip;
  readonly frontendPort: number;
  readonly serviceId: number;
}

export function readSockRev(key: Buffer, value: Buffer): SockRevEntry {
  const family = familyOf(key[26] ?? 0, 'wl_sock_rev key');
  return {
    cookie: key.readBigUInt64LE(0),
    backend: readAddress(key, 8, family),
    backendPort: key.readUInt16BE(24),
    frontend: readAddress(value, 0, family),
    frontendPort: value.readUInt16BE(16),
    serviceId: value.readUInt32LE(20),
  };
}
