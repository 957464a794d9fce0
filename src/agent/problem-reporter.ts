// Rejected input is logged and counted once, when it first appears, not at every resync; once
// fixed and broken again it is reported again.
import type { Logger } from '../observability/logger.js';
import type { AgentMetrics } from '../observability/metrics.js';
import { describeProblem, type Problem } from '../sources/problem.js';

export class ProblemReporter {
  private reported = new Set<string>();

  /** `count`: the metric each new problem adds to (default: wirelane_invalid_objects_total). */
  constructor(
    private readonly log: Logger,
    metrics: AgentMetrics,
    private readonly count: (p: Problem) => void = (p) => metrics.invalidObjects.inc({ kind: p.kind }),
  ) {}

  /** `problems` is the whole current set for this reporter's inputs. */
  report(problems: readonly Problem[]): void {
    const current = new Set<string>();
    for (const p of problems) {
      const line = describeProblem(p);
      current.add(line);
      if (this.reported.has(line)) continue;
      this.log.warn(`ignored: ${line}`);
      this.count(p);
    }
    this.reported = current;
  }
}
