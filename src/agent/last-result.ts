// One derivation's last result, handed out again while it is asked with the same inputs: what a
// resync with nothing changed derives from the same topology (iptables rules, WireGuard config, ...)
// it derives once. Inputs compare by identity; a copy with equal values derives again.
import { sameItems } from '../model/lists.js';

export class LastResult<T> {
  #inputs: readonly unknown[] | undefined;
  #value: T | undefined;

  /** `derive()`, or its last result when `inputs` are the same (in order, by identity) as then. */
  of(inputs: readonly unknown[], derive: () => T): T {
    if (sameItems(this.#inputs, inputs)) return this.#value as T;
    const value = derive();
    this.#inputs = inputs;
    this.#value = value;
    return value;
  }
}
