// The shape every subcommand shares, and the errors that turn into one line on stderr.
import type { ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** The text `--help` prints after the usage line. */
  readonly help: string;
  readonly usage: string;
  readonly options: Options;
  readonly allowPositionals?: boolean;
  /** String options that take true/false and may be given bare (`--local` means `--local=true`). */
  readonly switches?: readonly string[];
  /** Returns the exit code. */
  run(values: Values, positionals: string[]): Promise<number>;
}

/** Bad flags or arguments: printed as one line with exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const LOG_LEVEL_OPTION: Options = {
  'log-level': { type: 'string', default: 'info' },
};
