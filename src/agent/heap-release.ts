// What the process freed, handed back to the kernel after a reconcile. glibc's allocator keeps freed
// memory for reuse, and returns pages on its own only from the top of its heap: the chunks of a
// re-list's HTTP body and parse buffers, freed in the middle, stayed in the agent's RSS (~30 MiB at
// 10,000 Services with the Kubernetes source, docs/benchmarks.md). V8 keeps the pages a burst of
// changes grew its heap by until its memory reducer runs, which an agent allocating a little at every
// resync seldom lets it: a memory-reducing collection at this point costs tens of milliseconds and
// gives back ~10 MiB at that scale. About once a resync period, so a burst of changes pays for one
// release, not one per reconcile.
import { bpfAddon } from '../bpf/addon.js';
import { errorLine } from '../observability/first-line.js';
import type { Logger } from '../observability/logger.js';

export class HeapRelease {
  #last = -Infinity;
  #unavailable = false;

  constructor(
    private readonly everyMs: number,
    private readonly log: Logger,
    private readonly release: () => boolean = () => bpfAddon().releaseFreeHeap(),
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * After a reconcile: releases free pages when the last release is about a period old. The resync
   * timer's reconciles end a period apart give or take their own length, so a strict period would
   * skip every other one.
   */
  afterReconcile(): void {
    if (this.#unavailable || this.now() - this.#last < this.everyMs * 0.75) return;
    this.#last = this.now();
    try {
      this.release();
    } catch (err) {
      // Without the addon (an unbuilt install on a host in fallback mode) the agent runs as it did.
      this.#unavailable = true;
      this.log.debug(`free memory is not handed back to the kernel: ${errorLine(err)}`);
    }
  }
}
