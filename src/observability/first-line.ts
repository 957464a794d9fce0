// What a log line, a failure list or the CLI's stderr shows of an error or of a command's output:
// one line. The rest (a command's whole stderr, libbpf's log, usage text) stays on the error.

/** An error's message up to its first line break; a thrown non-Error as its string. */
export function errorLine(err: unknown): string {
  return err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
}

/** The first line of a command's output that is not blank, trimmed ('' when there is none). */
export function firstLine(text: string): string {
  return text.split('\n').find((line) => line.trim() !== '')?.trim() ?? '';
}
