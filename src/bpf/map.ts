// A BPF map: lookups and updates with Buffers whose lengths the addon checks against the map's key
// and value sizes (a TypeError naming both sizes otherwise), iteration, batches that cross into
// native code once for many entries, and mmapable arrays read and written in place.
import { bpfAddon, type NativeMap } from './addon.js';

/** Flags for update/updateBatch (BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK). */
export const MapUpdate = { any: 0, noExist: 1, exist: 2, lock: 4 } as const;

export interface MapDescription {
  /** As the object names it (maps opened from a pin: the kernel's name, cut to 15 characters). */
  readonly name: string;
  readonly type: number;
  /** libbpf's name of the type: 'hash', 'lru_hash', 'array', 'lpm_trie', … */
  readonly typeName: string;
  readonly keySize: number;
  readonly valueSize: number;
  /** Bytes of a value Buffer: valueSize, or for per-CPU maps valueSize rounded up to 8 × possible CPUs. */
  readonly valueBytes: number;
  readonly maxEntries: number;
  readonly flags: number;
  /** The kernel's map id (bpftool map show id N). */
  readonly id: number;
}

/** The values of an mmapable array map, in place (BpfMap.mmap). */
export interface MappedArray {
  /**
   * maxEntries × stride bytes of map memory shared with the kernel and the programs; value i is the
   * valueSize bytes at i × stride. Detached (byteLength 0) once the map handle is closed.
   */
  readonly buffer: ArrayBuffer;
  /** Bytes from one value to the next: valueSize rounded up to 8, as the kernel lays out an array. */
  readonly stride: number;
}

export class BpfMap implements MapDescription {
  readonly #native: NativeMap;
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly valueBytes: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly id: number;

  /** Made by BpfObject.map and openPinnedMap. */
  constructor(native: NativeMap) {
    this.#native = native;
    const info = native.info();
    this.name = info.name;
    this.type = info.type;
    this.typeName = info.typeName;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.valueBytes = info.valueBytes;
    this.maxEntries = info.maxEntries;
    this.flags = info.flags;
    this.id = info.id;
  }

  /** The value, or undefined when the key is absent. */
  lookup(key: Uint8Array): Buffer | undefined {
    return this.#native.lookup(key);
  }

  update(key: Uint8Array, value: Uint8Array, flags: number = MapUpdate.any): void {
    this.#native.update(key, value, flags);
  }

  /** true when the key was there. */
  delete(key: Uint8Array): boolean {
    return this.#native.delete(key);
  }

  /** Every key (bpf_map_get_next_key), at most maxEntries of them. */
  keys(): Buffer[] {
    return this.#native.keys();
  }

  /** Every [key, value]; keys deleted during the walk are left out. */
  entries(): Array<[Buffer, Buffer]> {
    return this.#native.entries();
  }

  /**
   * Writes many entries in one call: `keys` is N keys back to back, `values` N values (RangeError
   * when the lengths do not fit the map). Uses bpf_map_update_batch, or a loop in native code where
   * the kernel has no batch for this map type or `flags` has more than BPF_F_LOCK. Returns N.
   */
  updateBatch(keys: Uint8Array, values: Uint8Array, flags: number = MapUpdate.any): number {
    return this.#native.updateBatch(keys, values, flags);
  }

  /** Deletes N keys given back to back; absent keys are skipped. Returns how many were deleted. */
  deleteBatch(keys: Uint8Array): number {
    return this.#native.deleteBatch(keys);
  }

  /** Whether the kernel took the last batch as a batch (false: the loop ran), undefined before any batch. */
  get batchSupported(): boolean | undefined {
    return this.#native.batchSupported();
  }

  /** Pins the map at `path` on a bpffs, where another process can open it (openPinnedMap). */
  pin(path: string): void {
    this.#native.pin(path);
  }

  /**
   * Maps the values of an array map created with BPF_F_MMAPABLE, to read and write them without a
   * syscall. Shared with the programs and without locking: an aligned access of up to 8 bytes is
   * atomic, a whole value is not. Calls on one handle return the same buffer while it lives. A
   * BpfError with EINVAL for any other map, EPERM or EACCES for a read-only one (a frozen .rodata).
   */
  mmap(): MappedArray {
    return this.#native.mmap();
  }

  /**
   * Closes this handle's fd, and detaches the buffer mmap() returned, so nothing writes into the map
   * through it afterwards; the map lives on while programs, pins or other fds hold it. Safe twice.
   */
  close(): void {
    this.#native.close();
  }
}

/** Opens a map pinned on a bpffs (bpf_obj_get); a BpfError when the pin is missing or not a map. */
export function openPinnedMap(path: string): BpfMap {
  return new BpfMap(bpfAddon().openPinnedMap(path));
}
