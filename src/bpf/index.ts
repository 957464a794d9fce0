// The libbpf addon's TypeScript API: what the eBPF data plane is built on.
export { bpfAddon } from './addon.js';
export { ADDON_PATH, bpfFixtureDir, bpfFixturePath, bpfObjectPath } from './artifacts.js';
export { BpfError, errnoCode, type BpfFailure } from './error.js';
export { BpfLink, openPinnedLink, unpin, type LinkInfo } from './link.js';
export { BpfMap, MapUpdate, openPinnedMap, type MapDescription } from './map.js';
export { ensureBpffs, findBpffsMount, findCgroup2Mount, isBpffs, isCgroup2, parseMounts, type Mount } from './mounts.js';
export { BpfObject, type GlobalVariable, type MapInfo, type ProgramInfo } from './object.js';
export { openMapById, programInfoById, type ProgramDescription } from './program.js';
export { probeBpf, probeBtf, probeHelper, probeMapType, probeProgramType, probeTcx, typeNames, type BpfSupport, type BpfTypeKind } from './probe.js';
export {
  detachTc,
  detachTcFilter,
  queryTcFilter,
  type TcAttachment,
  type TcAttachOptions,
  type TcFilter,
  type TcFilterId,
  type TcTarget,
} from './tc.js';
