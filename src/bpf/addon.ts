// Loads the compiled libbpf addon once, on first use (importing src/bpf never fails, so the probe
// can report a missing build instead of crashing), and routes its failures through BpfError.
import { createRequire } from 'node:module';
import { errorLine } from '../observability/first-line.js';
import { ADDON_PATH } from './artifacts.js';
import { BpfError, type BpfFailure } from './error.js';

export interface NativeGlobalVariable {
  readonly name: string;
  readonly section: string;
  readonly offset: number;
  readonly size: number;
}

export interface NativeMapInfo {
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly internal: boolean;
  readonly fd: number | undefined;
}

export interface NativeProgramInfo {
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  readonly expectedAttachType: number;
  readonly expectedAttachTypeName: string;
  readonly section: string;
  readonly fd: number | undefined;
}

export interface NativeTcTarget {
  readonly interface: string | number;
  readonly direction: 'ingress' | 'egress';
  readonly netns?: string | undefined;
}

export interface NativeClsactFilter {
  readonly ifindex: number;
  readonly handle: number;
  readonly priority: number;
  readonly progId: number;
  readonly createdQdisc: boolean;
}

export interface NativeProgramDescription {
  readonly id: number;
  readonly tag: string;
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  readonly mapIds: number[];
}

export interface NativeObject {
  name(): string;
  constants(): NativeGlobalVariable[];
  setConstant(name: string, value: Uint8Array): void;
  setMaxEntries(map: string, entries: number): void;
  setMapPinPath(map: string, path: string): void;
  load(): void;
  loaded(): boolean;
  maps(): NativeMapInfo[];
  programs(): NativeProgramInfo[];
  map(name: string): NativeMap;
  programInfo(name: string): NativeProgramDescription;
  attachCgroup(program: string, cgroupPath: string): NativeLink;
  attachTcx(program: string, target: NativeTcTarget): NativeLink;
  attachClsact(program: string, target: NativeTcTarget, handle: number, priority: number, replace: boolean): NativeClsactFilter;
  runIterator(program: string, netns: string): number;
  close(): void;
}

export interface NativeMapDescription {
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly valueBytes: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly id: number;
}

export interface NativeMappedArray {
  readonly buffer: ArrayBuffer;
  readonly stride: number;
}

export interface NativeMap {
  info(): NativeMapDescription;
  lookup(key: Uint8Array): Buffer | undefined;
  update(key: Uint8Array, value: Uint8Array, flags: number): void;
  delete(key: Uint8Array): boolean;
  keys(): Buffer[];
  entries(): Array<[Buffer, Buffer]>;
  updateBatch(keys: Uint8Array, values: Uint8Array, flags: number): number;
  deleteBatch(keys: Uint8Array): number;
  batchSupported(): boolean | undefined;
  pin(path: string): void;
  mmap(): NativeMappedArray;
  close(): void;
}

export interface NativeLinkInfo {
  readonly id: number;
  readonly type: number;
  readonly typeName: string;
  readonly progId: number;
}

export interface NativeLink {
  fd(): number | undefined;
  info(): NativeLinkInfo;
  pin(path: string): void;
  update(programFd: number, expectedProgramId?: number): void;
  detach(): void;
  close(): void;
}

export type NativeTypeKind = 'program' | 'map' | 'attach' | 'link' | 'helper';

export interface NativeAddon {
  NativeObject: new (source: string | Uint8Array, name?: string) => NativeObject;
  setErrorFactory(factory: (failure: BpfFailure) => Error): void;
  openPinnedMap(path: string): NativeMap;
  openPinnedLink(path: string): NativeLink;
  programInfoById(id: number): NativeProgramDescription;
  openMapById(id: number): NativeMap;
  detachClsact(target: NativeTcTarget, handle: number, priority: number): boolean;
  queryClsact(target: NativeTcTarget, handle: number, priority: number): number | undefined;
  probeBpf(): { socketFilter: number; schedCls: number; log: string };
  probeProgramType(type: string | number): boolean;
  probeMapType(type: string | number): boolean;
  probeHelper(programType: string | number, helper: string | number): boolean;
  probeTcx(): boolean;
  typeNames(kind: NativeTypeKind): string[];
}

let loaded: NativeAddon | undefined;

/** The addon, loaded on first call; throws an Error saying how to build it when it is not built. */
export function bpfAddon(): NativeAddon {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  let addon: NativeAddon;
  try {
    addon = require(ADDON_PATH) as NativeAddon;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND';
    const why = missing ? 'it is not built' : `it does not load: ${errorLine(error)}`;
    throw new Error(`the libbpf addon ${ADDON_PATH}: ${why} (run npm run setup)`, { cause: error });
  }
  addon.setErrorFactory((failure) => new BpfError(failure));
  loaded = addon;
  return addon;
}
