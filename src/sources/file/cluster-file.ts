// The cluster file: a YAML stream of Kubernetes-shaped objects as `kubectl get -o yaml` prints them
// (single objects, or `kind: List` documents holding them).
import { createHash } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { errorLine } from '../../observability/first-line.js';
import { type KubeObject, isRecord, trimObject } from '../objects.js';
import type { SourceObject, SourceObjectKind } from '../source.js';

export interface ClusterFileObject extends SourceObject {
  /** Where it stands, for error messages: `document 3` or `document 1, item 4`. */
  readonly where: string;
}

export class ClusterFileError extends Error {
  override readonly name = 'ClusterFileError';
}

const KINDS: Readonly<Record<string, SourceObjectKind>> = {
  'v1/Node': 'Node',
  'v1/Service': 'Service',
  'discovery.k8s.io/v1/EndpointSlice': 'EndpointSlice',
  'wirelane.io/v1alpha1/Peer': 'Peer',
  // Kilo's Peer CRD has the same fields; accept it so a Kilo cluster's objects load unchanged.
  'kilo.squat.ai/v1alpha1/Peer': 'Peer',
};

/** Parses the whole stream; any structural fault throws one error naming the document (and object). */
export function parseClusterFile(text: string | Uint8Array, source = 'cluster file'): ClusterFileObject[] {
  return new ClusterFileReader().parse(text, source);
}

/**
 * Parses cluster files one after another, keeping each document of the last one: a document whose
 * bytes are unchanged is not parsed again and hands out the same objects, so nothing downstream
 * decodes it again (sources/decode-cache.ts). Documents that are JSON (as `kubectl get -o json` and
 * the harness write them, one per `---`) are read with JSON.parse, a hundred times faster than YAML;
 * a stream with any other document is read as YAML, whole, as before. The one difference: a key
 * repeated within a JSON object is read as JSON reads it (the last wins, as the API server's decoder
 * does), where YAML refuses the document. The file is split and digested as bytes: only a changed
 * document becomes a string (a 27 MB file rewritten every second made a 27 MB string each time).
 */
export class ClusterFileReader {
  /** The last file's JSON documents by their bytes' digest, as parsed (and trimmed) then. */
  #documents = new Map<string, unknown>();
  readonly #prepare: (value: unknown) => unknown;

  /** `trim`: objects come out without what no decoder reads (objects.ts), for a source that holds them. */
  constructor(options: { readonly trim?: boolean } = {}) {
    this.#prepare = options.trim === true ? trimDocument : (value) => value;
  }

  parse(file: string | Uint8Array, source = 'cluster file'): ClusterFileObject[] {
    const bytes = typeof file === 'string' ? Buffer.from(file, 'utf8') : Buffer.from(file.buffer, file.byteOffset, file.byteLength);
    const out: ClusterFileObject[] = [];
    const values = this.#jsonDocuments(bytes);
    if (values === undefined) readYaml(typeof file === 'string' ? file : bytes.toString('utf8'), source, this.#prepare, out);
    else values.forEach((value, i) => objectsOfDocument(value, `document ${i + 1}`, source, out));
    return out;
  }

  /** The documents' values when every one is JSON (undefined for an empty one); undefined when one is not. */
  #jsonDocuments(bytes: Buffer): unknown[] | undefined {
    const chunks = documentRanges(bytes);
    if (chunks === undefined) return undefined;
    // Text before the first `---` is a document only when there is some.
    if (chunks.length > 0 && isBlank(bytes, chunks[0]!)) chunks.shift();
    const next = new Map<string, unknown>();
    const values: unknown[] = [];
    for (const range of chunks) {
      const [start, end] = asciiTrimmed(bytes, range);
      if (start === end) {
        values.push(undefined);
        continue;
      }
      const digest = createHash('sha256').update(bytes.subarray(start, end)).digest('base64');
      let value = this.#documents.get(digest) ?? next.get(digest);
      if (value === undefined) {
        // As the text's trim() would (a byte-order mark, Unicode spaces), then as JSON.
        const text = bytes.toString('utf8', start, end).trim();
        if (text === '') {
          values.push(undefined);
          continue;
        }
        try {
          value = this.#prepare(JSON.parse(text));
        } catch {
          this.#documents = new Map();
          return undefined;
        }
      }
      next.set(digest, value);
      values.push(value);
    }
    this.#documents = next;
    return values;
  }
}

const NL = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;

/**
 * The byte ranges between lines that start a YAML document (`---` and nothing but spaces or tabs
 * after it), as the text split on /^---[ \t]*$/m would give them; undefined when the bytes hold a
 * line separator other than CR and LF (U+2028, U+2029), which that pattern also splits at: such a
 * file takes the YAML path.
 */
function documentRanges(bytes: Buffer): [number, number][] | undefined {
  if (bytes.includes(LINE_SEPARATORS[0]!) || bytes.includes(LINE_SEPARATORS[1]!)) return undefined;
  const ranges: [number, number][] = [];
  let from = 0;
  for (let at = bytes.indexOf(DASHES); at !== -1; at = bytes.indexOf(DASHES, at + 1)) {
    if (at > 0 && bytes[at - 1] !== NL && bytes[at - 1] !== CR) continue;
    let end = at + 3;
    while (end < bytes.length && (bytes[end] === SPACE || bytes[end] === TAB)) end++;
    if (end < bytes.length && bytes[end] !== NL && bytes[end] !== CR) continue;
    ranges.push([from, at]);
    from = end;
  }
  ranges.push([from, bytes.length]);
  return ranges;
}

