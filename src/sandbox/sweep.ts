// Cleans up after test runs that crashed or were killed before their sandboxes were destroyed.
// Only names matching the sandbox prefix pattern are touched, and only those whose owning
// process is gone: a sweep never breaks a sandbox another live process is using.
import { listLinks } from '../host/links.js';
import { listNetns } from '../host/netns.js';
import { SANDBOX_PREFIX_PATTERN } from './plan.js';
import { isRunning, listEntries, releasePrefix } from './registry.js';
import { killRecorded, removeByPrefix } from './teardown.js';

export interface SweepReport {
  /** Prefixes of the dead sandboxes that were found. */
  readonly prefixes: readonly string[];
  readonly namespaces: readonly string[];
  readonly links: readonly string[];
  /** Processes those sandboxes had spawned and that were still running. */
  readonly killedPids: readonly number[];
}

function prefixOf(name: string): string | undefined {
  return SANDBOX_PREFIX_PATTERN.exec(name)?.[0];
}

export async function sweepLeftoverSandboxes(): Promise<SweepReport> {
  const entries = listEntries();
  const live = new Set(entries.filter((e) => isRunning(e.owner)).map((e) => e.prefix));
  const dead = entries.filter((e) => !live.has(e.prefix));
  const killedPids = await killRecorded(dead.flatMap((e) => e.pids));

  // A name with no registry entry at all is dead too: the entry is written before any name is
  // created and removed only after all of them are gone.
  const [namespaces, links] = await Promise.all([listNetns(), listLinks()]);
  const prefixes = new Set(dead.map((e) => e.prefix));
  for (const name of [...namespaces, ...links.map((l) => l.name)]) {
    const prefix = prefixOf(name);
    if (prefix !== undefined && !live.has(prefix)) prefixes.add(prefix);
  }
  const removed = await removeByPrefix([...prefixes]);
  for (const prefix of prefixes) releasePrefix(prefix);
  return { prefixes: [...prefixes].sort(), ...removed, killedPids };
}
