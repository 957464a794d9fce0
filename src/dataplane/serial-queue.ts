// One write at a time per dataplane: an apply, a cleanup and a resync timer's apply may all be
// called while another is in flight, and interleaved reads and writes of the same host state would
// each plan against what the other is about to change.

/** Runs work one at a time in call order; a failure reaches its caller and does not stop the rest. */
export class SerialQueue {
  /** Settles when the last queued work has; it never rejects. */
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
