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
  | { readonly changed: false; readonly limit: OpenFileLimit }
  | { readonly changed: true; readonly before: OpenFileLimit; readonly limit: OpenFileLimit }
  | { readonly changed: false; readonly failed: string };

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
 * when it is lower; a higher limit is never lowered. Failures are returned, not thrown: a proxy
 * with fewer descriptors still works, and the caller logs why.
 */
export async function raiseOpenFileLimit(
  opts: { pid?: number; want?: number; run?: CommandRunner } = {},
): Promise<OpenFileLimitOutcome> {
  const pid = opts.pid ?? process.pid;
  const want = opts.want ?? WANTED_OPEN_FILES;
  const run = opts.run ?? runCommand;
  let before: OpenFileLimit;
  try {
    before = await readLimit(pid);
  } catch (err) {
    return { changed: false, failed: err instanceof Error ? err.message : String(err) };
  }
  if (before.soft >= want) return { changed: false, limit: before };
  const hard = before.hard >= want ? (before.hard === Infinity ? 'unlimited' : String(before.hard)) : String(want);
  try {
    await run('prlimit', ['--pid', String(pid), `--nofile=${want}:${hard}`]);
  } catch (err) {
    const why = err instanceof CommandError && err.exitCode === undefined ? 'prlimit (util-linux) is not installed' : err instanceof Error ? err.message : String(err);
    return { changed: false, failed: why };
  }
  try {
    return { changed: true, before, limit: await readLimit(pid) };
  } catch (err) {
    return { changed: false, failed: err instanceof Error ? err.message : String(err) };
  }
}
