// Bad input, as the CLI reports it: the agent's rule (the decoders skip the bad value, the rest is
// computed) with one warning line on stderr per problem, naming where it is (the file's document, or
// the object) and the field. --strict makes any of them the command's failure, to lint a file.
import { type LocatedProblem, describeProblem } from '../sources/problem.js';
import type { ClusterOrigin } from './cluster-objects.js';

export class InputWarnings {
  private count = 0;

  constructor(
    private readonly origin: ClusterOrigin,
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {}

  report(problems: readonly LocatedProblem[]): void {
    for (const p of problems) {
      this.count += 1;
      this.write(`wirelane: warning: ${warningText(p, this.origin)}\n`);
    }
  }

  /** After every warning was reported: with --strict, any of them fails the command (exit 1, no output). */
  failIfStrict(strict: boolean): void {
    if (strict && this.count > 0) throw new Error(`--strict: ${this.count} problem${this.count === 1 ? '' : 's'} in the input (above)`);
  }
}

/** `FILE: document 2 (Service "web"): Service "default/web": spec.clusterIP: …`, or from the API the object alone. */
export function warningText(p: LocatedProblem, origin: ClusterOrigin): string {
  const where = origin.kind === 'file' ? `${origin.path}: ${p.where === undefined ? '' : `${p.where}: `}` : '';
  return `${where}${describeProblem(p)}`;
}
