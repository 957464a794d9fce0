// Many ip(8) or bridge(8) writes in one process that keeps going past a failing line
// (`-force -batch -`), so one bad route costs that route only and a reconcile of thousands of
// routes costs one process, not one per route.
import { CommandError, runCommand } from './command.js';

/** One batch line as arguments, e.g. ['route', 'add', '10.1.0.0/16', 'dev', 'wg0']. */
export type BatchLine = readonly string[];

export interface BatchFailure {
  /** The failing line as written to the batch. */
  readonly line: string;
  /** What the tool printed for it, on one line. */
  readonly reason: string;
  /** Index of the line in the batch, from 0. */
  readonly index: number;
}

export interface BatchOutcome {
  /** Lines that succeeded. */
  readonly written: number;
  readonly failures: readonly BatchFailure[];
}

export interface BatchOptions {
  readonly netns?: string;
  /** Global options before `-batch`, e.g. ['-4']: batch lines cannot carry them. */
  readonly globalArgs?: readonly string[];
}

/** Batch lines are split on whitespace by the tool itself, so no argument may need quoting. */
export function batchText(tool: string, lines: readonly BatchLine[]): string[] {
  return lines.map((line) => {
    const bad = line.find((arg) => arg === '' || /[\s"'#\\]/.test(arg));
    if (bad !== undefined) throw new Error(`${tool} batch: argument ${JSON.stringify(bad)} of "${line.join(' ')}" cannot be batched`);
    return line.join(' ');
  });
}

/**
 * Runs every line, continuing past failures, and reports each failed line with the message
 * printed before its "Command failed -:N" marker. Throws only when the tool itself fails.
 */
export async function runForcedBatch(tool: 'ip' | 'bridge', lines: readonly BatchLine[], opts: BatchOptions = {}): Promise<BatchOutcome> {
  if (lines.length === 0) return { written: 0, failures: [] };
  const texts = batchText(tool, lines);
  const ns = opts.netns === undefined ? [] : ['-n', opts.netns];
  const args = [...ns, ...(opts.globalArgs ?? []), '-force', '-batch', '-'];
  const result = await runCommand(tool, args, { input: `${texts.join('\n')}\n`, allowFailure: true });
  const failures: BatchFailure[] = [];
  let pending: string[] = [];
  for (const raw of result.stderr.split('\n')) {
    const text = raw.trim();
    if (text === '') continue;
    const marker = /^Command failed -:(\d+)$/.exec(text);
    if (marker === null) {
      pending.push(text);
      continue;
    }
    const index = Number(marker[1]) - 1;
    failures.push({ line: texts[index] ?? `line ${index + 1}`, reason: pending.join('; ') || 'failed', index });
    pending = [];
  }
  if (result.exitCode !== 0 && failures.length === 0) {
    throw new CommandError([tool, ...args], result.exitCode, result.stdout, result.stderr, `exit code ${result.exitCode}: ${pending[0] ?? 'no output'}`);
  }
  return { written: lines.length - failures.length, failures };
}
