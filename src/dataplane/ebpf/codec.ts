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
  slots: 'wl_slots',
  backends: 'wl_backends',
  nodeAddrs: 'wl_node_addrs',
  affinity: 'wl_affinity',
  sockRev: 'wl_sock_rev',
} as const;

export type MapName = (typeof MAP_NAMES)[keyof typeof MAP_NAMES];

/** Key and value sizes in bytes, as the header's _Static_asserts pin them. */
export const MAP_LAYOUTS: Readonly<Record<MapName, { readonly key: number; readonly value: number }>> = {
  wl_services: { key: 24, value: 20 },
  wl_slots: { key: 4, value: 4 },
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
 * batches: one allocation per batch size ever reached, not one per entry. Every layout is a whole
 * number of 32-bit words, so writers fill `keyWords`/`valueWords` (host order, aligned views of the
 * same bytes) with plain stores, the fastest way to move bytes in JavaScript. Unused bytes are zero
 * (hash keys compare padding too).
 */
export class EntryBatch {
  keys: Buffer;
  values: Buffer;
  keyWords: Uint32Array;
  valueWords: Uint32Array;
  count = 0;

  constructor(
    readonly keySize: number,
    readonly valueSize: number,
    capacity = 256,
  ) {
    if (keySize % 4 !== 0 || valueSize % 4 !== 0) throw new RangeError(`EntryBatch: key ${keySize} and value ${valueSize} bytes must be whole 32-bit words`);
    this.keys = Buffer.alloc(keySize * capacity);
    this.values = Buffer.alloc(valueSize * capacity);
    this.keyWords = wordsOf(this.keys);
    this.valueWords = wordsOf(this.values);
  }

  /** Room for one more entry: its index (key at index × keySize bytes, value at index × valueSize). */
  add(): number {
    if ((this.count + 1) * this.keySize > this.keys.length) this.reserve(this.count + 1);
    return this.count++;
  }

  /** Room for `total` entries at least, in one allocation (each one is external memory the GC counts). */
  reserve(total: number): void {
    const capacity = this.keys.length / this.keySize;
    if (total <= capacity) return;
    const next = Math.max(total, capacity * 2);
    this.keys = grown(this.keys, next * this.keySize);
    this.values = grown(this.values, next * this.valueSize);
    this.keyWords = wordsOf(this.keys);
    this.valueWords = wordsOf(this.values);
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

// Buffer.alloc gives every buffer its own zeroed ArrayBuffer at offset 0: word views are aligned.
function wordsOf(buf: Buffer): Uint32Array {
  return new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
}

function grown(buf: Buffer, bytes: number): Buffer {
  const next = Buffer.alloc(bytes);
  buf.copy(next);
  return next;
}

/** Words of an entry: a batch's Uint32Array view, or a plain array (cheaper to make than a typed array). */
export type Words = Uint32Array | number[];

/** A 32-bit value's bytes reversed: network order bytes read as a little-endian word. */
function swap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

function swap16(v: number): number {
  return ((v & 0xff) << 8) | ((v >>> 8) & 0xff);
}

/** An address's 16 map bytes (network order, IPv4 in bytes 0..3) as 4 words at `out[at]`; undefined: all zero (the NodePort wildcard). */
export function addressWords(ip: Ip | undefined, out: Words, at: number): void {
  if (ip === undefined || ip.family === 4) {
    out[at] = ip === undefined ? 0 : swap32(Number(ip.value));
    out[at + 1] = 0;
    out[at + 2] = 0;
    out[at + 3] = 0;
    return;
  }
  for (let i = 0; i < 4; i++) out[at + i] = swap32(Number((ip.value >> BigInt(96 - 32 * i)) & 0xffffffffn));
}

/** An address as the maps hold it: 16 bytes, network order, IPv4 in bytes 0..3 and zeros after. */
export function writeAddress(buf: Buffer, offset: number, ip: Ip): void {
  const words = new Uint32Array(4);
  addressWords(ip, words, 0);
  copyWords(words, buf, offset);
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
  readonly protocol: Protocol;
  readonly family: Family;
  readonly scope: ScopeValue;
}

/** Service key words (6): address, then port, protocol and family, then scope. */
export function serviceKeyWords<W extends Words = number[]>(key: ServiceKey, out: W = [0, 0, 0, 0, 0, 0] as W, at = 0): W {
  serviceKeyWordsOf(key.addr, key.port, key.protocol, key.family, key.scope, out, at);
  return out;
}

/** serviceKeyWords with the fields as arguments: no key object per frontend of a full sync. */
export function serviceKeyWordsOf(addr: Ip | undefined, port: number, protocol: Protocol, family: Family, scope: ScopeValue, out: Words, at: number): void {
  addressWords(addr, out, at);
  out[at + 4] = (swap16(port) | (PROTOCOL_NUMBERS[protocol] << 16) | (family << 24)) >>> 0;
  out[at + 5] = scope;
}

export function writeServiceKey(buf: Buffer, offset: number, key: ServiceKey): void {
  copyWords(serviceKeyWords(key, new Uint32Array(6)), buf, offset);
}

function copyWords(words: Uint32Array, buf: Buffer, offset: number): void {
  buf.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength), offset);
}

export function readServiceKey(buf: Buffer, offset = 0): ServiceKey {
  const family = familyOf(buf[offset + 19] ?? 0, 'wl_services key');
  let wildcard = true;
  for (let i = 0; i < 16; i++) if (buf[offset + i] !== 0) wildcard = false;
  const scope = buf[offset + 20];
  if (scope !== Scope.internal && scope !== Scope.external) throw new MapLayoutError(`wl_services key: scope ${scope} is unknown`);
  return {
    addr: wildcard ? undefined : readAddress(buf, offset, family),
    port: buf.readUInt16BE(offset + 16),
    protocol: protocolOf(buf[offset + 18] ?? 0, 'wl_services key'),
    family,
    scope,
  };
}

export interface ServiceValue {
  /** The wl_slots index of slot 1. */
  readonly firstSlot: number;
  readonly serviceId: number;
  /** Backend slots 1..count. */
  readonly count: number;
  /** ServiceFlag bits. */
  readonly flags: number;
  /** Seconds; 0 = no affinity. */
  readonly affinityTimeout: number;
  /** Slots the range holds, from firstSlot. */
  readonly capacity: number;
}

/** Service value words (5) at `out[at]`. */
export function serviceValueWords(out: Words, at: number, firstSlot: number, serviceId: number, count: number, flags: number, affinityTimeout: number, capacity: number): void {
  out[at] = firstSlot;
  out[at + 1] = serviceId;
  out[at + 2] = (count | (flags << 16)) >>> 0;
  out[at + 3] = affinityTimeout;
  out[at + 4] = capacity;
}

export function writeServiceValue(buf: Buffer, offset: number, v: ServiceValue): void {
  const words = new Uint32Array(5);
  serviceValueWords(words, 0, v.firstSlot, v.serviceId, v.count, v.flags, v.affinityTimeout, v.capacity);
  copyWords(words, buf, offset);
}

export function readServiceValue(buf: Buffer, offset = 0): ServiceValue {
  return {
    firstSlot: buf.readUInt32LE(offset),
    serviceId: buf.readUInt32LE(offset + 4),
    count: buf.readUInt16LE(offset + 8),
    flags: buf.readUInt16LE(offset + 10),
    affinityTimeout: buf.readUInt32LE(offset + 12),
    capacity: buf.readUInt16LE(offset + 16),
  };
}

// ---- wl_slots and wl_backends: arrays the agent writes through its mapping --------------------

/**
 * Bytes from one element of an mmapable array to the next: the kernel lays values out at
 * round_up(value_size, 8) (kernel/bpf/arraymap.c), so a 4-byte slot takes 8 and a 20-byte backend 24.
 */
export function arrayStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}

