// A dataplane apply in which some writes failed while the others were made.

export interface WriteFailure {
  /** The object and what was being done to it, e.g. "add route 10.4.0.0/16 dev wl0 table main". */
  readonly what: string;
  readonly reason: string;
}

/** Some writes of an apply failed; the rest were made, and `written` counts them. */
export class PartialApplyError extends Error {
  override readonly name = 'PartialApplyError';
  constructor(
    readonly dataplane: string,
    readonly written: number,
    readonly failures: readonly WriteFailure[],
  ) {
    const shown = failures.slice(0, 3).map((f) => `${f.what}: ${f.reason}`);
    const more = failures.length > 3 ? `; and ${failures.length - 3} more` : '';
    super(`${dataplane}: ${failures.length} change(s) failed: ${shown.join('; ')}${more}`);
  }
}
