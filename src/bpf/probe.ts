// What this kernel and this process can do with BPF, asked cheaply (each probe loads at most a
// trivial program and leaves nothing behind): the facts `wirelane probe` and the `auto` service
// proxy mode decide on.
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { bpfAddon } from './addon.js';
import { errnoCode } from './error.js';

export interface BpfSupport {
  /** The bpf syscall exists and the addon loads. */
  readonly syscall: boolean;
  /** This process may load and attach wirelane's kinds of programs (CAP_BPF and CAP_NET_ADMIN). */
  readonly privileged: boolean;
  /** Why not, when either is false. */
  readonly reason?: string;
}

export function probeBpf(): BpfSupport {
  let probe: ReturnType<ReturnType<typeof bpfAddon>['probeBpf']>;
  try {
    probe = bpfAddon().probeBpf();
  } catch (error) {
    return { syscall: false, privileged: false, reason: (error as Error).message };
  }
  if (probe.socketFilter === constants.errno.ENOSYS) {
    return { syscall: false, privileged: false, reason: 'the kernel has no bpf syscall (ENOSYS)' };
  }
  if (probe.schedCls !== 0) {
    const code = errnoCode(probe.schedCls);
    const hint = code === 'EPERM' ? ' (needs CAP_BPF and CAP_NET_ADMIN)' : '';
    return { syscall: true, privileged: false, reason: `loading a trivial sched_cls program failed: ${code}${hint}` };
  }
  return { syscall: true, privileged: true };
}

/** By libbpf's name ('cgroup_sock_addr', 'sched_cls', …) or number; a BpfError when the probe itself fails (EPERM). */
export function probeProgramType(type: string | number): boolean {
  return bpfAddon().probeProgramType(type);
}

/** By libbpf's name ('lru_hash', 'lpm_trie', …) or number. */
export function probeMapType(type: string | number): boolean {
  return bpfAddon().probeMapType(type);
}

/** Whether programs of `programType` may call `helper` (by name without bpf_, e.g. 'get_netns_cookie', or id). */
export function probeHelper(programType: string | number, helper: string | number): boolean {
  return bpfAddon().probeHelper(programType, helper);
}

let tcx: boolean | undefined;

/**
 * Whether the kernel has tcx links (6.6+). Safe: it asks for a tcx link on ifindex 0, which a kernel
 * with tcx refuses with ENODEV and one without with EINVAL; no interface is touched. Cached.
 */
export function probeTcx(): boolean {
  tcx ??= bpfAddon().probeTcx();
  return tcx;
}

/** Kernel BTF, which CO-RE programs need to load. */
export function probeBtf(): boolean {
  return existsSync('/sys/kernel/btf/vmlinux');
}

export type BpfTypeKind = 'program' | 'map' | 'attach' | 'link' | 'helper';

/** libbpf's names of program types, map types, attach types, link types or helpers, indexed by id. */
export function typeNames(kind: BpfTypeKind): readonly string[] {
  return bpfAddon().typeNames(kind);
}
