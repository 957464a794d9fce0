// Loads the compiled libbpf addon once, on first use (importing src/bpf never fails, so the probe
// can report a missing build instead of crashing), and routes its failures through BpfError. The
// addon's handles are typed here; what they return are the public types of the modules that wrap
// them (the addon builds exactly those objects).
import { createRequire } from 'node:module';
import { errorLine } from '../observability/first-line.js';
import { ADDON_PATH } from './artifacts.js';
import { BpfError, type BpfFailure } from './error.js';
import type { LinkInfo } from './link.js';
import type { MapDescription, MappedArray } from './map.js';
import type { GlobalVariable, MapInfo, ProgramInfo } from './object.js';
import type { BpfTypeKind } from './probe.js';
import type { ProgramDescription } from './program.js';
import type { TcFilter, TcTarget } from './tc.js';

/** What attachClsact reports: the filter without the target it was given. */
type ClsactFilter = Omit<TcFilter, keyof TcTarget>;

export interface NativeObject {
  name(): string;
  constants(): GlobalVariable[];
  setConstant(name: string, value: Uint8Array): void;
  setMaxEntries(map: string, entries: number): void;
  setMapPinPath(map: string, path: string): void;
  load(): void;
  loadAsync(): Promise<void>;
  loaded(): boolean;
  maps(): MapInfo[];
  programs(): ProgramInfo[];
  map(name: string): NativeMap;
  programInfo(name: string): ProgramDescription;
  attachCgroup(program: string, cgroupPath: string): NativeLink;
  attachTcx(program: string, target: TcTarget): NativeLink;
  attachClsact(program: string, target: TcTarget, handle: number, priority: number, replace: boolean): ClsactFilter;
  runIterator(program: string, netns: string): number;
  close(): void;
}

export interface NativeMap {
  info(): MapDescription;
  lookup(key: Uint8Array): Buffer | undefined;
  update(key: Uint8Array, value: Uint8Array, flags: number): void;
  delete(key: Uint8Array): boolean;
  keys(): Buffer[];
  entries(): Array<[Buffer, Buffer]>;
  updateBatch(keys: Uint8Array, values: Uint8Array, flags: number): number;
  deleteBatch(keys: Uint8Array): number;
  batchSupported(): boolean | undefined;
  pin(path: string): void;
  mmap(): MappedArray;
  close(): void;
}

export interface NativeLink {
  fd(): number | undefined;
  info(): LinkInfo;
  pin(path: string): void;
  update(programFd: number, expectedProgramId?: number): void;
  detach(): void;
  close(): void;
}

export interface NativeAddon {
  NativeObject: new (source: string | Uint8Array, name?: string) => NativeObject;
  setErrorFactory(factory: (failure: BpfFailure) => Error): void;
  openPinnedMap(path: string): NativeMap;
  openPinnedLink(path: string): NativeLink;
  programInfoById(id: number): ProgramDescription;
  openMapById(id: number): NativeMap;
  detachClsact(target: TcTarget, handle: number, priority: number): boolean;
  queryClsact(target: TcTarget, handle: number, priority: number): number | undefined;
  probeBpf(): { socketFilter: number; schedCls: number; log: string };
  probeProgramType(type: string | number): boolean;
  probeMapType(type: string | number): boolean;
  probeHelper(programType: string | number, helper: string | number): boolean;
  probeTcx(): boolean;
  typeNames(kind: BpfTypeKind): string[];
  releaseFreeHeap(): boolean;
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
