// The ip(8) command: plain runs, JSON reads (`ip -j`) and batches (`ip -batch -`).
// `ip -n NS` switches namespace inside ip itself, which is cheaper than `ip netns exec`.
import { firstLine } from '../observability/first-line.js';
import { CommandError, runCommand, type CommandResult } from './command.js';
import { batchText } from './batch.js';

export interface IpOptions {
  /** Named network namespace to act in; the caller's namespace when absent. */
  readonly netns?: string;
}

/** One `ip` command as an argument array, e.g. ['link', 'set', 'eth0', 'up']. */
export type IpCommand = readonly string[];

function namespaceArgs(opts: IpOptions): string[] {
  return opts.netns === undefined ? [] : ['-n', opts.netns];
}

export function runIp(args: IpCommand, opts: IpOptions = {}): Promise<CommandResult> {
  return runCommand('ip', [...namespaceArgs(opts), ...args]);
}

/** Runs `ip -j ARGS` and returns the parsed top-level array. */
export async function readIpJson(args: IpCommand, opts: IpOptions = {}): Promise<unknown[]> {
  const argv = ['ip', ...namespaceArgs(opts), '-j', ...args];
  const { stdout, stderr, exitCode } = await runCommand(argv[0] as string, argv.slice(1));
  // Some ip versions print nothing at all for an empty list.
  if (stdout.trim() === '') return [];
  return parseJsonArray(stdout, argv, stderr, exitCode);
}

/**
 * Several `ip -j` reads in one process (`ip -j GLOBAL -batch -`): a process spawned by the agent
 * costs it 15–25 ms of main-thread time (fork of a large process), and a reconcile reads often.
 * `globalArgs` (-4, -N, -d) apply to every read: batch lines cannot carry them. ip prints one
 * array per line, in order; an output of any other count (an ip that prints nothing for an empty
 * list) is read again one process per read, so no read is ever taken for another's.
 */
export async function readIpJsonBatch(reads: readonly IpCommand[], opts: IpOptions & { readonly globalArgs?: readonly string[] } = {}): Promise<unknown[][]> {
  const globalArgs = opts.globalArgs ?? [];
  const argv = ['ip', ...namespaceArgs(opts), '-j', ...globalArgs, '-batch', '-'];
  const { stdout, stderr, exitCode } = await runCommand(argv[0] as string, argv.slice(1), { input: `${batchText('ip', reads).join('\n')}\n` });
  const lines = stdout.split('\n').filter((line) => line.trim() !== '');
  if (lines.length !== reads.length) return Promise.all(reads.map((read) => readIpJson([...globalArgs, ...read], opts)));
  return lines.map((line) => parseJsonArray(line, argv, stderr, exitCode));
}

function parseJsonArray(text: string, argv: readonly string[], stderr: string, exitCode: number): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CommandError(argv, exitCode, text, stderr, 'output is not JSON');
  }
  if (!Array.isArray(parsed)) throw new CommandError(argv, exitCode, text, stderr, 'output is not a JSON array');
  return parsed;
}

/**
 * Runs many commands in one `ip -batch -` process, stopping at the first failure. Batch lines
 * are split on whitespace by ip itself, so arguments must not contain spaces, quotes or '#'.
 */
export async function runIpBatch(commands: readonly IpCommand[], opts: IpOptions = {}): Promise<void> {
  if (commands.length === 0) return;
  const lines = batchText('ip', commands);
  try {
    await runCommand('ip', [...namespaceArgs(opts), '-batch', '-'], { input: `${lines.join('\n')}\n` });
  } catch (e) {
    // ip reports the failing line as "Command failed -:N"; name the command itself instead.
    const line = e instanceof CommandError ? /Command failed -:(\d+)/.exec(e.stderr)?.[1] : undefined;
    const failed = line === undefined ? undefined : lines[Number(line) - 1];
    if (!(e instanceof CommandError) || failed === undefined) throw e;
    const where = opts.netns === undefined ? '' : ` in ${opts.netns}`;
    const detail = firstLine(e.stderr);
    throw new CommandError(e.argv, e.exitCode, e.stdout, e.stderr, `"${failed}"${where} failed: ${detail}`);
  }
}

/** Reads fields of one `ip -j` object, naming the object and field when the shape is wrong. */
export class IpJsonObject {
  private readonly record: Record<string, unknown>;

  constructor(
    value: unknown,
    private readonly what: string,
  ) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TypeError(`${what}: expected a JSON object, got ${JSON.stringify(value)}`);
    }
    this.record = value as Record<string, unknown>;
  }

  has(key: string): boolean {
    return key in this.record;
  }

  raw(key: string): unknown {
    return this.record[key];
  }

  string(key: string): string {
    const v = this.record[key];
    if (typeof v !== 'string') throw new TypeError(`${this.what}: field "${key}" is not a string`);
    return v;
  }

  optionalString(key: string): string | undefined {
    return this.record[key] === undefined ? undefined : this.string(key);
  }

  number(key: string): number {
    const v = this.record[key];
    if (typeof v !== 'number') throw new TypeError(`${this.what}: field "${key}" is not a number`);
    return v;
  }

  optionalNumber(key: string): number | undefined {
    return this.record[key] === undefined ? undefined : this.number(key);
  }

  /** ip prints some values (tables, protocols) as a name or as a number. */
  name(key: string): string | undefined {
    const v = this.record[key];
    if (v === undefined) return undefined;
    if (typeof v === 'string' || typeof v === 'number') return String(v);
    throw new TypeError(`${this.what}: field "${key}" is neither a name nor a number`);
  }

  strings(key: string): string[] {
    const v = this.record[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
      throw new TypeError(`${this.what}: field "${key}" is not a list of strings`);
    }
    return v as string[];
  }

  objects(key: string): IpJsonObject[] {
    const v = this.record[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new TypeError(`${this.what}: field "${key}" is not a list`);
    return v.map((item, i) => new IpJsonObject(item, `${this.what} ${key}[${i}]`));
  }

  object(key: string): IpJsonObject | undefined {
    const v = this.record[key];
    return v === undefined ? undefined : new IpJsonObject(v, `${this.what} ${key}`);
  }
}
