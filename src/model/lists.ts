// Lists as the agent holds and compares them at every resync.

// One frozen empty list for every held list that is empty: at 10,000 Services each decoded Service,
// slice and service port held several empty arrays of its own (32 B each, ~3 MiB in all).
export const EMPTY: readonly never[] = Object.freeze([]);

/** `list`, or the shared empty list when it is empty. */
export function orEmpty<T>(list: readonly T[]): readonly T[] {
  return list.length === 0 ? EMPTY : list;
}

/** The same items in the same order (by identity): what a resync with nothing changed hands on again. */
export function sameItems<T>(a: readonly T[] | undefined, b: readonly T[], equal: (x: T, y: T) => boolean = Object.is): boolean {
  if (a === b) return true;
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!equal(a[i] as T, b[i] as T)) return false;
  return true;
}
