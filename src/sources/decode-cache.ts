// Each object decoded once, when it changes, not at every resync: sources hand out the same object
// until it changes (a reflector's store entry, a cluster file document), so a decode is remembered
// by the object itself. Weak: an object gone from the source takes its decoded form with it.
import type { KubeObject } from './objects.js';
import { InvalidObjectError, type Problem } from './problem.js';

/** A decode's outcome: the value (absent when the object is unusable) and the problems it found. */
export interface Decoded<T> {
  readonly value?: T;
  readonly problems: readonly Problem[];
}

export class DecodeCache<T> {
  #decoded = new WeakMap<KubeObject, Decoded<T>>();

  /**
   * `decode` reports problems through `onProblem` and throws InvalidObjectError for an object it
   * cannot use at all (remembered as well: the same object fails the same way).
   */
  get(object: KubeObject, decode: (object: KubeObject, onProblem: (p: Problem) => void) => T | undefined): Decoded<T> {
    let out = this.#decoded.get(object);
    if (out === undefined) {
      const problems: Problem[] = [];
      try {
        const value = decode(object, (p) => problems.push(p));
        out = value === undefined ? { problems } : { value, problems };
      } catch (err) {
        if (!(err instanceof InvalidObjectError)) throw err;
        out = { problems: [...problems, err.problem] };
      }
      this.#decoded.set(object, out);
    }
    return out;
  }
}
