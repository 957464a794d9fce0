// Every proxied connection costs two file descriptors and every service port one or more: the
// default soft limit of 1024 runs out at a few hundred connections. kube-proxy's userspace mode
// raised RLIMIT_NOFILE to 64,000; Node has no setrlimit, so util-linux's prlimit does it.
import { readFile } from 'node:fs/promises';
import { CommandError, runCommand } from '../../host/command.js';
import type { CommandRunner } from '../iptables/backend.js';

export const WANTED_OPEN_FILES = 64_000;

export interface OpenFileLimit {
  /** Infinity for "unlimited". */
  readonly soft: number;
  readonly hard: number;
}

export type OpenFileLimitOutcome =
  /** The soft limit was already at least the wanted one. */
  | { readonly status: 'enough'; readonly limit: OpenFileLimit }
  | { readonly status: 'raised'; readonly before: OpenFileLimit; readonly limit: OpenFileLimit }
  /** The hard limit could not go up (no CAP_SYS_RESOURCE): the soft limit was raised to it. */
  | { readonly status: 'partly'; readonly before: OpenFileLimit; readonly limit: OpenFileLimit; readonly reason: string }
  | { readonly status: 'failed'; readonly reason: string };

/** The "Max open files" row of /proc/PID/limits. */
export function parseOpenFileLimit(limitsText: string): OpenFileLimit | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limitsText);
  if (m === null) return undefined;
  const value = (s: string): number => (s === 'unlimited' ? Infinity : Number(s));
  const soft = value(m[1] as string);
  const hard = value(m[2] as string);
  return Number.isNaN(soft) || Number.isNaN(hard) ? undefined : { soft, hard };
}

async function readLimit(pid: number): Promise<OpenFileLimit> {
  const limit = parseOpenFileLimit(await readFile(`/proc/${pid}/limits`, 'utf8'));
  if (limit === undefined) throw new Error(`/proc/${pid}/limits: no "Max open files" row`);
  return limit;
}

/**
 * Raises the soft limit of `pid` (this process by default) to `want`, and the hard limit with it
 * when it is lower; a higher limit is never lowered. When the hard limit may not be raised, the
 * soft one goes up to it. Failures are returned, not thrown: a proxy with fewer descriptors still
 * works, and the caller logs why.
 */
export async function raiseOpenFileLimit(
  opts: { pid?: number; want?: number; run?: CommandRunner } = {},
): Promise<OpenFileLimitOutcome> {
  const pid = opts.pid ?? process.pid;
  const want = opts.want ?? WANTED_OPEN_FILES;
  const run = opts.run ?? runCommand;
  const setLimit = (soft: number, hard: number): Promise<unknown> =>
    run('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard === Infinity ? 'unlimited' : hard}`]);
  try {
    const before = await readLimit(pid);
    if (before.soft >= want) return { status: 'enough', limit: before };
    try {
      await setLimit(want, Math.max(want, before.hard));
      return { status: 'raised', before, limit: await readLimit(pid) };
    } catch (err) {
      if (err instanceof CommandError && err.exitCode === undefined) return { status: 'failed', reason: 'prlimit (util-linux) is not installed' };
      if (before.soft >= before.hard) throw err;
      await setLimit(before.hard, before.hard);
      const reason = `the hard limit ${before.hard} stays (raising it needs CAP_SYS_RESOURCE): ${errorMessage(err)}`;
      return { status: 'partly', before, limit: await readLimit(pid), reason };
    }
  } catch (err) {
    return { status: 'failed', reason: errorMessage(err) };
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
