// The shared maps' keys and values (bpf/include/wirelane_maps.h), encoded at the offsets of
// layouts.ts: encoders that write keys and values straight into one preallocated Buffer per batch
// (encoding dominates a full sync, and a Buffer per entry costs four times the kernel's work),
// decoders for reading the maps back, and the load-time check that the object's maps have exactly
// the sizes this codec writes.
import { endianness } from 'node:os';
import type { Family, Ip } from '../../model/ip.js';
import type { Protocol } from '../../model/service.js';
import { AFFINITY_CLIENT, AFFINITY_KEY, BACKEND, type Field, type Layout, MAPS, NODE_ADDR_KEY, SERVICE_KEY, SERVICE_VALUE, alignedWord, fieldOf, sharedWord, wordOf } from './layouts.js';

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

/** Key and value sizes in bytes of the shared maps (layouts.ts). */
export const MAP_LAYOUTS = Object.fromEntries(
  Object.values(MAP_NAMES).map((name) => [name, { key: MAPS[name].key.size, value: MAPS[name].value.size }]),
) as Readonly<Record<MapName, { readonly key: number; readonly value: number }>>;

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
const AffinityKind = { netns: 1, addr: 2, socket: 3 } as const;

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

function copyWords(words: Uint32Array, buf: Buffer, offset: number): void {
  buf.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength), offset);
}

/** A host-order unsigned field of 1, 2 or 4 bytes at `base` + its offset. */
function readUint(buf: Buffer, base: number, field: Field): number {
  const at = base + field.offset;
  if (field.size === 1) return buf[at] ?? 0;
  if (field.size === 2) return buf.readUInt16LE(at);
  if (field.size === 4) return buf.readUInt32LE(at);
  throw new MapLayoutError(`a ${field.size}-byte field is not read as a number`);
}

/** The first word of a 16-byte address member, which addressWords fills. */
function addressWord<F extends string>(layout: Layout<F>, field: F): number {
  const { size } = fieldOf(layout, field);
  if (size !== 16) throw new MapLayoutError(`${layout.name}.${field} is ${size} bytes, not a 16-byte address`);
  return alignedWord(layout, field);
}