const DASHES = Buffer.from('---');
const LINE_SEPARATORS = [Buffer.from('\u2028', 'utf8'), Buffer.from('\u2029', 'utf8')];

/** The range without ASCII whitespace at either end (other whitespace is trimmed as text). */
function asciiTrimmed(bytes: Buffer, [start, end]: readonly [number, number]): [number, number] {
  while (start < end && isAsciiSpace(bytes[start]!)) start++;
  while (end > start && isAsciiSpace(bytes[end - 1]!)) end--;
  return [start, end];
}

function isBlank(bytes: Buffer, range: readonly [number, number]): boolean {
  const [start, end] = asciiTrimmed(bytes, range);
  return start === end || bytes.toString('utf8', start, end).trim() === '';
}

const isAsciiSpace = (b: number): boolean => b === SPACE || (b >= TAB && b <= CR);

/** Document by document: the first fault in the stream is the one reported. */
function readYaml(text: string, source: string, prepare: (value: unknown) => unknown, out: ClusterFileObject[]): void {
  // stringKeys: a map key is a string, as in JSON; a list or map as a key is an error, not a warning.
  parseAllDocuments(text, { stringKeys: true }).forEach((doc, i) => {
    const where = `document ${i + 1}`;
    if (doc.errors.length > 0) {
      throw new ClusterFileError(`${source}: ${where}: ${errorLine(doc.errors[0])}`);
    }
    objectsOfDocument(prepare(jsonOf(doc, `${source}: ${where}`)), where, source, out);
  });
}

function objectsOfDocument(value: unknown, where: string, source: string, out: ClusterFileObject[]): void {
  if (value === null || value === undefined) return; // an empty document, e.g. after a trailing `---`
  if (isRecord(value) && value['kind'] === 'List') {
    const items = value['items'];
    if (!Array.isArray(items)) throw new ClusterFileError(`${source}: ${where}: List without items`);
    items.forEach((item: unknown, j) => out.push(classify(item, `${where}, item ${j + 1}`, source)));
  } else {
    out.push(classify(value, where, source));
  }
}

/** The document with its objects trimmed (objects.ts): only what decoders read is kept. */
function trimDocument(value: unknown): unknown {
  if (!isRecord(value)) return value;
  if (value['kind'] === 'List' && Array.isArray(value['items'])) return { ...value, items: value['items'].map(trimDocument) };
  return trimObject(KINDS[`${text(value['apiVersion'])}/${text(value['kind'])}`], value as KubeObject);
}

// kubectl prints YAML that is JSON in another syntax; YAML can say more (an alias repeated into a
// bomb, one that contains itself, tags that make dates or bytes). That is refused or flattened to JSON
// here, so the decoders see only what the API server would send. yaml throws, not reports, on a bomb
// or an alias without its anchor; JSON.stringify throws on a cycle.
function jsonOf(doc: { toJS(): unknown }, context: string): unknown {
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (err) {
    throw new ClusterFileError(`${context}: ${errorLine(err)}`);
  }
  try {
    return JSON.parse(JSON.stringify(value) ?? 'null');
  } catch {
    throw new ClusterFileError(`${context}: an alias contains itself`);
  }
}

/** A field's value for an error message; String() would throw on a map with a `toString` key. */
function text(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? 'undefined');
}

function classify(value: unknown, where: string, source: string): ClusterFileObject {
  if (!isRecord(value)) throw new ClusterFileError(`${source}: ${where}: not an object`);
  const name = isRecord(value['metadata']) ? value['metadata']['name'] : undefined;
  const label = `${text(value['kind'] ?? 'object')} ${typeof name === 'string' ? `"${name}"` : '(no name)'}`;
  const kind = KINDS[`${text(value['apiVersion'])}/${text(value['kind'])}`];
  if (kind === undefined) {
    throw new ClusterFileError(
      `${source}: ${where} (${label}): unsupported apiVersion/kind ${text(value['apiVersion'])}/${text(value['kind'])}`,
    );
  }
  if (typeof name !== 'string' || name === '') throw new ClusterFileError(`${source}: ${where} (${label}): metadata.name is missing`);
  if (value['metadata'] !== undefined && !isRecord(value['metadata'])) {
    throw new ClusterFileError(`${source}: ${where} (${label}): metadata is not an object`);
  }
  return new DocumentObject(kind, value as KubeObject, where);
}

/**
 * An object of the file with its place, spelled out only when asked (an error message): 21,000
 * places held as strings built from parts took 4 MiB at 10,000 Services.
 */
class DocumentObject implements ClusterFileObject {
  constructor(
    readonly kind: SourceObjectKind,
    readonly object: KubeObject,
    readonly document: string,
  ) {}

  get where(): string {
    return `${this.document} (${this.kind} "${String(this.object.metadata?.name)}")`;
  }
}
