// A start made of several steps (load, pin, attach on each interface…) that fails half-way takes
// back what it did, last step first: a failed start never leaves half a data path behind.

export class UndoStack {
  readonly #steps: Array<() => unknown> = [];

  /**
   * Runs `work`, which records how to take back each step it completes; when it throws, the recorded
   * steps run, last first, and its error is rethrown.
   */
  static async run<T>(work: (undo: UndoStack) => T | Promise<T>): Promise<T> {
    const undo = new UndoStack();
    try {
      return await work(undo);
    } catch (error) {
      await undo.unwind();
      throw error;
    }
  }

  /** Records how to take back the step just done (it may return a promise). */
  push(step: () => unknown): void {
    this.#steps.push(step);
  }

  /**
   * Runs every recorded step, last first, and forgets them. A failing step does not stop the others
   * and its error is dropped: the failure that made the caller undo is the one worth reporting.
   */
  async unwind(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step();
      } catch {
        // See above.
      }
    }
  }
}
