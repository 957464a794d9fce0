// Removing what a sandbox made: its processes (exactly the pids it started), then every
// namespace and root-namespace link whose name starts with its prefix. Matching by prefix,
// not by the plan, also cleans up a build that failed halfway.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SpawnedProcess } from '../host/command.js';
import { runIpBatch } from '../host/ip.js';
import { listLinks } from '../host/links.js';
import { listNetns } from '../host/netns.js';
import { cniStateDirOf } from './cni-pods.js';
import { isRunning, type ProcessIdentity } from './registry.js';

export const DEFAULT_GRACE_MS = 2000;

function hasExited(child: SpawnedProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL once `graceMs` has passed; resolves when the process has exited. */
export async function stopProcess(child: SpawnedProcess, graceMs = DEFAULT_GRACE_MS): Promise<void> {
  if (hasExited(child)) return;
  // spawnProcess rejects nothing, so awaiting the child only waits for its exit.
  const exited = child.then(() => true);
  child.kill('SIGTERM');
  const timer = new AbortController();
  const inTime = await Promise.race([exited, sleep(graceMs, false, { signal: timer.signal }).catch(() => false)]);
  timer.abort();
  if (!inTime) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** SIGKILLs recorded processes that are still the same process (pid and start time match). */
export async function killRecorded(procs: readonly ProcessIdentity[]): Promise<number[]> {
  const killed = procs.filter(isRunning).filter((p) => {
    try {
      process.kill(p.pid, 'SIGKILL');
      return true;
    } catch {
      return false;
    }
  });
  // They are not our children (their parent died), so poll /proc instead of waiting on them.
  for (let i = 0; i < 100 && killed.some(isRunning); i++) await sleep(10);
  return killed.map((p) => p.pid);
}

export interface RemovedResources {
  readonly namespaces: readonly string[];
  readonly links: readonly string[];
}

/** Deletes namespaces, root links and CNI state directories whose names start with one of `prefixes`. */
export async function removeByPrefix(prefixes: readonly string[]): Promise<RemovedResources> {
  const owned = (name: string): boolean => prefixes.some((p) => name.startsWith(p));
  const [namespaces, links] = await Promise.all([listNetns(), listLinks()]);
  const doomedLinks = links.map((l) => l.name).filter(owned);
  const doomedNamespaces = namespaces.filter(owned);
  await killProcessesIn(doomedNamespaces);
  // Root links first: their peers may sit in a namespace the kernel tears down lazily.
  await runIpBatch([
    ...doomedLinks.map((name) => ['link', 'delete', name]),
    ...doomedNamespaces.map((name) => ['netns', 'delete', name]),
  ]);
  await Promise.all(prefixes.map((prefix) => rm(cniStateDirOf(prefix), { recursive: true, force: true })));
  return { namespaces: doomedNamespaces, links: doomedLinks };
}

/**
 * SIGKILLs whatever still runs inside the namespaces: children of the sandbox's own processes that
 * outlived them (a wireguard-go left by an agent killed mid-clean-up). Deleting the namespace would
 * not end them: their open tun keeps the namespace alive, unnamed and unreachable.
 */
async function killProcessesIn(namespaces: readonly string[]): Promise<void> {
  const pids = new Set<number>();
  for (const ns of namespaces) {
    const out = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
    for (const line of out.stdout?.split('\n') ?? []) if (/^\d+$/.test(line.trim())) pids.add(Number(line));
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      pids.delete(pid); // already gone
    }
  }
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 100 && [...pids].some(alive); i++) await sleep(10);
}

/** The synchronous last resort for process exit: no listing, `-force` past missing names. */
export function removeNowSync(rootLinks: readonly string[], namespaces: readonly string[], dirs: readonly string[] = []): void {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  const lines = [...rootLinks.map((l) => `link delete ${l}`), ...namespaces.map((n) => `netns delete ${n}`)];
  if (lines.length === 0) return;
  spawnSync('ip', ['-force', '-batch', '-'], { input: `${lines.join('\n')}\n`, stdio: ['pipe', 'ignore', 'ignore'] });
}
