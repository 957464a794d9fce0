// Programs and maps the kernel holds, found by id: what is attached (a link's or a filter's
// program id) compared with what this process would load, by the kernel's own fingerprint.
import { bpfAddon } from './addon.js';
import { BpfMap } from './map.js';

export interface ProgramDescription {
  /** The kernel's program id (bpftool prog show id N). */
  readonly id: number;
  /**
   * The kernel's tag: a hash of the instructions as loaded, with map references zeroed, so the same
   * code over other maps has the same tag (bpftool prog shows it).
   */
  readonly tag: string;
  /** As the kernel keeps it: 15 characters at most. */
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  /** The maps the program uses, its own .rodata/.bss included. */
  readonly mapIds: readonly number[];
}

/** A program by kernel id; BpfError ENOENT when there is none. */
export function programInfoById(id: number): ProgramDescription {
  return bpfAddon().programInfoById(id);
}

/** A handle on a map by kernel id; BpfError ENOENT when there is none. */
export function openMapById(id: number): BpfMap {
  return new BpfMap(bpfAddon().openMapById(id));
}
