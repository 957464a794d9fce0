// Where a tc program attaches and how it was attached. tcx links (kernel 6.6+) are bpf_links: they
// pin and detach like any link. On older kernels a filter on the clsact qdisc is used instead; it
// is named by (interface, direction, handle, priority), stays until removed whatever the process
// does, and removing it never touches the qdisc or other users' filters.
import { bpfAddon } from './addon.js';
import type { BpfLink } from './link.js';

export interface TcTarget {
  /** Interface name (or ifindex), looked up inside `netns`. */
  readonly interface: string | number;
  readonly direction: 'ingress' | 'egress';
  /** A network namespace by path (/var/run/netns/NAME); the caller's own when absent. */
  readonly netns?: string;
}

export interface TcAttachOptions {
  /** 'auto' (the default): tcx where the kernel has it (probeTcx), else clsact. */
  readonly mode?: 'auto' | 'tcx' | 'clsact';
  /** clsact only: the filter's handle and priority (1-65535); 0 or absent lets the kernel choose. */
  readonly handle?: number;
  readonly priority?: number;
  /** clsact only: a filter already at handle/priority gets the new program in one step (BPF_TC_F_REPLACE). */
  readonly replace?: boolean;
}

/** A clsact filter, as much as is needed to find and remove it later (from another process too). */
export interface TcFilterId extends TcTarget {
  readonly handle: number;
  readonly priority: number;
}

export interface TcFilter extends TcFilterId {
  readonly ifindex: number;
  readonly progId: number;
  /** Whether this attach created the clsact qdisc (detach leaves it: others may use it by then). */
  readonly createdQdisc: boolean;
}

export type TcAttachment =
  | { readonly mode: 'tcx'; readonly target: TcTarget; readonly link: BpfLink }
  | { readonly mode: 'clsact'; readonly target: TcTarget; readonly filter: TcFilter };

/** Removes our clsact filter (only it); false when it was not there. */
export function detachTcFilter(filter: TcFilterId): boolean {
  return bpfAddon().detachClsact(filter, filter.handle, filter.priority);
}

/** The id of the program in that clsact filter, or undefined when there is no such filter. */
export function queryTcFilter(filter: TcFilterId): number | undefined {
  return bpfAddon().queryClsact(filter, filter.handle, filter.priority);
}

/** Undoes an attachment: destroys the tcx link (and its pin), or removes the clsact filter. */
export function detachTc(attachment: TcAttachment): void {
  if (attachment.mode === 'tcx') attachment.link.destroy();
  else detachTcFilter(attachment.filter);
}