/** 32-bit words from one wl_slots element to the next in the mapping. */
export const SLOT_STRIDE = arrayStride(4) / 4;
/** 32-bit words from one wl_backends element to the next in the mapping. */
export const BACKEND_STRIDE = arrayStride(20) / 4;

export interface BackendValue {
  readonly addr: Ip;
  readonly port: number;
  /** BackendFlag bits. */
  readonly flags: number;
}

export function writeBackendKey(buf: Buffer, offset: number, id: number): void {
  buf.writeUInt32LE(id, offset);
}

/** Backend value words (5) at `out[at]`. */
export function backendValueWords(backend: BackendValue, out: Uint32Array = new Uint32Array(5), at = 0): Uint32Array {
  if (backend.addr.family === 4) {
    ipv4BackendWords(Number(backend.addr.value), backend.port, backend.flags, out, at);
    return out;
  }
  addressWords(backend.addr, out, at);
  out[at + 4] = (swap16(backend.port) | (6 << 16) | (backend.flags << 24)) >>> 0;
  return out;
}

/**
 * An IPv4 backend's value words from the address as a number: the full sync's 100,000 backends
 * convert each BigInt once. Int32 arithmetic throughout (a Uint32Array store wraps it): a uint32
 * above 2^31 is a heap number in code the JIT has not optimized yet.
 */
export function ipv4BackendWords(ip4: number, port: number, flags: number, out: Uint32Array, at: number): void {
  out[at] = ((ip4 & 0xff) << 24) | ((ip4 & 0xff00) << 8) | ((ip4 >>> 8) & 0xff00) | ((ip4 >>> 24) & 0xff);
  out[at + 1] = 0;
  out[at + 2] = 0;
  out[at + 3] = 0;
  out[at + 4] = swap16(port) | (4 << 16) | (flags << 24);
}

export function writeBackendValue(buf: Buffer, offset: number, backend: BackendValue): void {
  copyWords(backendValueWords(backend), buf, offset);
}

/** Where a backend value's family byte is: 0 there is an unused id. */
export const BACKEND_FAMILY_OFFSET = 18;

export function readBackendValue(buf: Buffer, offset = 0): BackendValue {
  const family = familyOf(buf[offset + BACKEND_FAMILY_OFFSET] ?? 0, 'wl_backends value');
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
