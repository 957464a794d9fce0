// Child of cgroup.test.ts: a process other than the one that attached re-opens a pinned link,
// detaches it and removes the pin. Prints the link's info as JSON.
import { openPinnedLink } from '../../src/bpf/index.js';

const [pin] = process.argv.slice(2);
if (pin === undefined) throw new Error('usage: child-detach-link.ts PIN');
const link = openPinnedLink(pin);
const info = link.info();
link.destroy();
link.close();
process.stdout.write(`${JSON.stringify(info)}\n`);