/** An address's 16 map bytes (network order, IPv4 in bytes 0..3) as 4 words at `out[at]`; undefined: all zero (the NodePort wildcard). */
function addressWords(ip: Ip | undefined, out: Words, at: number): void {
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

function readAddress(buf: Buffer, offset: number, family: Family): Ip {
  if (family === 4) return { family, value: BigInt(buf.readUInt32BE(offset)) };
  return { family, value: (buf.readBigUInt64BE(offset) << 64n) | buf.readBigUInt64BE(offset + 8) };
}

function familyOf(byte: number | undefined, what: string): Family {
  if (byte === 4 || byte === 6) return byte;
  throw new MapLayoutError(`${what}: family ${byte ?? 0} is neither 4 nor 6`);
}

function protocolOf(byte: number | undefined, what: string): Protocol {
  const protocol = PROTOCOLS_BY_NUMBER.get(byte ?? 0);
  if (protocol === undefined) throw new MapLayoutError(`${what}: protocol ${byte ?? 0} is not TCP, UDP or SCTP`);
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

// The words the writers store, from the table (an import-time error if the header moved a field
// the writers pack together into another word).
const SK = SERVICE_KEY.fields;
const SK_WORDS = SERVICE_KEY.size / 4;
const SK_ADDR = addressWord(SERVICE_KEY, 'addr');
const SK_PORT = sharedWord(SERVICE_KEY, 'port', 'protocol', 'family');
const SK_PORT_SHIFT = wordOf(SERVICE_KEY, 'port').shift;
const SK_PROTOCOL_SHIFT = wordOf(SERVICE_KEY, 'protocol').shift;
const SK_FAMILY_SHIFT = wordOf(SERVICE_KEY, 'family').shift;
const SK_SCOPE = sharedWord(SERVICE_KEY, 'scope');
const SK_SCOPE_SHIFT = wordOf(SERVICE_KEY, 'scope').shift;

/** A service key's words at `out[at]` (SERVICE_KEY.size / 4 of them), from its fields: no key object per frontend of a full sync. */
export function serviceKeyWordsOf(addr: Ip | undefined, port: number, protocol: Protocol, family: Family, scope: ScopeValue, out: Words, at: number): void {
  addressWords(addr, out, at + SK_ADDR);
  out[at + SK_PORT] = ((swap16(port) << SK_PORT_SHIFT) | (PROTOCOL_NUMBERS[protocol] << SK_PROTOCOL_SHIFT) | (family << SK_FAMILY_SHIFT)) >>> 0;
  out[at + SK_SCOPE] = (scope << SK_SCOPE_SHIFT) >>> 0;
}

export function writeServiceKey(buf: Buffer, offset: number, key: ServiceKey): void {
  const words = new Uint32Array(SK_WORDS);
  serviceKeyWordsOf(key.addr, key.port, key.protocol, key.family, key.scope, words, 0);
  copyWords(words, buf, offset);
}

export function readServiceKey(buf: Buffer, offset = 0): ServiceKey {
  const family = familyOf(buf[offset + SK.family.offset], 'wl_services key');
  let wildcard = true;
  for (let i = 0; i < SK.addr.size; i++) if (buf[offset + SK.addr.offset + i] !== 0) wildcard = false;
  const scope = buf[offset + SK.scope.offset];
  if (scope !== Scope.internal && scope !== Scope.external) throw new MapLayoutError(`wl_services key: scope ${scope} is unknown`);
  return {
    addr: wildcard ? undefined : readAddress(buf, offset + SK.addr.offset, family),
    port: buf.readUInt16BE(offset + SK.port.offset),
    protocol: protocolOf(buf[offset + SK.protocol.offset], 'wl_services key'),
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

const SV = SERVICE_VALUE.fields;
const SV_FIRST_SLOT = alignedWord(SERVICE_VALUE, 'first_slot');
const SV_SERVICE_ID = alignedWord(SERVICE_VALUE, 'service_id');
const SV_COUNT = sharedWord(SERVICE_VALUE, 'count', 'flags');
const SV_COUNT_SHIFT = wordOf(SERVICE_VALUE, 'count').shift;
const SV_FLAGS_SHIFT = wordOf(SERVICE_VALUE, 'flags').shift;
const SV_TIMEOUT = alignedWord(SERVICE_VALUE, 'affinity_timeout');
const SV_CAPACITY = sharedWord(SERVICE_VALUE, 'capacity');
const SV_CAPACITY_SHIFT = wordOf(SERVICE_VALUE, 'capacity').shift;

/** A service value's words (SERVICE_VALUE.size / 4) at `out[at]`. */
export function serviceValueWords(out: Words, at: number, firstSlot: number, serviceId: number, count: number, flags: number, affinityTimeout: number, capacity: number): void {
  out[at + SV_FIRST_SLOT] = firstSlot;
  out[at + SV_SERVICE_ID] = serviceId;
  out[at + SV_COUNT] = ((count << SV_COUNT_SHIFT) | (flags << SV_FLAGS_SHIFT)) >>> 0;
  out[at + SV_TIMEOUT] = affinityTimeout;
  out[at + SV_CAPACITY] = (capacity << SV_CAPACITY_SHIFT) >>> 0;
}

export function writeServiceValue(buf: Buffer, offset: number, v: ServiceValue): void {
  const words = new Uint32Array(SERVICE_VALUE.size / 4);
  serviceValueWords(words, 0, v.firstSlot, v.serviceId, v.count, v.flags, v.affinityTimeout, v.capacity);
  copyWords(words, buf, offset);
}

export function readServiceValue(buf: Buffer, offset = 0): ServiceValue {
  return {
    firstSlot: readUint(buf, offset, SV.first_slot),
    serviceId: readUint(buf, offset, SV.service_id),
    count: readUint(buf, offset, SV.count),
    flags: readUint(buf, offset, SV.flags),
    affinityTimeout: readUint(buf, offset, SV.affinity_timeout),
    capacity: readUint(buf, offset, SV.capacity),
  };
}

// ---- wl_slots and wl_backends: arrays the agent writes through its mapping --------------------

/**
 * Bytes from one element of an mmapable array to the next: the kernel lays values out at
 * round_up(value_size, 8) (kernel/bpf/arraymap.c), so a 4-byte slot takes 8 and a 20-byte backend 24.
 */
function arrayStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}

/** 32-bit words from one wl_slots element to the next in the mapping. */
export const SLOT_STRIDE = arrayStride(MAPS.wl_slots.value.size) / 4;
/** 32-bit words from one wl_backends element to the next in the mapping. */
export const BACKEND_STRIDE = arrayStride(BACKEND.size) / 4;

export interface BackendValue {
  readonly addr: Ip;
  readonly port: number;
  /** BackendFlag bits. */
  readonly flags: number;
}

const BV = BACKEND.fields;
const BV_ADDR = addressWord(BACKEND, 'addr');
const BV_PORT = sharedWord(BACKEND, 'port', 'family', 'flags');
const BV_PORT_SHIFT = wordOf(BACKEND, 'port').shift;
const BV_FAMILY_SHIFT = wordOf(BACKEND, 'family').shift;
const BV_FLAGS_SHIFT = wordOf(BACKEND, 'flags').shift;
/** The port and family bits of the word they share with the flags. */
const BV_PORT_FAMILY_BITS = ~(0xff << BV_FLAGS_SHIFT);

/** The backend value word holding its flags (a local flag flips in place), and the local flag's bits there. */
export const BACKEND_FLAGS_WORD = BV_PORT;
export const BACKEND_LOCAL_BITS = BackendFlag.local << BV_FLAGS_SHIFT;

/** The family byte of the backend value at `words[at]`: 0 for an unused id. */
export function backendFamilyAt(words: Uint32Array, at: number): number {
  return (words[at + BV_PORT]! >>> BV_FAMILY_SHIFT) & 0xff;
}

export function writeBackendKey(buf: Buffer, offset: number, id: number): void {
  buf.writeUInt32LE(id, offset);
}

/** A backend value's words (BACKEND.size / 4) at `out[at]`. */
export function backendValueWords(backend: BackendValue, out: Uint32Array = new Uint32Array(BACKEND.size / 4), at = 0): Uint32Array {
  if (backend.addr.family === 4) {
    ipv4BackendWords(Number(backend.addr.value), backend.port, backend.flags, out, at);
    return out;
  }
  addressWords(backend.addr, out, at + BV_ADDR);
  out[at + BV_PORT] = ((swap16(backend.port) << BV_PORT_SHIFT) | (6 << BV_FAMILY_SHIFT) | (backend.flags << BV_FLAGS_SHIFT)) >>> 0;
  return out;
}

/**
 * An IPv4 backend's value words from the address as a number: the full sync's 100,000 backends
 * convert each BigInt once. Int32 arithmetic throughout (a Uint32Array store wraps it): a uint32
 * above 2^31 is a heap number in code the JIT has not optimized yet.
 */
export function ipv4BackendWords(ip4: number, port: number, flags: number, out: Uint32Array, at: number): void {
  const addr = at + BV_ADDR;
  out[addr] = swap32(ip4);
  out[addr + 1] = 0;
  out[addr + 2] = 0;
  out[addr + 3] = 0;
  out[at + BV_PORT] = (swap16(port) << BV_PORT_SHIFT) | (4 << BV_FAMILY_SHIFT) | (flags << BV_FLAGS_SHIFT);
}

/** Whether the backend at `words[at]` is the IPv4 `ip4`:`port` (its flags aside). */
export function isIpv4Backend(words: Uint32Array, at: number, ip4: number, port: number): boolean {
  const portFamily = (swap16(port) << BV_PORT_SHIFT) | (4 << BV_FAMILY_SHIFT);
  return words[at + BV_ADDR] === swap32(ip4) && ((words[at + BV_PORT]! ^ portFamily) & BV_PORT_FAMILY_BITS) === 0;
}

/** The IPv4 address of the backend at `words[at]`, as an int32 (the inverse of ipv4BackendWords). */
export function backendIpv4At(words: Uint32Array, at: number): number {
  return swap32(words[at + BV_ADDR]!) | 0;
}

/** The port of the backend at `words[at]`. */
export function backendPortAt(words: Uint32Array, at: number): number {
  return swap16((words[at + BV_PORT]! >>> BV_PORT_SHIFT) & 0xffff);
}

export function writeBackendValue(buf: Buffer, offset: number, backend: BackendValue): void {
  copyWords(backendValueWords(backend), buf, offset);
}

export function readBackendValue(buf: Buffer, offset = 0): BackendValue {
  const family = familyOf(buf[offset + BV.family.offset], 'wl_backends value');
  return { addr: readAddress(buf, offset + BV.addr.offset, family), port: buf.readUInt16BE(offset + BV.port.offset), flags: readUint(buf, offset, BV.flags) };
}

// ---- wl_node_addrs --------------------------------------------------------------------------

const NA = NODE_ADDR_KEY.fields;

export function writeNodeAddrKey(buf: Buffer, offset: number, ip: Ip): void {
  buf.fill(0, offset, offset + NODE_ADDR_KEY.size);
  writeAddress(buf, offset + NA.addr.offset, ip);
  buf[offset + NA.family.offset] = ip.family;
}

export function readNodeAddrKey(buf: Buffer, offset = 0): Ip {
  return readAddress(buf, offset + NA.addr.offset, familyOf(buf[offset + NA.family.offset], 'wl_node_addrs key'));
}

// ---- wl_affinity ----------------------------------------------------------------------------

export type AffinityClient = { readonly kind: 'netns' | 'socket'; readonly cookie: bigint } | { readonly kind: 'addr'; readonly addr: Ip };

export interface AffinityKey {
  readonly client: AffinityClient;
  readonly serviceId: number;
  readonly family: Family;
}

const AK = AFFINITY_KEY.fields;
const AC = AFFINITY_CLIENT.fields;
const COOKIE_OF = { netns: AC.netns_cookie, socket: AC.socket_cookie } as const;

export function writeAffinityKey(buf: Buffer, offset: number, key: AffinityKey): void {
  buf.fill(0, offset, offset + AFFINITY_KEY.size);
  const client = offset + AK.client.offset;
  if (key.client.kind === 'addr') writeAddress(buf, client + AC.addr.offset, key.client.addr);
  else buf.writeBigUInt64LE(key.client.cookie, client + COOKIE_OF[key.client.kind].offset);
  buf.writeUInt32LE(key.serviceId, offset + AK.service_id.offset);
  buf[offset + AK.kind.offset] = AffinityKind[key.client.kind];
  buf[offset + AK.family.offset] = key.family;
}

export function readAffinityKey(buf: Buffer, offset = 0): AffinityKey {
  const family = familyOf(buf[offset + AK.family.offset], 'wl_affinity key');
  const kind = buf[offset + AK.kind.offset];
  const serviceId = readUint(buf, offset, AK.service_id);
  const client = offset + AK.client.offset;
  if (kind === AffinityKind.addr) return { client: { kind: 'addr', addr: readAddress(buf, client + AC.addr.offset, family) }, serviceId, family };
  if (kind === AffinityKind.netns || kind === AffinityKind.socket) {
    const name = kind === AffinityKind.netns ? 'netns' : 'socket';
    return { client: { kind: name, cookie: buf.readBigUInt64LE(client + COOKIE_OF[name].offset) }, serviceId, family };
  }
  throw new MapLayoutError(`wl_affinity key: kind ${kind} is unknown`);
}
