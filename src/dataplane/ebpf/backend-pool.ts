// The backends wl_backends holds, by id: one id per address:port however many service slots name
// it, reference-counted by those slots. The values live in the mapped array itself; the rest is
// flat typed arrays indexed by id rather than an object per backend: at 100,000 backends,
// per-backend objects cost more in allocation and garbage collection than all the writes.
import type { Ip } from '../../model/ip.js';
import {
  BACKEND_FLAGS_WORD,
  BACKEND_LOCAL_BITS,
  BACKEND_STRIDE,
  BackendFlag,
  type BackendValue,
  MAP_LAYOUTS,
  backendFamilyAt,
  backendIpv4At,
  backendPortAt,
  backendValueWords,
  ipv4BackendWords,
  isIpv4Backend,
  readBackendValue,
} from './codec.js';

/** IPv6 address:port, as a Map key. */
function v6Identity(ip: Ip, port: number): string {
  return `${ip.value}/${port}`;
}

/**
 * IPv4 address:port → id, open addressing over one typed array of ids: no allocation per lookup (a
 * Map keyed by a 48-bit number boxes every key, and at 100,000 backends that garbage was most of the
 * time). A cell holds the id only; the address and port it is compared by are the backend's own
 * words in wl_backends (4 bytes a cell instead of 16: 1 MiB instead of 4 at 131,072 ids, for a
 * second memory read per probe). Deleted cells are tombstones until a rebuild; ids are positive, and
 * an id is in the index only while its words hold its address.
 */
class Ipv4Index {
  /** Cell i: the id (0 empty, -1 deleted). */
  #cells = new Int32Array(1024);
  /** Cells taken, tombstones included. */
  #used = 0;
  /** Entries. */
  #size = 0;
  /** Where the last get() stopped: the hit, or the empty cell insert() fills. */
  #at = 0;

  constructor(private readonly words: Uint32Array) {}

  get capacity(): number {
    return this.#cells.length;
  }

  /** `ip`: the address as an int32 (ip | 0). */
  get(ip: number, port: number): number {
    const cells = this.#cells;
    const mask = cells.length - 1;
    for (let h = hash(ip, port) & mask; ; h = (h + 1) & mask) {
      const id = cells[h]!;
      if (id === 0 || (id > 0 && isIpv4Backend(this.words, id * BACKEND_STRIDE, ip, port))) {
        this.#at = h;
        return id;
      }
    }
  }

  /** Only right after a get() of the same key that found nothing, with `id`'s words written. */
  insert(ip: number, port: number, id: number): void {
    if ((this.#used + 1) * 2 > this.capacity) {
      // Mostly tombstones: the same size, swept; else twice the size.
      this.#rebuild((this.#size + 1) * 4 > this.capacity ? this.capacity * 2 : this.capacity);
      this.get(ip, port);
    }
    this.#cells[this.#at] = id;
    this.#used++;
    this.#size++;
  }

  /** Room for `total` entries without a rebuild on the way (touched now: see BackendPool). */
  reserve(total: number): void {
    let capacity = this.capacity;
    while (total * 2 > capacity) capacity *= 2;
    if (capacity > this.capacity) this.#rebuild(capacity);
  }

  /** While the backend's words still hold its address. */
  delete(ip: number, port: number): void {
    if (this.get(ip, port) <= 0) return;
    this.#cells[this.#at] = -1;
    this.#size--;
  }

  #rebuild(capacity: number): void {
    const old = this.#cells;
    const words = this.words;
    this.#cells = new Int32Array(capacity).fill(0);
    this.#used = 0;
    this.#size = 0;
    const mask = capacity - 1;
    for (const id of old) {
      if (id <= 0) continue;
      const at = id * BACKEND_STRIDE;
      let h = hash(backendIpv4At(words, at), backendPortAt(words, at)) & mask;
      while (this.#cells[h] !== 0) h = (h + 1) & mask;
      this.#cells[h] = id;
      this.#used++;
      this.#size++;
    }
  }
}

/** An IPv4 address as an int32 (one BigInt conversion, which V8 does not inline), undefined for IPv6. */
function ipv4Number(ip: Ip): number | undefined {
  return ip.family === 4 ? Number(ip.value) | 0 : undefined;
}

/** An int32 (no `>>> 0`: a uint32 above 2^31 is a heap number in unoptimized code). */
function hash(ip: number, port: number): number {
  return Math.imul(ip ^ Math.imul(port, 0x9e3779b1), 0x85ebca6b);
}

/** ref()'s answer when a new backend needs an id and wl_backends has none left. */
export const BACKENDS_FULL = -1;

export class BackendPool {
  /** wl_backends as mapped: the words of id i at i × BACKEND_STRIDE. */
  readonly #words: Uint32Array;
  readonly #refs: Int32Array;
  /** Whether id i is in use. */
  readonly #live: Uint8Array;
  /** The last mark() given to id i. */
  readonly #marks: Uint32Array;
  /** The mark under which id i was last allocated: rollback() frees it at once if nothing else took it since. */
  readonly #born: Uint32Array;
  #mark = 0;
  readonly #v4: Ipv4Index;
  readonly #v6 = new Map<string, number>();
  #size = 0;
  readonly #free: number[] = [];
  #next = 1;
  /** Elements written or cleared in `words` since the last takeStores(). */
  #stores = 0;

