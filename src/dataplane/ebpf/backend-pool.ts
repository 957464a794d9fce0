// The backends wl_backends holds, by id: one id per address:port however many service slots name
// it, reference-counted by those slots. The values live in the mapped array itself; the rest is
// flat typed arrays indexed by id rather than an object per backend: at 100,000 backends,
// per-backend objects cost more in allocation and garbage collection than all the writes.
import type { Ip } from '../../model/ip.js';
import { BACKEND_STRIDE, BackendFlag, type BackendValue, MAP_LAYOUTS, backendValueWords, ipv4BackendWords, readBackendValue } from './codec.js';

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
  /** wl_backends as mapped: the words of id i at i × BACKEND_STRIDE. */
  readonly #words: Uint32Array;
  readonly #refs: Int32Array;
  /** Whether id i is in use. */
  readonly #live: Uint8Array;
  /** The last mark() given to id i. */
  readonly #marks: Uint32Array;
  #mark = 0;
  readonly #v4 = new Ipv4Index();
  readonly #v6 = new Map<string, number>();
  #size = 0;
  readonly #free: number[] = [];
  #next = 1;
  /** Elements written or cleared in `words` since the last takeStores(). */
  #stores = 0;

  constructor(words: Uint32Array) {
    this.#words = words;
    const ids = Math.floor(words.length / BACKEND_STRIDE);
    this.#refs = new Int32Array(ids);
    this.#live = new Uint8Array(ids);
    this.#marks = new Uint32Array(ids);
  }

  get size(): number {
    return this.#size;
  }

  /** Room in the index for `more` backends than there are now, grown once rather than by doubling on the way. */
  reserve(more: number): void {
    this.#v4.reserve(this.#size + more);
  }

  /** Takes in every backend the mapped array holds (adoption); their references come from the slots counted after. */
  adoptAll(): void {
    const words = this.#words;
    for (let id = 1; id < this.#live.length; id++) {
      const family = (words[id * BACKEND_STRIDE + 4]! >>> 16) & 0xff;
      if (family === 0) continue;
      const value = this.#read(id);
      const v4 = ipv4Number(value.addr);
      if (this.#find(value.addr, v4, value.port) !== 0) continue;
      this.#add(id, value.addr, v4, value.port);
      this.#next = Math.max(this.#next, id + 1);
    }
    for (let id = 1; id < this.#next; id++) if (this.#live[id] === 0) this.#free.push(id);
  }

  /** One more slot names `id` (an adopted slot). */
  count(id: number): void {
    if (this.#live[id] === 1) this.#refs[id]!++;
  }

  /** Adopted backends no slot names: for release() once the change that adopted them is written. */
  unnamed(): number[] {
    const out: number[] = [];
    for (let id = 1; id < this.#next; id++) if (this.#live[id] === 1 && this.#refs[id] === 0) out.push(id);
    return out;
  }

  /** A new mark for ref(): backends referenced under one mark are referenced once. */
  newMark(): number {
    return ++this.#mark;
  }

  /**
   * The id for ip:port, taking a reference; 0 when it was already referenced under `mark` (an
   * endpoint listed twice). A new backend, or a changed local flag, is written in place (no slot
   * names a new id yet).
   */
  ref(ip: Ip, port: number, local: boolean, mark: number): number {
    const v4 = ipv4Number(ip);
    let id = this.#find(ip, v4, port);
    const words = this.#words;
    if (id !== 0 && this.#marks[id] === mark) return 0;
    if (id === 0) {
      id = this.#free.pop() ?? this.#next++;
      if (id >= this.#live.length) throw new RangeError(`wl_backends is full: ${this.#size} backends in ${this.#live.length - 1} ids`);
      this.#add(id, ip, v4, port);
      const flags = local ? BackendFlag.local : 0;
      if (v4 >= 0) ipv4BackendWords(v4, port, flags, words, id * BACKEND_STRIDE);
      else backendValueWords({ addr: ip, port, flags }, words, id * BACKEND_STRIDE);
      this.#stores++;
    } else if (((words[id * BACKEND_STRIDE + 4]! & LOCAL_BITS) !== 0) !== local) {
      words[id * BACKEND_STRIDE + 4] = (words[id * BACKEND_STRIDE + 4]! ^ LOCAL_BITS) >>> 0;
      this.#stores++;
    }
    this.#refs[id]!++;
    this.#marks[id] = mark;
    return id;
  }

  /** Drops a reference; true when nothing names the backend any more. */
  unref(id: number): boolean {
    if (this.#live[id] !== 1) return false;
    return --this.#refs[id]! <= 0;
  }

  /** Clears a backend nothing names (only once no slot within a count names it); its id is free for the next change. */
  release(id: number): void {
    if (this.#live[id] !== 1 || this.#refs[id]! > 0) return;
    const value = this.#read(id);
    if (value.addr.family === 4) this.#v4.delete(Number(value.addr.value), value.port);
    else this.#v6.delete(v6Identity(value.addr, value.port));
    this.#words.fill(0, id * BACKEND_STRIDE, (id + 1) * BACKEND_STRIDE);
    this.#stores++;
    this.#live[id] = 0;
    this.#refs[id] = 0;
    this.#size--;
    this.#free.push(id);
  }

  /** Elements written or cleared since the last call. */
  takeStores(): number {
    const n = this.#stores;
    this.#stores = 0;
    return n;
  }

  #read(id: number): BackendValue {
    const w = this.#words;
    return readBackendValue(Buffer.from(w.buffer, w.byteOffset + id * BACKEND_STRIDE * 4, MAP_LAYOUTS.wl_backends.value));
  }

  /** `v4`: ipv4Number(ip). */
  #find(ip: Ip, v4: number, port: number): number {
    return v4 >= 0 ? this.#v4.get(v4, port) : (this.#v6.get(v6Identity(ip, port)) ?? 0);
  }

  #add(id: number, ip: Ip, v4: number, port: number): void {
    if (v4 >= 0) this.#v4.set(v4, port, id);
    else this.#v6.set(v6Identity(ip, port), id);
    this.#live[id] = 1;
    this.#size++;
  }
}
