// A BPF object file, from open to attach: set load-time constants and map sizes, load (the
// verifier's verdict comes back as a BpfError with its log; on the thread pool with loadAsync), then
// take maps and attach programs.
import { bpfAddon, type NativeObject } from './addon.js';
import { BpfLink } from './link.js';
import { BpfMap } from './map.js';
import type { ProgramDescription } from './program.js';
import { probeTcx } from './probe.js';
import type { TcAttachment, TcAttachOptions, TcTarget } from './tc.js';

export interface GlobalVariable {
  readonly name: string;
  /** '.rodata' for `const volatile` (fixed at load), '.data', '.bss'. */
  readonly section: string;
  readonly offset: number;
  readonly size: number;
}

export interface MapInfo {
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  /** libbpf's own maps for the object's globals (NAME.rodata, NAME.bss, …). */
  readonly internal: boolean;
  /** Only once loaded. */
  readonly fd: number | undefined;
}

export interface ProgramInfo {
  readonly name: string;
  readonly type: number;
  /** 'cgroup_sock_addr', 'sched_cls', … */
  readonly typeName: string;
  readonly expectedAttachType: number;
  /** 'cgroup_inet4_connect', … (from the section name) */
  readonly expectedAttachTypeName: string;
  /** The ELF section, e.g. 'cgroup/connect4' or 'tc'. */
  readonly section: string;
  /** Only once loaded. */
  readonly fd: number | undefined;
}

export class BpfObject {
  readonly #native: NativeObject;

  private constructor(native: NativeObject) {
    this.#native = native;
  }

  /** Opens an object file by path, or from its bytes (name: what errors and map names call it). */
  static open(source: string | Uint8Array, options: { readonly name?: string } = {}): BpfObject {
    const { NativeObject } = bpfAddon();
    return new BpfObject(new NativeObject(source, options.name));
  }

  get name(): string {
    return this.#native.name();
  }

  get loaded(): boolean {
    return this.#native.loaded();
  }

  /** The object's global variables, from BTF. */
  globals(): GlobalVariable[] {
    return this.#native.constants();
  }

  /**
   * Sets a global's initial value before load (a `const volatile` is then a constant the verifier
   * sees). Bytes must be exactly the variable's size; a number, bigint or boolean is written
   * little-endian in that size, and must fit it.
   */
  setConstant(name: string, value: Uint8Array | number | bigint | boolean): void {
    if (value instanceof Uint8Array) {
      this.#native.setConstant(name, value);
      return;
    }
    const variable = this.globals().find((v) => v.name === name);
    // Unknown names go to the addon as bytes, for its error listing the globals there are.
    this.#native.setConstant(name, variable === undefined ? new Uint8Array(0) : encodeInteger(name, value, variable.size));
  }

  /** Resizes a map before load. */
  setMaxEntries(map: string, entries: number): void {
    this.#native.setMaxEntries(map, entries);
  }

  /**
   * Before load: re-use the map pinned at `path` if there is one (libbpf checks that type, sizes and
   * flags match, a BpfError otherwise), or create it and pin it there. A restarted agent loads its
   * programs over the maps the previous one left this way.
   */
  setMapPinPath(map: string, path: string): void {
    this.#native.setMapPinPath(map, path);
  }

  /** Loads every program and creates the maps; a rejected program is a BpfError (EACCES) whose `log` is the verifier's. */
  load(): void {
    this.#native.load();
  }

  /**
   * load() on libuv's thread pool: the kernel verifies the programs on another core while this
   * thread runs on, and objects load side by side. Meanwhile every other call on this object
   * (close() too) is a BpfError EBUSY; a failure rejects with the BpfError load() would throw.
   */
  async loadAsync(): Promise<void> {
    await this.#native.loadAsync();
  }

  maps(): MapInfo[] {
    return this.#native.maps();
  }

  programs(): ProgramInfo[] {
    return this.#native.programs();
  }

  /** A handle on a loaded map with its own fd: it stays usable after close(). BpfError ENOENT when there is no such map. */
  map(name: string): BpfMap {
    return new BpfMap(this.#native.map(name));
  }

  /** A loaded program as the kernel describes it: id, tag, the maps it uses. */
  programInfo(name: string): ProgramDescription {
    return this.#native.programInfo(name);
  }

  /** A loaded program's fd (owned by this object: valid until close()). BpfError ENOENT for an unknown name. */
  programFd(name: string): number {
    const fd = this.programs().find((p) => p.name === name)?.fd;
    if (fd !== undefined) return fd;
    // The addon's own error: no such program (listing those there are), or not loaded yet.
    this.#native.programInfo(name);
    throw new Error(`object "${this.name}": program "${name}" has no fd`);
  }

  /** Attaches a cgroup program (connect4/6, sendmsg4/6, recvmsg4/6, getpeername4/6, …) to a cgroup v2 directory. */
  attachCgroup(program: string, cgroupPath: string): BpfLink {
    return new BpfLink(this.#native.attachCgroup(program, cgroupPath));
  }

  /**
   * Attaches a tc program to an interface (in another network namespace when target.netns is
   * given; the calling thread returns to its own namespace afterwards, on failure too).
   */
  attachTc(program: string, target: TcTarget, options: TcAttachOptions = {}): TcAttachment {
    const mode = options.mode ?? 'auto';
    if (mode === 'tcx' || (mode === 'auto' && probeTcx())) {
      return { mode: 'tcx', target, link: new BpfLink(this.#native.attachTcx(program, target)) };
    }
    const filter = this.#native.attachClsact(program, target, options.handle ?? 0, options.priority ?? 0, options.replace ?? false);
    return { mode: 'clsact', target, filter: { ...target, ...filter } };
  }

  /**
   * Runs an iterator program (iter/udp, iter/tcp, …) to the end and returns how many bytes it
   * wrote. A socket iterator walks the network namespace at `netns` (a /proc/PID/ns/net or
   * /run/netns path); default: this process's.
   */
  runIterator(program: string, netns = ''): number {
    return this.#native.runIterator(program, netns);
  }

  /** Frees the object and closes its own fds. Maps taken with map() and attached programs live on. Safe twice. */
  close(): void {
    this.#native.close();
  }
}

function encodeInteger(name: string, value: number | bigint | boolean, size: number): Uint8Array {
  if (typeof value !== 'number' && typeof value !== 'bigint' && typeof value !== 'boolean') {
    throw new TypeError(`constant "${name}": the value must be bytes, a number, a bigint or a boolean, got ${typeof value}`);
  }
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new RangeError(`constant "${name}": ${value} is not an integer`);
  }
  const n = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
  const bits = BigInt(size * 8);
  if (size > 8 || n >= 1n << bits || n < -(1n << (bits - 1n))) {
    throw new RangeError(`constant "${name}": ${value} does not fit its ${size} bytes`);
  }
  const bytes = new Uint8Array(size);
  let rest = BigInt.asUintN(size * 8, n);
  for (let i = 0; i < size; i++) {
    bytes[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return bytes;
}
