// Shared by the addon's kernel tests: the capability gate, and test-owned kernel state (bpffs
// directories, cgroups, child processes) that is removed in t.after, also when the test fails.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { findCgroup2Mount, isBpffs } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';
import { capabilitySkip } from '../support/capability.js';

export const BPF_TOOLS = [
  ['bpftool', ['version']],
  ['clang', ['--version']],
  ['tc', ['-V']],
] as const;

const cleanups = new WeakMap<TestContext, Array<() => unknown>>();

/**
 * Registers clean-up for the test, run after it (also on failure) in reverse order of
 * registration, unlike t.after which runs first-registered first: a filter must go before the
 * namespace holding it. Every step runs; the first error is rethrown at the end.
 */
export function onCleanup(t: TestContext, step: () => unknown): void {
  let steps = cleanups.get(t);
  if (steps === undefined) {
    const list: Array<() => unknown> = [];
    steps = list;
    cleanups.set(t, list);
    t.after(async () => {
      const errors: unknown[] = [];
      for (const run of list.reverse()) {
        try {
          await run();
        } catch (error) {
          errors.push(error);
        }
      }
      if (errors.length > 0) throw errors[0];
    });
  }
  steps.push(step);
}

export function bpfSkip(what: string): Promise<string | false> {
  return capabilitySkip(what, BPF_TOOLS);
}

/** Unique per test run, so parallel runs and leftovers of a crashed one never collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * A fresh directory on a bpffs, removed after the test with everything pinned in it. Uses the
 * machine's bpffs at /sys/fs/bpf; where that is not mounted, mounts a private one for the test
 * and unmounts it. (Another bpffs in /proc/mounts may be a sandbox's, unmounted under the test
 * when that sandbox goes.)
 */
export async function bpffsDir(t: TestContext): Promise<string> {
  let mount = isBpffs('/sys/fs/bpf') ? '/sys/fs/bpf' : undefined;
  if (mount === undefined) {
    const own = mkdtempSync(join(tmpdir(), 'wirelane-bpffs-'));
    await runCommand('mount', ['-t', 'bpf', 'bpf', own]);
    onCleanup(t, async () => {
      await runCommand('umount', [own]);
      rmdirSync(own);
    });
    mount = own;
  }
  if (!isBpffs(mount)) throw new Error(`${mount} is listed as bpffs in /proc/mounts but statfs disagrees`);
  const dir = join(mount, uniqueName('wirelane-test'));
  mkdirSync(dir);
  onCleanup(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh cgroup v2 directory under the cgroup2 mount (found in /proc/mounts), removed after the test. */
export function cgroupDir(t: TestContext): string {
  const root = findCgroup2Mount();
  if (root === undefined) throw new Error('cgroup v2 is not mounted (no cgroup2 line in /proc/mounts)');
  const dir = join(root, uniqueName('wirelane-test'));
  mkdirSync(dir);
  onCleanup(t, async () => {
    // A process that just exited can keep the cgroup busy for a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        rmdirSync(dir);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        if (attempt >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  });
  return dir;
}

export interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a TypeScript file of this folder in a new Node process (with tsx), killed by PID after the
 * test if still running. `started` sees the child before it gets its stdin line "go\n".
 */
export async function runChild(
  t: TestContext,
  script: string,
  args: readonly string[],
  started: (pid: number) => void | Promise<void> = () => {},
): Promise<ChildResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(script, import.meta.url).pathname, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  onCleanup(t, () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<ChildResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  if (child.pid === undefined) return exited;
  await started(child.pid);
  child.stdin.end('go\n');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** 8-byte little-endian counter value of an array map slot. */
export function u32(value: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(value);
  return key;
}

/** A local TCP listener that closes every connection at once; its port. */
export async function listen(t: TestContext): Promise<number> {
  const server: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(t, () => server.close());
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** Runs a child inside `cgroup` that connects once to `port`. */
export async function connectFrom(t: TestContext, cgroup: string, port: number): Promise<void> {
  const result = await runChild(t, './child-connect.ts', [String(port)], (pid) => appendFileSync(`${cgroup}/cgroup.procs`, `${pid}\n`));
  assert.equal(result.code, 0, result.stderr);
}
