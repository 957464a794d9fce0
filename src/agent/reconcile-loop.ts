// Events and a resync timer both lead to one reconcile at a time. Events arriving while a
// reconcile runs coalesce into one more run, so a burst of watch events costs two reconciles.
export class ReconcileLoop {
  private running: Promise<void> | undefined;
  private pending = false;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly reconcile: () => Promise<void>,
    private readonly resyncPeriodMs: number,
    /** Events closer together than this share a reconcile. */
    private readonly debounceMs = 50,
  ) {}

  start(): void {
    this.trigger();
    this.timer = setInterval(() => this.trigger(), this.resyncPeriodMs);
  }

  trigger(): void {
    if (this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.run(), this.debounceMs);
  }

  private async run(): Promise<void> {
    if (this.running) {
      this.pending = true;
      return;
    }
    // The reconcile logs and counts its own failures; the loop only has to keep going.
    this.running = this.reconcile().catch(() => {});
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
    if (this.pending && !this.stopped) {
      this.pending = false;
      await this.run();
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
