// Child of heap-release.test.ts: frees ~100 MiB of malloc'd buffers below one still held (so the
// allocator cannot give them back from the top of its heap), then calls releaseFreeHeap. Prints the
// resident size of the C heap before and after the call.
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { bpfAddon } from '../../src/bpf/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** The resident KiB of the process's brk heap (glibc's main arena). */
function heapKiB(): number {
  let inHeap = false;
  let kib = 0;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inHeap = line.endsWith('[heap]');
    else if (inHeap && line.startsWith('Rss:')) kib += Number(line.split(/\s+/)[1]);
  }
  return kib;
}

// 96 KiB: above Node's pool, below glibc's mmap threshold, so each comes from the heap itself.
let freed: Buffer[] | undefined = Array.from({ length: 1024 }, () => Buffer.alloc(96 * 1024, 1));
const held = Buffer.alloc(96 * 1024, 1);
freed = undefined;
for (let round = 0; round < 5; round++) {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 20));
}
const before = heapKiB();
const released = bpfAddon().releaseFreeHeap();
const after = heapKiB();
process.stdout.write(`${JSON.stringify({ before, after, released, held: held.length })}\n`);
