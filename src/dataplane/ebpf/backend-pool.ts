// The backends wl_backends holds, by id: one id per address:port however many service slots name
// it, reference-counted by those slots. Kept as flat typed arrays indexed by id rather than an
// object per backend: at 100,000 backends, per-backend objects and typed arrays cost more in
// allocation and garbage collection than the kernel's whole batch write.
import type { Ip } from '../../model/ip.js';
import { BackendFlag, type BackendValue, EntryBatch, MAP_LAYOUTS, backendValueWords, ipv4BackendWords, readBackendValue } from './codec.js';

const WORDS = MAP_LAYOUTS.wl_backends.value / 4;
/** Where the flags byte sits in the value's last word. */
const LOCAL_BITS = BackendFlag.local << 24;

/** IPv6 address:port, as a Map key. */
function v6Identity(ip: Ip, port: number): string {
  return `${ip.value}/${port}`;
}

/**
 * IPv4 address:port → id, open addressing over typed arrays: no allocation per lookup (a Map keyed
 * by a 48-bit number boxes every key, and at 100,000 backends that garbage was most of the time).
 * Deleted slots are tombstones until a rebuild; ids are positive.
 */
class Ipv4Index {
  #ips = new Uint32Array(1024);
  #ports = new Uint16Array(1024);
  /** 0 empty, -1 deleted, else the id. */
  #ids = new Int32Array(1024);
  #used = 0;

