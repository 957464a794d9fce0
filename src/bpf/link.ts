// A bpf_link: a program attached to a cgroup or (tcx) an interface. A link stays attached while its
// fd is open or it is pinned; garbage collection never detaches one (its fd is left open until the
// process exits), so a link that is neither pinned nor destroyed stays attached until process exit.
import { unlinkSync } from 'node:fs';
import { bpfAddon, type NativeLink } from './addon.js';
import { BpfError } from './error.js';

export interface LinkInfo {
  readonly id: number;
  readonly type: number;
  /** 'cgroup', 'tcx', … */
  readonly typeName: string;
  readonly progId: number;
}

export class BpfLink {
  readonly #native: NativeLink;
  #pinnedAt: string | undefined;

  /** Made by the attach calls and openPinnedLink. */
  constructor(native: NativeLink, pinnedAt?: string) {
    this.#native = native;
    this.#pinnedAt = pinnedAt;
  }

  /** The link's fd, undefined once closed. */
  get fd(): number | undefined {
    return this.#native.fd();
  }

  /** Where this handle pinned or opened the link, if anywhere. */
  get pinnedAt(): string | undefined {
    return this.#pinnedAt;
  }

  info(): LinkInfo {
    return this.#native.info();
  }

  /** Pins the link on a bpffs: it stays attached after this process exits, until unpinned. */
  pin(path: string): void {
    this.#native.pin(path);
    this.#pinnedAt = path;
  }

  /** Removes the pin this handle made or opened (or `path`); false when it was already gone. */
  unpin(path: string | undefined = this.#pinnedAt): boolean {
    if (path === undefined) return false;
    const removed = unpin(path);
    if (path === this.#pinnedAt) this.#pinnedAt = undefined;
    return removed;
  }

  /**
   * Swaps the link's program for the one behind `programFd` in one step (bpf_link_update): the hook
   * never runs without a program, and the link keeps its id and pin. With `expectedProgramId` the
   * swap happens only while the link still runs that program (BpfError EPERM otherwise). A program
   * of another type or attach type is EINVAL; an fd that is not open, EBADF.
   */
  update(programFd: number, options: { readonly expectedProgramId?: number } = {}): void {
    this.#native.update(programFd, options.expectedProgramId);
  }

  /** Detaches the program now, whatever else holds the link (pins, other processes' fds). */
  detach(): void {
    this.#native.detach();
  }

  /**
   * Closes this handle's fd. A link that is not pinned and has no other fd is detached by this;
   * a pinned one stays attached. Safe twice.
   */
  close(): void {
    this.#native.close();
  }

  /** Detaches, removes the pin this handle knows of, and closes: nothing of the link remains. */
  destroy(): void {
    if (this.fd !== undefined) this.detach();
    this.unpin();
    this.close();
  }
}

/** Opens a link pinned on a bpffs; a BpfError when the pin is missing or is not a link. */
export function openPinnedLink(path: string): BpfLink {
  return new BpfLink(bpfAddon().openPinnedLink(path), path);
}

/** Removes a pin (map or link); false when there was none. The object lives on while anything else holds it. */
export function unpin(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (error) {
    const failure = error as NodeJS.ErrnoException;
    if (failure.code === 'ENOENT') return false;
    const errno = Math.abs(failure.errno ?? 0);
    throw new BpfError({ context: `pin "${path}"`, call: 'unlink', errno, reason: failure.message, log: '' });
  }
}
