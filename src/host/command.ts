// Runs host commands with argument arrays (never shell strings), optionally inside a network
// namespace, and turns failures into one-line errors that name the command. Every command has a
// timeout (the caller's, else the process default of timeouts.ts) after which its whole process
// group gets SIGTERM, then SIGKILL.
import { basename } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { firstLine } from '../observability/first-line.js';
import { defaultCommandTimeoutMs, reportTimeout } from './timeouts.js';

/** Between SIGTERM and SIGKILL of a command that timed out. */
export const KILL_GRACE_MS = 2_000;

export interface CommandOptions {
  /** Run inside this named network namespace (`ip netns exec NAME file args`). */
  readonly netns?: string;
  /** Written to the command's stdin. */
  readonly input?: string;
  /** Return a non-zero exit instead of throwing. A missing binary or a timeout still throws. */
  readonly allowFailure?: boolean;
  /** Default: defaultCommandTimeoutMs() (--command-timeout); Infinity for none. */
  readonly timeoutMs?: number;
  readonly env?: Readonly<Record<string, string>>;
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** A command that failed: its message is one line (command, exit code, first stderr line). */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | undefined,
    readonly stdout: string,
    readonly stderr: string,
    /** Why it failed, without the command: `exit code 2: …`, `timed out after 30000 ms`. */
    readonly reason: string,
    readonly timedOut = false,
  ) {
    super(`${formatCommand(argv)}: ${reason}`);
  }
}

/** The argv actually executed: `ip netns exec NAME` in front when a namespace is given. */
export function commandLine(file: string, args: readonly string[], netns?: string): string[] {
  return netns === undefined ? [file, ...args] : ['ip', 'netns', 'exec', netns, file, ...args];
}

/** A readable, copy-pasteable rendering of an argv; arguments with spaces or quotes are quoted. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map((a) => (a === '' || /[\s"'\\$`]/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

export async function runCommand(
  file: string,
  args: readonly string[],
  opts: CommandOptions = {},
): Promise<CommandResult> {
  const [bin, ...rest] = commandLine(file, args, opts.netns) as [string, ...string[]];
  const timeoutMs = opts.timeoutMs ?? defaultCommandTimeoutMs();
  if (!(timeoutMs > 0)) throw new RangeError(`${file}: timeout ${timeoutMs} ms is not positive`);
  const child = execa(bin, rest, {
    reject: false,
    // Its own process group, so that a timeout ends everything it started: execa waits for the
    // output pipes to close, and a script's children (a `sleep` in a hung wrapper) hold them open.
    detached: true,
    stdin: opts.input === undefined ? 'ignore' : 'pipe',
    ...(opts.input === undefined ? {} : { input: opts.input }),
    ...(opts.env === undefined ? {} : { env: opts.env }),
  });
  const deadline = child.pid === undefined ? undefined : new Deadline(child.pid, timeoutMs);
  const result = await child.finally(() => deadline?.disarm());
  const argv = [bin, ...rest];
  const { stdout, stderr } = result;
  if (deadline?.expired === true) {
    reportTimeout(basename(file));
    throw new CommandError(argv, undefined, stdout, stderr, `timed out after ${timeoutMs} ms`, true);
  }
  if (result.exitCode === undefined) {
    // No exit code: the binary could not be started, or a signal ended it.
    const why = result.signal !== undefined ? `killed by ${result.signal}` : firstLine(result.originalMessage ?? '') || 'could not be started';
    throw new CommandError(argv, undefined, stdout, stderr, why);
  }
  if (result.exitCode !== 0 && opts.allowFailure !== true) {
    const detail = firstLine(stderr) || firstLine(stdout);
    const why = `exit code ${result.exitCode}${detail === '' ? '' : `: ${detail}`}`;
    throw new CommandError(argv, result.exitCode, stdout, stderr, why);
  }
  return { stdout, stderr, exitCode: result.exitCode };
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Process groups of commands still running: an agent that exits takes them with it. */
const runningGroups = new Set<number>();
let killOnExit = false;

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: every process of the group is gone already.
  }
}

/**
 * A command's time limit: SIGTERM to its process group when it expires, SIGKILL after KILL_GRACE_MS
 * (a process may ignore SIGTERM; nothing ignores SIGKILL), and SIGKILL to whatever of the group is
 * left once the command's pipes have closed.
 */
class Deadline {
  expired = false;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly pgid: number,
    timeoutMs: number,
  ) {
    runningGroups.add(pgid);
    if (!killOnExit) {
      killOnExit = true;
      process.on('exit', () => runningGroups.forEach((group) => signalGroup(group, 'SIGKILL')));
    }
    // setTimeout fires at once past 2^31 - 1 ms; anything that long means no limit.
    if (timeoutMs > MAX_TIMER_MS) return;
    this.timers.push(
      setTimeout(() => {
        this.expired = true;
        signalGroup(pgid, 'SIGTERM');
        this.timers.push(setTimeout(() => signalGroup(pgid, 'SIGKILL'), KILL_GRACE_MS));
      }, timeoutMs),
    );
  }

  disarm(): void {
    for (const timer of this.timers) clearTimeout(timer);
    runningGroups.delete(this.pgid);
    if (this.expired) signalGroup(this.pgid, 'SIGKILL');
  }
}

/** Where a spawned process's stdout or stderr goes. Buffered 'pipe' is the default. */
export type OutputTarget = 'pipe' | 'ignore' | 'inherit' | { readonly file: string };

export interface SpawnOptions {
  readonly netns?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly stdout?: OutputTarget;
  readonly stderr?: OutputTarget;
}

interface SpawnExecaOptions {
  readonly reject: false;
  readonly stdin: 'ignore';
  readonly stdout: OutputTarget;
  readonly stderr: OutputTarget;
  readonly env?: Readonly<Record<string, string>>;
  readonly forceKillAfterDelay: false;
}

/** A long-running child. Awaiting it never throws; it resolves with the exit code or signal. */
export type SpawnedProcess = ResultPromise<SpawnExecaOptions> & { readonly pid: number };

/**
 * Starts a long-running process (an agent, wireguard-go in foreground mode). `ip netns exec`
 * execs into the command, so the returned pid is the command's own pid. Throws if it could
 * not be started.
 */
export function spawnProcess(file: string, args: readonly string[], opts: SpawnOptions = {}): SpawnedProcess {
  const [bin, ...rest] = commandLine(file, args, opts.netns) as [string, ...string[]];
  const options: SpawnExecaOptions = {
    reject: false,
    stdin: 'ignore',
    stdout: opts.stdout ?? 'pipe',
    stderr: opts.stderr ?? 'pipe',
    // Whoever spawned it decides when to escalate to SIGKILL (see Sandbox.destroy).
    forceKillAfterDelay: false,
    ...(opts.env === undefined ? {} : { env: opts.env }),
  };
  const child = execa(bin, rest, options);
  if (child.pid === undefined) {
    // Swallow the rejection-free result so nothing dangles; the error is reported here.
    void child.then(() => undefined);
    throw new CommandError([bin, ...rest], undefined, '', '', 'could not be started');
  }
  return child as SpawnedProcess;
}
