// A LIST response's body read item by item: each item is parsed on its own and handed on at once,
// so a reflector can keep its copy of the few fields it reads (held-object.ts) while the item's
// full object is still young garbage. One JSON.parse of the body kept every full object alive to
// the end of the list: at 10,000 EndpointSlices, half a second of garbage collection in the agent's
// first sync. The scan follows only the structure (brackets, strings); JSON.parse reads each part.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

export interface ListBody<T> {
  /** The top-level fields but `items`. */
  readonly fields: ReadonlyMap<string, unknown>;
  /** What `take` made of each item, in order; undefined when there was no `items` array. */
  readonly items: T[] | undefined;
}

/**
 * The body's fields and items, or undefined when the scan cannot follow it (not JSON, a key given
 * twice): JSON.parse of the whole body then says what is wrong, or reads what the scan would not.
 */
export function readListBody<T>(body: Uint8Array, take: (item: unknown) => T): ListBody<T> | undefined {
  try {
    return scan(body, take);
  } catch {
    return undefined; // a part JSON.parse refused
  }
}

function scan<T>(b: Uint8Array, take: (item: unknown) => T): ListBody<T> | undefined {
  const text = (from: number, to: number): string => Buffer.from(b.buffer, b.byteOffset + from, to - from).toString('utf8');
  const fields = new Map<string, unknown>();
  let items: T[] | undefined;
  let i = skipSpace(b, 0);
  if (b[i] !== OPEN_OBJECT) return undefined;
  i = skipSpace(b, i + 1);
  if (b[i] !== CLOSE_OBJECT) {
    for (;;) {
      const keyEnd = b[i] === QUOTE ? stringEnd(b, i) : -1;
      if (keyEnd < 0) return undefined;
      const key = JSON.parse(text(i, keyEnd)) as string;
      if (fields.has(key) || (key === 'items' && items !== undefined)) return undefined;
      i = skipSpace(b, keyEnd);
      if (b[i] !== COLON) return undefined;
      i = skipSpace(b, i + 1);
      if (key === 'items' && b[i] === OPEN_ARRAY) {
        items = [];
        i = skipSpace(b, i + 1);
        if (b[i] !== CLOSE_ARRAY) {
          for (;;) {
            const end = valueEnd(b, i);
            if (end < 0) return undefined;
            items.push(take(JSON.parse(text(i, end))));
            i = skipSpace(b, end);
            if (b[i] === CLOSE_ARRAY) break;
            if (b[i] !== COMMA) return undefined;
            i = skipSpace(b, i + 1);
          }
        }
        i = skipSpace(b, i + 1);
      } else {
        const end = valueEnd(b, i);
        if (end < 0) return undefined;
        fields.set(key, JSON.parse(text(i, end)));
        i = skipSpace(b, end);
      }
      if (b[i] === CLOSE_OBJECT) break;
      if (b[i] !== COMMA) return undefined;
      i = skipSpace(b, i + 1);
    }
  }
  return skipSpace(b, i + 1) === b.length ? { fields, items } : undefined;
}

/** JSON's whitespace only (a byte-order mark or a Unicode space is not). */
function skipSpace(b: Uint8Array, i: number): number {
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  return i;
}

/** Just past the string whose opening quote is at `i`; -1 when it does not end. */
function stringEnd(b: Uint8Array, i: number): number {
  for (i++; i < b.length; i++) {
    if (b[i] === BACKSLASH) i++;
    else if (b[i] === QUOTE) return i + 1;
  }
  return -1;
}

/** Just past the value that starts at `i` (its brackets balanced, its strings closed); -1 when it does not end. */
function valueEnd(b: Uint8Array, i: number): number {
  if (b[i] === QUOTE) return stringEnd(b, i);
  if (b[i] !== OPEN_OBJECT && b[i] !== OPEN_ARRAY) {
    // A number, true, false or null: up to what may follow a value.
    while (i < b.length && b[i] !== COMMA && b[i] !== CLOSE_OBJECT && b[i] !== CLOSE_ARRAY && skipSpace(b, i) === i) i++;
    return i;
  }
  let depth = 0;
  for (; i < b.length; i++) {
    const c = b[i];
    if (c === QUOTE) {
      const end = stringEnd(b, i);
      if (end < 0) return -1;
      i = end - 1;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) depth++;
    else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}
