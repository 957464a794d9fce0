// Which sandbox prefixes are in use, by which process, and which processes each one started.
// One file per prefix under /run (tmpfs, emptied at boot like the namespaces themselves).
// Creating the file with O_EXCL is what claims a prefix, so concurrent test processes never
// share one; the leftover sweep uses the owner's pid and start time to tell a crashed run's
// sandbox from a live one.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const REGISTRY_DIR = '/run/wirelane/sandboxes';

/** A process identified beyond pid reuse: the start time from /proc/PID/stat. */
export interface ProcessIdentity {
  readonly pid: number;
  readonly startTime: string;
}

export interface RegistryEntry {
  readonly prefix: string;
  readonly owner: ProcessIdentity;
  /** Processes the sandbox spawned and has not yet seen exit. */
  readonly pids: readonly ProcessIdentity[];
}

/**
 * The process's start time in clock ticks since boot, or undefined if it is gone. A zombie
 * (killed, not yet reaped by its new parent) counts as gone.
 */
export function startTimeOf(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may itself contain spaces and parentheses; fields 3 and 22
  // (state, start time) are counted from its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[0] === 'Z' ? undefined : fields[19];
}

export function identify(pid: number): ProcessIdentity | undefined {
  const startTime = startTimeOf(pid);
  return startTime === undefined ? undefined : { pid, startTime };
}

export function isRunning(proc: ProcessIdentity): boolean {
  return startTimeOf(proc.pid) === proc.startTime;
}

function entryPath(prefix: string): string {
  return join(REGISTRY_DIR, `${prefix.slice(0, -1)}.json`);
}

/**
 * Claims a fresh random prefix ("wl" + 4 hex + "-") for this process. `acceptable` can reject
 * a prefix (its management subnet clashes with the host); another is tried.
 */
export function claimPrefix(acceptable: (prefix: string) => boolean = () => true): string {
  mkdirSync(REGISTRY_DIR, { recursive: true });
  const owner = identify(process.pid);
  if (owner === undefined) throw new Error(`sandbox registry: cannot read /proc/${process.pid}/stat`);
  for (let attempt = 0; attempt < 64; attempt++) {
    const prefix = `wl${randomBytes(2).toString('hex')}-`;
    if (!acceptable(prefix)) continue;
    const entry: RegistryEntry = { prefix, owner, pids: [] };
    try {
      writeFileSync(entryPath(prefix), JSON.stringify(entry), { flag: 'wx' });
      return prefix;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  throw new Error(`sandbox registry: no free prefix found in ${REGISTRY_DIR}`);
}

export function readEntry(prefix: string): RegistryEntry | undefined {
  try {
    return JSON.parse(readFileSync(entryPath(prefix), 'utf8')) as RegistryEntry;
  } catch {
    return undefined;
  }
}

export function listEntries(): RegistryEntry[] {
  let files: string[];
  try {
    files = readdirSync(REGISTRY_DIR);
  } catch {
    return [];
  }
  return files
    .filter((f) => /^wl[0-9a-f]{4}\.json$/.test(f))
    .flatMap((f) => readEntry(`${f.slice(0, -'.json'.length)}-`) ?? []);
}

/** Records the sandbox's live processes, replacing the file atomically. */
export function recordPids(prefix: string, pids: readonly ProcessIdentity[]): void {
  const entry = readEntry(prefix);
  if (entry === undefined) return;
  const tmp = `${entryPath(prefix)}.tmp`;
  writeFileSync(tmp, JSON.stringify({ ...entry, pids }));
  renameSync(tmp, entryPath(prefix));
}

export function releasePrefix(prefix: string): void {
  rmSync(entryPath(prefix), { force: true });
}
