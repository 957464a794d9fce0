// Child of userspace-daemon.test.ts: an "agent" that starts its own wireguard-go (child mode), then
// stops without clean-up (release) and returns. Prints wireguard-go's pid; the process must exit by
// itself while wireguard-go keeps running.
import { WireGuardDevice } from '../../src/wireguard/device.js';

const [name, netns, outputFile] = process.argv.slice(2);
if (name === undefined || netns === undefined || outputFile === undefined) throw new Error('usage: child-release.ts NAME NETNS OUTPUT_FILE');
const device = new WireGuardDevice({ name, netns, backend: 'userspace', userspace: 'child', outputFile });
const { pid } = await device.ensure();
process.stdout.write(`${pid}\n`);
device.release();
