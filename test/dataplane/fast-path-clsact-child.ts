// The fast path in clsact mode inside a test's network namespace: FastPathDatapath reads the
// bridge's ports from sysfs of its own namespace, so fast-path-clsact.test.ts runs it here, under
// `ip netns exec` (which mounts the namespace's own /sys). One JSON command a line on stdin, one
// JSON answer a line on stdout ({ result } or { error }):
//   { op: 'apply', desired }     apply (a new FastPathDatapath after 'close': an agent restarted)
//   { op: 'follow' }             followPorts()
//   { op: 'close' }              close() the current one
//   { op: 'cleanup' }            removeFastPathLeftovers(), as `wirelane cleanup` runs it
//   { op: 'foreign', interface, handle, priority }   another program's clsact filter, not ours
import { createInterface } from 'node:readline';
import { BpfObject, bpfObjectPath } from '../../src/bpf/index.js';
import { FastPathDatapath, removeFastPathLeftovers, type FastPathDesired } from '../../src/dataplane/ebpf/fast-path.js';

type Command =
  | { readonly op: 'apply'; readonly desired: FastPathDesired }
  | { readonly op: 'follow' | 'close' | 'cleanup' }
  | { readonly op: 'foreign'; readonly interface: string; readonly handle: number; readonly priority: number };

const [, , bpffsDir = ''] = process.argv;
if (bpffsDir === '') throw new Error('usage: fast-path-clsact-child.ts BPFFS_DIR');

let fastPath: FastPathDatapath | undefined;
/** Another load of the object, its maps unpinned: the owner of the foreign filters. */
let foreign: BpfObject | undefined;

async function run(command: Command): Promise<unknown> {
  switch (command.op) {
    case 'apply':
      fastPath ??= new FastPathDatapath({ bpffsDir, tcMode: 'clsact' });
      return fastPath.apply(command.desired);
    case 'follow':
      if (fastPath === undefined) throw new Error('follow before apply');
      return fastPath.followPorts();
    case 'close':
      fastPath?.close();
      fastPath = undefined;
      return null;
    case 'cleanup':
      return removeFastPathLeftovers(bpffsDir);
    case 'foreign': {
      if (foreign === undefined) {
        foreign = BpfObject.open(bpfObjectPath('fastpath'), { name: 'foreign' });
        foreign.load();
      }
      const attachment = foreign.attachTc('fp_l2', { interface: command.interface, direction: 'ingress' }, { mode: 'clsact', handle: command.handle, priority: command.priority });
      return attachment.mode === 'clsact' ? attachment.filter.progId : null;
    }
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === '') continue;
  let answer: unknown;
  try {
    answer = { result: await run(JSON.parse(line) as Command) };
  } catch (error) {
    answer = { error: error instanceof Error ? error.message : String(error) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
fastPath?.close();
foreign?.close();
