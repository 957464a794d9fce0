// Child of cgroup.test.ts: attaches a cgroup program, drops every reference to the link and forces
// garbage collection. Prints whether the link was collected and whether the kernel still lists it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BpfObject, bpfFixturePath, type BpfLink } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';

const [cgroup] = process.argv.slice(2);
if (cgroup === undefined) throw new Error('usage: child-gc-link.ts CGROUP');
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let collected = false;
const registry = new FinalizationRegistry(() => (collected = true));
const obj = BpfObject.open(bpfFixturePath('addon_fixture'));
obj.load();
let link: BpfLink | undefined = obj.attachCgroup('count_connect4', cgroup);
const id = link.info().id;
registry.register(link, 'link');
link = undefined;
obj.close();
for (let round = 0; round < 10 && !collected; round++) {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 10));
}
const shown = await runCommand('bpftool', ['link', 'show', 'id', String(id)], { allowFailure: true });
process.stdout.write(`${JSON.stringify({ id, collected, listed: shown.exitCode === 0 })}\n`);