  /**
   * Everything is sized for every id wl_backends has, up front, and touched: like the kernel's
   * preallocated maps, the memory is the proxy's from the start, and a full sync does not stop
   * for page faults (~3 µs each on our CI's VMs, 15 ms and more at 100,000 backends).
   */
  constructor(words: Uint32Array) {
    this.#words = words;
    this.#v4 = new Ipv4Index(words);
    const ids = Math.floor(words.length / BACKEND_STRIDE);
    this.#refs = new Int32Array(ids).fill(0);
    this.#live = new Uint8Array(ids).fill(0);
    this.#marks = new Uint32Array(ids).fill(0);
    this.#born = new Uint32Array(ids).fill(0);
    this.#v4.reserve(ids);
  }

  get size(): number {
    return this.#size;
  }

  /** The backends wl_backends has ids for (id 0 means none). */
  get capacity(): number {
    return this.#live.length - 1;
  }

  /** Cells of the IPv4 index (tests: churn must not grow it). */
  get indexCapacity(): number {
    return this.#v4.capacity;
  }

  /** Takes in every backend the mapped array holds (adoption); their references come from the slots counted after. */
  adoptAll(): void {
    const words = this.#words;
    for (let id = 1; id < this.#live.length; id++) {
      if (backendFamilyAt(words, id * BACKEND_STRIDE) === 0) continue;
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
   * endpoint listed twice); BACKENDS_FULL when it is new and every id is taken. A new backend, or a
   * changed local flag, is written in place (no slot names a new id yet).
   */
  ref(ip: Ip, port: number, local: boolean, mark: number): number {
    const v4 = ipv4Number(ip);
    let id = this.#find(ip, v4, port);
    const words = this.#words;
    if (id !== 0 && this.#marks[id] === mark) return 0;
    if (id === 0) {
      if (this.#free.length === 0 && this.#next >= this.#live.length) return BACKENDS_FULL;
      id = this.#free.pop() ?? this.#next++;
      this.#born[id] = mark;
      const flags = local ? BackendFlag.local : 0;
      if (v4 !== undefined) ipv4BackendWords(v4, port, flags, words, id * BACKEND_STRIDE);
      else backendValueWords({ addr: ip, port, flags }, words, id * BACKEND_STRIDE);
      this.#add(id, ip, v4, port);
      this.#stores++;
    } else if (((words[id * BACKEND_STRIDE + BACKEND_FLAGS_WORD]! & BACKEND_LOCAL_BITS) !== 0) !== local) {
      words[id * BACKEND_STRIDE + BACKEND_FLAGS_WORD] = words[id * BACKEND_STRIDE + BACKEND_FLAGS_WORD]! ^ BACKEND_LOCAL_BITS;
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

  /** One more reference to a live id (a frontend keeping the backends its slots hold). */
  refId(id: number): void {
    if (this.#live[id] === 1) this.#refs[id]!++;
  }

  /**
   * Takes back a reference ref() gave under `mark`, for a frontend that turned out not to fit. A
   * backend allocated under that mark and named by nothing else is released at once (no slot ever
   * named it); true when the backend is named by nothing now but may still be in a slot a reader
   * sees (release it after the entries, like unref()).
   */
  rollback(id: number, mark: number): boolean {
    if (!this.unref(id)) return false;
    if (this.#born[id] !== mark) return true;
    this.release(id);
    return false;
  }

  /** Clears a backend nothing names (only once no slot within a count names it); its id is free for the next change. */
  release(id: number): void {
    if (this.#live[id] !== 1 || this.#refs[id]! > 0) return;
    const value = this.#read(id);
    if (value.addr.family === 4) this.#v4.delete(Number(value.addr.value) | 0, value.port);
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
  #find(ip: Ip, v4: number | undefined, port: number): number {
    return v4 !== undefined ? this.#v4.get(v4, port) : (this.#v6.get(v6Identity(ip, port)) ?? 0);
  }

  /** Right after a #find() of the same backend that found nothing, its words written. */
  #add(id: number, ip: Ip, v4: number | undefined, port: number): void {
    if (v4 !== undefined) this.#v4.insert(v4, port, id);
    else this.#v6.set(v6Identity(ip, port), id);
    this.#live[id] = 1;
    this.#size++;
  }
}
