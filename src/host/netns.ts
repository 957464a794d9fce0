// Named network namespaces (the bind mounts under /run/netns that `ip netns` manages).
import { IpJsonObject, readIpJson, runIpBatch } from './ip.js';

export async function listNetns(): Promise<string[]> {
  return (await readIpJson(['netns', 'list'])).map((v) => new IpJsonObject(v, 'ip netns entry').string('name'));
}

/** Creates the namespaces in one ip process; fails if any already exists. */
export async function createNetns(names: readonly string[]): Promise<void> {
  await runIpBatch(names.map((name) => ['netns', 'add', name]));
}

/**
 * Deletes those of `names` that exist and returns them. The kernel frees a namespace (and the
 * links inside it) only once no process is left in it, so stop its processes first.
 */
export async function deleteNetns(names: readonly string[]): Promise<string[]> {
  const existing = new Set(await listNetns());
  const doomed = names.filter((name) => existing.has(name));
  await runIpBatch(doomed.map((name) => ['netns', 'delete', name]));
  return doomed;
}
