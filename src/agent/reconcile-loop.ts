// Events and a resync timer both lead to one reconcile at a time. Events arriving while a
// reconcile runs coalesce into one more run, so a burst of watch events costs two reconciles.
// Runs follow each other in a `while` loop, not by recursion: an agent reconciling back to back
// for days keeps one pending promise, not a chain that grows with every run.

export interface ReconcileLoopOptions {
  /** Events closer together than this share a reconcile. Default 50 ms. */
  readonly debounceMs?: number;
  /** Told each time a reconcile becomes due (an event or the resync timer), before the debounce. */
  readonly onDue?: () => void;
}

export class ReconcileLoop {
  private running: Promise<void> | undefined;
  private pending = false;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly debounceMs: number;

  constructor(
    private readonly reconcile: () => Promise<void>,
    private readonly resyncPeriodMs: number,
    private readonly options: ReconcileLoopOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 50;
  }

  start(): void {
    this.trigger();
    this.timer = setInterval(() => this.trigger(), this.resyncPeriodMs);
  }

  trigger(): void {
    if (this.stopped) return;
    this.options.onDue?.();
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.kick(), this.debounceMs);
  }

  private kick(): void {
    if (this.running) {
      this.pending = true;
      return;
    }
    this.running = this.drain();
  }

  /** Reconciles until no event arrived during the last run. */
  private async drain(): Promise<void> {
    try {
      do {
        this.pending = false;
        try {
          await this.reconcile();
        } catch {
          // The reconcile logs and counts its own failures; the loop only has to keep going.
        }
      } while (this.pending && !this.stopped);
    } finally {
      this.running = undefined;
    }
  }

  /** Stops scheduling and waits for a reconcile in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    await this.running;
  }
}
