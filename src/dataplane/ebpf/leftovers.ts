// What a run of the eBPF service proxy leaves on a host (pins keep it all attached after the agent
// exits), found and removed without that run: when another mode starts, and by `wirelane cleanup`.
// Only what carries the proxy's names goes: the pins it makes under its pin directory, and tc
// filters with the handle and priority it uses (kernels without tcx) on any interface.
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { listLinks } from '../../host/links.js';
import { PIN_LINKS_DIR } from './codec.js';
import { NodePortDatapath } from './nodeport.js';
import { removeSockLbPins } from './sock-lb.js';

/** Removes the eBPF proxy's programs and pins; one line per kind of thing removed (none on a clean host). */
export async function removeEbpfLeftovers(bpffsDir: string): Promise<string[]> {
  const pinsBefore = pinsUnder(bpffsDir);
  // Every interface: the tc data path may have been attached where the default route was then.
  const interfaces = (await listLinks()).map((link) => link.name);
  const tcDetached = await new NodePortDatapath({ bpffsDir, interfaces }).cleanup();
  const socketDetached = removeSockLbPins(bpffsDir);
  const removed: string[] = [];
  if (socketDetached > 0) removed.push(`${socketDetached} socket programs detached from their cgroup`);
  if (tcDetached > 0) removed.push(`${tcDetached} tc programs detached`);
  const pinsLeft = pinsUnder(bpffsDir);
  if (pinsBefore.length > pinsLeft.length) removed.push(`${pinsBefore.length - pinsLeft.length} pins removed from ${bpffsDir}`);
  // Each data path leaves the shared directories to whoever removes the last pin; pins of other
  // names are not the proxy's (a --bpf-dir shared with other software) and keep them.
  for (const dir of [join(bpffsDir, PIN_LINKS_DIR), bpffsDir]) {
    if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  }
  return removed;
}

/** Pins under the pin directory and its links directory, as relative paths. */
function pinsUnder(bpffsDir: string): string[] {
  const list = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);
  const links = list(join(bpffsDir, PIN_LINKS_DIR)).map((name) => join(PIN_LINKS_DIR, name));
  return [...list(bpffsDir).filter((name) => name !== PIN_LINKS_DIR), ...links];
}