  get(ip: number, port: number): number {
    const mask = this.#ids.length - 1;
    for (let h = hash(ip, port) & mask; ; h = (h + 1) & mask) {
      const id = this.#ids[h]!;
      if (id === 0) return 0;
      if (id > 0 && this.#ips[h] === ip && this.#ports[h] === port) return id;
    }
  }

  /** Only for a key get() did not find. */
  set(ip: number, port: number, id: number): void {
    if ((this.#used + 1) * 2 > this.#ids.length) this.#rebuild(this.#ids.length * 2);
    const mask = this.#ids.length - 1;
    let h = hash(ip, port) & mask;
    while (this.#ids[h]! !== 0) h = (h + 1) & mask;
    this.#ips[h] = ip;
    this.#ports[h] = port;
    this.#ids[h] = id;
    this.#used++;
  }

  /** Room for `total` entries without a rebuild on the way. */
  reserve(total: number): void {
    let capacity = this.#ids.length;
    while (total * 2 > capacity) capacity *= 2;
    if (capacity > this.#ids.length) this.#rebuild(capacity);
  }

  delete(ip: number, port: number): void {
    const mask = this.#ids.length - 1;
    for (let h = hash(ip, port) & mask; this.#ids[h]! !== 0; h = (h + 1) & mask) {
      if (this.#ids[h]! > 0 && this.#ips[h] === ip && this.#ports[h] === port) {
        this.#ids[h] = -1;
        return;
      }
    }
  }

  #rebuild(capacity: number): void {
    const [ips, ports, ids] = [this.#ips, this.#ports, this.#ids];
    this.#ips = new Uint32Array(capacity);
    this.#ports = new Uint16Array(capacity);
    this.#ids = new Int32Array(capacity);
    this.#used = 0;
    for (let i = 0; i < ids.length; i++) if (ids[i]! > 0) this.set(ips[i]!, ports[i]!, ids[i]!);
  }
}

/** An IPv4 address as a number (one BigInt conversion, which V8 does not inline), -1 for IPv6. */
function ipv4Number(ip: Ip): number {
  return ip.family === 4 ? Number(ip.value) : -1;
}

function hash(ip: number, port: number): number {
  return Math.imul(ip ^ Math.imul(port, 0x9e3779b1), 0x85ebca6b) >>> 0;
}

export class BackendPool {
  /** wl_backend words of id i at i × WORDS. */
  #words = new Uint32Array(1024 * WORDS);
  #refs = new Int32Array(1024);
  /** Whether id i is in use. */
  #live = new Uint8Array(1024);
  readonly #v4 = new Ipv4Index();
  readonly #v6 = new Map<string, number>();
  #size = 0;
  readonly #free: number[] = [];
  #next = 1;
  readonly #scratch = new Uint32Array(WORDS);

  get size(): number {
    return this.#size;
  }

  /** Room for `more` backends than there are now, grown once rather than by doubling on the way. */
  reserve(more: number): void {
    this.#v4.reserve(this.#size + more);
    this.#room(this.#next + more);
  }

  /** A backend already in the map (adoption); its references come from the slots read after it. */
  adopt(id: number, value: BackendValue): void {
    const v4 = ipv4Number(value.addr);
    if (this.#find(value.addr, v4, value.port) !== 0) return;
    this.#add(id, value.addr, v4, value.port);
    this.#words.set(backendValueWords(value, this.#scratch), id * WORDS);
    this.#next = Math.max(this.#next, id + 1);
  }

  /** One more slot names `id` (an adopted slot). */
  count(id: number): void {
    if (this.#live[id] === 1) this.#refs[id]!++;
  }

  /** The id for ip:port, taking a reference; a new backend, or a changed local flag, is written to `writes`. */
  ref(ip: Ip, port: number, local: boolean, writes: EntryBatch): number {
    const v4 = ipv4Number(ip);
    let id = this.#find(ip, v4, port);
    if (id === 0) {
      id = this.#free.pop() ?? this.#next++;
      this.#add(id, ip, v4, port);
      const flags = local ? BackendFlag.local : 0;
      if (v4 >= 0) ipv4BackendWords(v4, port, flags, this.#words, id * WORDS);
      else backendValueWords({ addr: ip, port, flags }, this.#words, id * WORDS);
      this.#write(id, writes);
    } else if (((this.#words[id * WORDS + WORDS - 1]! & LOCAL_BITS) !== 0) !== local) {
      this.#words[id * WORDS + WORDS - 1] = (this.#words[id * WORDS + WORDS - 1]! ^ LOCAL_BITS) >>> 0;
      this.#write(id, writes);
    }
    this.#refs[id]!++;
    return id;
  }

  /** Drops a reference; true when nothing names the backend any more. */
  unref(id: number): boolean {
    if (this.#live[id] !== 1) return false;
    return --this.#refs[id]! <= 0;
  }

  /** Forgets a backend nothing names and queues its deletion; its id is free for the next apply. */
  release(id: number, deletes: EntryBatch): void {
    if (this.#live[id] !== 1 || this.#refs[id]! > 0) return;
    const at = deletes.add(); // first: it may replace the buffer
    deletes.keyWords[at] = id;
    const value = readBackendValue(Buffer.from(this.#words.buffer, id * WORDS * 4, WORDS * 4));
    if (value.addr.family === 4) this.#v4.delete(Number(value.addr.value), value.port);
    else this.#v6.delete(v6Identity(value.addr, value.port));
    this.#live[id] = 0;
    this.#refs[id] = 0;
    this.#size--;
    this.#free.push(id);
  }

  /** `v4`: ipv4Number(ip). */
  #find(ip: Ip, v4: number, port: number): number {
    return v4 >= 0 ? this.#v4.get(v4, port) : (this.#v6.get(v6Identity(ip, port)) ?? 0);
  }

  #add(id: number, ip: Ip, v4: number, port: number): void {
    this.#room(id);
    if (v4 >= 0) this.#v4.set(v4, port, id);
    else this.#v6.set(v6Identity(ip, port), id);
    this.#live[id] = 1;
    this.#size++;
  }

  #write(id: number, writes: EntryBatch): void {
    const at = writes.add();
    writes.keyWords[at] = id;
    // Word by word: a subarray per backend would allocate a typed array each time.
    for (let i = 0; i < WORDS; i++) writes.valueWords[at * WORDS + i] = this.#words[id * WORDS + i]!;
  }

  #room(id: number): void {
    if (id < this.#refs.length) return;
    let capacity = this.#refs.length;
    while (capacity <= id) capacity *= 2;
    const words = new Uint32Array(capacity * WORDS);
    words.set(this.#words);
    this.#words = words;
    const refs = new Int32Array(capacity);
    refs.set(this.#refs);
    this.#refs = refs;
    const live = new Uint8Array(capacity);
    live.set(this.#live);
    this.#live = live;
  }
}
