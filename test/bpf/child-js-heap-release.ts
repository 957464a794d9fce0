// Child of heap-release.test.ts: builds ~100 MiB of JavaScript objects, keeps them long enough to
// reach the old generation, drops them, and lets the process idle (an idle V8 collects nothing, so
// its heap stays committed). Then calls releaseFreeHeap and keeps idling. Prints V8's committed heap
// (MiB) before the call and the least seen within five seconds after it.
import { getHeapStatistics } from 'node:v8';
import { bpfAddon } from '../../src/bpf/index.js';

const committedMiB = (): number => getHeapStatistics().total_heap_size / 2 ** 20;
const idle = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let garbage: { readonly id: number; readonly name: string }[][] | undefined = [];
for (let i = 0; i < 40; i++) {
  garbage.push(Array.from({ length: 25_000 }, (_, j) => ({ id: i * 25_000 + j, name: `object ${i}-${j}` })));
  await idle(1); // across scavenges: the objects are promoted
}
garbage = undefined;
await idle(500);
const before = committedMiB();
bpfAddon().releaseFreeHeap();
let after = before;
for (let waited = 0; waited < 5_000 && after > before / 2; waited += 50) {
  await idle(50);
  after = Math.min(after, committedMiB());
}
process.stdout.write(`${JSON.stringify({ before, after })}\n`);
