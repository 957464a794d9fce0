// A YAML stream split into its documents as bytes, a chunk at a time: a cluster file is read in
// pieces into a buffer that is kept, so a 27 MiB file rewritten every second costs no 27 MiB
// allocation per read (each one, freed, left glibc's heap larger: the agent's RSS grew under churn).

const NL = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const DASHES = Buffer.from('---');
const LINE_SEPARATORS = [Buffer.from('\u2028', 'utf8'), Buffer.from('\u2029', 'utf8')];
/** A window grown past this for a large document is let go after the read. */
const KEPT_WINDOW_BYTES = 1 << 20;

/** The range `bytes[start, end)` without ASCII whitespace at either end. */
export function asciiTrimmed(bytes: Buffer, start: number, end: number): [number, number] {
  while (start < end && isAsciiSpace(bytes[start]!)) start++;
  while (end > start && isAsciiSpace(bytes[end - 1]!)) end--;
  return [start, end];
}

const isAsciiSpace = (b: number): boolean => b === SPACE || (b >= TAB && b <= CR);

/** Called with each document's bytes: `bytes[start, end)`, valid only during the call. */
export type OnDocument = (bytes: Buffer, start: number, end: number) => void;

/**
 * Splits at lines that start a YAML document (`---` and nothing but spaces or tabs after it), as the
 * text split on /^---[ \t]*$/m would: the bytes between two such lines (the line break that ends a
 * separator line included) are a document. The pattern also splits at U+2028 and U+2029, which are
 * not looked for: `lineSeparator` says a stream held one (its reader reads it as YAML instead).
 */
export class DocumentSplitter {
  /** The unfinished document and what follows it; kept from one chunk, and one stream, to the next. */
  #window = Buffer.alloc(0);
  #filled = 0;
  /** Where in the unfinished bytes to look for the next separator (what is before was looked at). */
  #scanFrom = 0;
  /** The unfinished bytes start at the stream's first byte: a `---` there needs no line break before it. */
  #atStart = true;
  #lineSeparator = false;

  /** A stream held U+2028 or U+2029 (which the text pattern also splits at). */
  get lineSeparator(): boolean {
    return this.#lineSeparator;
  }

  /** Forgets any unfinished stream (and a window a large document grew): the next push is a new stream's first bytes. */
  reset(): void {
    this.#filled = 0;
    this.#scanFrom = 0;
    this.#atStart = true;
    this.#lineSeparator = false;
    if (this.#window.length > KEPT_WINDOW_BYTES) this.#window = Buffer.alloc(0);
  }

  push(chunk: Uint8Array, onDocument: OnDocument): void {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let current: Buffer;
    if (this.#filled === 0) {
      current = bytes;
    } else {
      this.#reserve(this.#filled + bytes.length);
      bytes.copy(this.#window, this.#filled);
      current = this.#window.subarray(0, this.#filled + bytes.length);
    }
    // A separator split between two chunks: the bytes before this chunk's are in the window (a
    // document's last byte before a separator is a line break, never part of one).
    const checkFrom = Math.max(0, current.length - bytes.length - 2);
    if (LINE_SEPARATORS.some((s) => current.includes(s, checkFrom))) this.#lineSeparator = true;
    const consumed = this.#split(current, false, onDocument);
    const rest = current.length - consumed;
    if (current === bytes) {
      this.#reserve(rest);
      bytes.copy(this.#window, 0, consumed);
    } else {
      this.#window.copyWithin(0, consumed, current.length);
    }
    this.#filled = rest;
    this.#scanFrom -= consumed;
    if (consumed > 0) this.#atStart = false;
  }

  /** The stream ended: its last document, then a new stream. */
  end(onDocument: OnDocument): void {
    this.#split(this.#window.subarray(0, this.#filled), true, onDocument);
    this.reset();
  }

  /** Hands out the documents `bytes` ends (all of them at the stream's end); returns where the unfinished one starts. */
  #split(bytes: Buffer, streamEnd: boolean, onDocument: OnDocument): number {
    let from = 0;
    for (let at = bytes.indexOf(DASHES, this.#scanFrom); at !== -1; at = bytes.indexOf(DASHES, at + 1)) {
      if (at > 0 ? bytes[at - 1] !== NL && bytes[at - 1] !== CR : !this.#atStart) continue;
      let end = at + 3;
      while (end < bytes.length && (bytes[end] === SPACE || bytes[end] === TAB)) end++;
      if (end === bytes.length && !streamEnd) {
        // Whether the line goes on is in the next chunk.
        this.#scanFrom = at;
        return from;
      }
      if (end < bytes.length && bytes[end] !== NL && bytes[end] !== CR) continue;
      onDocument(bytes, from, at);
      from = end;
    }
    if (streamEnd) onDocument(bytes, from, bytes.length);
    // Dashes at the very end may be a separator's first ones.
    this.#scanFrom = Math.max(from, bytes.length - 2);
    return from;
  }

  #reserve(size: number): void {
    if (this.#window.length >= size) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(size, this.#window.length * 2, 64 * 1024));
    this.#window.copy(grown, 0, 0, this.#filled);
    this.#window = grown;
  }
}
