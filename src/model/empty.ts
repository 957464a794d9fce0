// One frozen empty list for every held list that is empty: at 10,000 Services each decoded Service,
// slice and service port held several empty arrays of its own (32 B each, ~3 MiB in all).
const EMPTY: readonly never[] = Object.freeze([]);

/** `list`, or the shared empty list when it is empty. */
export function orEmpty<T>(list: readonly T[]): readonly T[] {
  return list.length === 0 ? EMPTY : list;
}
