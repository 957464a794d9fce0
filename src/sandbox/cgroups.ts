// A cgroup v2 directory per simulated node. On a real host the agent's socket programs attach at
// the cgroup root and see every process of the node; in a sandbox several "nodes" share one kernel,
// so each gets its own cgroup and every process started for it (its agent, its pods' processes)
// runs inside it.
//
// `ip netns exec` mounts a fresh /sys for the command, hiding the cgroup2 mount under it: processes
// are moved into their cgroup before `ip netns exec`, and agents see the cgroups through a bind
// mount under /run, which `ip netns exec` leaves visible.
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findCgroup2Mount } from '../bpf/mounts.js';
import { runCommand } from '../host/command.js';

export interface SandboxCgroups {
  /** Under the cgroup2 mount: for the sandbox's own writes to cgroup.procs. */
  readonly root: string;
  /** The same directory as seen from inside `ip netns exec` (a bind mount under /run). */
  readonly visibleRoot: string;
}

export function sandboxCgroupsOf(prefix: string): SandboxCgroups | undefined {
  const mount = findCgroup2Mount();
  if (mount === undefined) return undefined;
  return { root: join(mount, `${prefix}sandbox`), visibleRoot: join('/run/wirelane', `${prefix}cgroup`) };
}

export async function createCgroups(cgroups: SandboxCgroups, names: readonly string[]): Promise<void> {
  mkdirSync(cgroups.root, { recursive: true });
  for (const name of names) mkdirSync(join(cgroups.root, name), { recursive: true });
  mkdirSync(cgroups.visibleRoot, { recursive: true });
  await runCommand('mount', ['--bind', cgroups.root, cgroups.visibleRoot]);
}

/** Unmounts and removes the (by now empty) cgroups; returns what could not be removed. */
export async function removeCgroups(cgroups: SandboxCgroups, names: readonly string[]): Promise<string[]> {
  const left: string[] = [];
  await runCommand('umount', ['-l', cgroups.visibleRoot], { allowFailure: true });
  const nodes = names.map((n) => join(cgroups.root, n));
  for (const dir of [cgroups.visibleRoot, ...nodes.flatMap((n) => [...containersIn(n), n]), cgroups.root]) {
    try {
      rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') left.push(`${dir}: ${(err as Error).message}`);
    }
  }
  return left;
}

/**
 * `file args` inside `netns`, moved into `cgroup` first: the shell writes its own pid, then execs
 * `ip netns exec`, which execs the command, so the pid stays the command's own.
 */
export function inCgroupAndNetns(cgroup: string, netns: string, file: string, args: readonly string[]): [string, string[]] {
  return ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, 'ip', 'netns', 'exec', netns, file, ...args]];
}

/** A node's "containers": the child cgroups some of its processes run in (see containerCgroup). */
function containersIn(nodeCgroup: string): string[] {
  try {
    return readdirSync(nodeCgroup, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(nodeCgroup, e.name));
  } catch {
    return [];
  }
}

/**
 * A child cgroup of a node's cgroup, made on first use: a process group the sandbox can kill as one,
 * the way a container runtime ends a container. Socket programs attached at the node's cgroup still
 * apply inside it (cgroup BPF programs are inherited).
 */
export function containerCgroup(nodeCgroup: string, container: string): string {
  if (!/^[a-z0-9-]+$/.test(container)) throw new Error(`sandbox container "${container}": name must be [a-z0-9-]+`);
  const dir = join(nodeCgroup, container);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** SIGKILLs every process in the cgroup at once (cgroup.kill) and waits until it is empty. */
export async function killCgroup(dir: string, timeoutMs = 5000): Promise<void> {
  writeFileSync(join(dir, 'cgroup.kill'), '1');
  const deadline = Date.now() + timeoutMs;
  while (/^populated 1$/m.test(readFileSync(join(dir, 'cgroup.events'), 'utf8'))) {
    if (Date.now() > deadline) throw new Error(`cgroup ${dir}: processes left ${timeoutMs} ms after cgroup.kill`);
    await sleep(10);
  }
}
