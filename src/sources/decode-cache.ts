// Each object decoded once, when it changes, not at every resync: sources hand out the same object
// until it changes (a reflector's store entry, a cluster file document), so a decode is remembered
// by the object itself. Weak: an object gone from the source takes its decoded form with it.
import { orEmpty } from '../model/lists.js';
import type { KubeObject } from './objects.js';
import { InvalidObjectError, type Problem } from './problem.js';

/** A decode's outcome: the value (absent when the object is unusable) and the problems it found. */
export interface Decoded<T> {
  readonly value?: T;
  readonly problems: readonly Problem[];
}

export class DecodeCache<T> {
  #decoded = new WeakMap<KubeObject, Decoded<T>>();

  /** An unusable object is remembered as well: the same object fails the same way. */
  get(object: KubeObject, decode: Decoder<T>): Decoded<T> {
    let out = this.#decoded.get(object);
    if (out === undefined) {
      out = decodeObject(object, decode);
      this.#decoded.set(object, out);
    }
    return out;
  }
}

/**
 * Reports problems through `onProblem` and throws InvalidObjectError for an object it cannot use at
 * all; undefined: nothing to use, nothing wrong (an FQDN slice).
 */
export type Decoder<T> = (object: KubeObject, onProblem: (p: Problem) => void) => T | undefined;

/** One decode with its problems, an unusable object's among them. */
export function decodeObject<T>(object: KubeObject, decode: Decoder<T>): Decoded<T> {
  const problems: Problem[] = [];
  try {
    const value = decode(object, (p) => problems.push(p));
    const found = orEmpty(problems);
    return value === undefined ? { problems: found } : { value, problems: found };
  } catch (err) {
    if (!(err instanceof InvalidObjectError)) throw err;
    return { problems: [...problems, err.problem] };
  }
}
