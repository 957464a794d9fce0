// Child of unprivileged.test.ts: drops root for user nobody, then tries to load a BPF object and to
// probe. Prints what it saw as one JSON line; exits 0 unless something unexpected happened.
import { BpfError, BpfObject, bpfAddon, probeBpf } from '../../src/bpf/index.js';

const [objectPath] = process.argv.slice(2);
if (objectPath === undefined) throw new Error('usage: child-unprivileged.ts OBJECT');
// Addon and object read while still root: a checkout under /root is not readable by nobody.
bpfAddon();
const object = BpfObject.open(objectPath);
process.setgroups?.([]);
process.setgid?.(65534);
process.setuid?.(65534);

let load: unknown;
try {
  object.load();
  load = { loaded: true };
} catch (error) {
  if (!(error instanceof BpfError)) throw error;
  load = { name: error.name, code: error.code, errno: error.errno, call: error.call, message: error.message, log: error.log };
}
process.stdout.write(`${JSON.stringify({ uid: process.getuid?.(), load, probe: probeBpf() })}\n`);
