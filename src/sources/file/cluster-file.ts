// The cluster file: a YAML stream of Kubernetes-shaped objects as `kubectl get -o yaml` prints them
// (single objects, or `kind: List` documents holding them).
import { hash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { errorLine } from '../../observability/first-line.js';
import { DocumentSplitter, asciiTrimmed } from './document-split.js';
import { holdObject } from '../held-object.js';
import { type KubeObject, isRecord } from '../objects.js';
import type { SourceObject, SourceObjectKind } from '../source.js';
import { yamlParser } from '../yaml-parser.js';

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

/** One read of a cluster file, handed its bytes in order (FileSource: a chunk at a time). */
export interface ClusterFileRead {
  push(chunk: Uint8Array): void;
  /** The file's objects; undefined when a document is not JSON: then parse() the whole text (YAML). */
  end(): ClusterFileObject[] | undefined;
}

/**
 * Parses cluster files one after another, keeping each document of the last one: a document whose
 * bytes are unchanged is not parsed again and hands out the same objects, so nothing downstream
 * decodes it again (sources/decode-cache.ts). Documents that are JSON (as `kubectl get -o json` and
 * the harness write them, one per `---`) are read with JSON.parse, a hundred times faster than YAML;
 * a stream with any other document is read as YAML, whole, as before. The one difference: a key
 * repeated within a JSON object is read as JSON reads it (the last wins, as the API server's decoder
 * does), where YAML refuses the document. The file is split and digested as bytes, a chunk at a time
 * (document-split.ts): only a changed document becomes a string.
 */
export class ClusterFileReader {
  /** The last file's JSON documents by their bytes' digest (digestKey), as parsed (and held) then. */
  #documents = new Map<string, unknown>();
  readonly #prepare: (value: unknown) => unknown;
  readonly #splitter = new DocumentSplitter();
  /** The read in progress: a new one abandons it. */
  #reading: object | undefined;

  /** `hold`: objects come out as a source holds them (held-object.ts): only what its consumers read. */
  constructor(options: { readonly hold?: boolean } = {}) {
    this.#prepare = options.hold === true ? holdDocument : (value) => value;
  }

  parse(file: string | Uint8Array, source = 'cluster file'): ClusterFileObject[] {
    const read = this.begin(source);
    read.push(typeof file === 'string' ? Buffer.from(file, 'utf8') : file);
    const out = read.end();
    if (out !== undefined) return out;
    const yaml: ClusterFileObject[] = [];
    readYaml(typeof file === 'string' ? file : Buffer.from(file.buffer, file.byteOffset, file.byteLength).toString('utf8'), source, this.#prepare, yaml);
    return yaml;
  }

  /**
   * The last file's single-object documents by kind and name, for a read whose documents changed: a
   * document whose bytes changed but whose held object did not (a Node's status, which no decoder
   * reads) keeps the object it had, so nothing decodes or reconciles it again. Built when a read
   * first meets a changed document and dropped with the read: held between reads, its keys cost
   * ~2 MiB at 20,000 objects.
   */
  #lastByIdentity(): Map<string, unknown> {
    const named = new Map<string, unknown>();
    for (const value of this.#documents.values()) {
      const identity = identityOf(value);
      if (identity !== undefined) named.set(identity, value);
    }
    return named;
  }

  /** Starts reading a file; only the last read begun may be used. */
  begin(source = 'cluster file'): ClusterFileRead {
    const token = {};
    this.#reading = token;
    this.#splitter.reset();
    const next = new Map<string, unknown>();
    const values: unknown[] = [];
    let first = true;
    let json = true;
    /** The last file's objects by identity, once a document of this read has changed (#lastByIdentity). */
    let named: Map<string, unknown> | undefined;
    const onDocument = (bytes: Buffer, from: number, to: number): void => {
      if (!json) return;
      // Text before the first `---` is a document only when there is some.
      const isFirst = first;
      first = false;
      const blank = (): void => {
        if (!isFirst) values.push(undefined);
      };
      const [start, end] = asciiTrimmed(bytes, from, to);
      if (start === end) return blank();
      // One-shot: a Hash object per document cost 150 ms of a 10,000-Service file's first read.
      const digest = digestKey(bytes.subarray(start, end));
      let value = this.#documents.get(digest) ?? next.get(digest);
      if (value === undefined) {
        // As the text's trim() would (a byte-order mark, Unicode spaces), then as JSON.
        const text = bytes.toString('utf8', start, end).trim();
        if (text === '') return blank();
        try {
          value = this.#prepare(JSON.parse(text));
        } catch {
          json = false;
          return;
        }
        named ??= this.#lastByIdentity();
        value = sameAsBefore(named, value);
      }
      next.set(digest, value);
      values.push(value);
    };
    const current = (): void => {
      if (this.#reading !== token) throw new Error('cluster file: a later read replaced this one');
    };
    return {
      push: (chunk) => {
        current();
        this.#splitter.push(chunk, onDocument);
      },
      end: () => {
        current();
        this.#splitter.end(onDocument);
        this.#reading = undefined;
        if (!json || this.#splitter.lineSeparator) {
          this.#documents = new Map();
          return undefined;
        }
        this.#documents = next;
        const out: ClusterFileObject[] = [];
        values.forEach((value, i) => objectsOfDocument(value, i + 1, source, out));
        return out;
      },
    };
  }
}

/**
 * A document's key: the first 128 bits of its bytes' SHA-256 as a 16-character string (32 B held per
 * document, where the whole digest in base64 took 64 B); a collision is not to be expected.
 */
function digestKey(bytes: Uint8Array): string {
  return hash('sha256', bytes, 'buffer').toString('latin1', 0, 16);
}

/** The object `named` had for `value`'s identity when it is the same; else `value`, remembered. */
function sameAsBefore(named: Map<string, unknown>, value: unknown): unknown {
  const identity = identityOf(value);
  if (identity === undefined) return value;
  const before = named.get(identity);
  if (before !== undefined && isDeepStrictEqual(before, value)) return before;
  named.set(identity, value);
  return value;
}

/** A single object's kind, namespace and name; undefined for a List or what is not an object. */
function identityOf(value: unknown): string | undefined {
  if (!isRecord(value) || value['kind'] === 'List' || !isRecord(value['metadata'])) return undefined;
  const { namespace, name } = value['metadata'];
  // Joined, not a template: a template's string is a rope of its parts, ~100 B more per key held.
  return [text(value['apiVersion']), text(value['kind']), text(namespace), text(name)].join('/');
}


/** Document by document: the first fault in the stream is the one reported. */
function readYaml(text: string, source: string, prepare: (value: unknown) => unknown, out: ClusterFileObject[]): void {
  // stringKeys: a map key is a string, as in JSON; a list or map as a key is an error, not a warning.
  yamlParser().parseAllDocuments(text, { stringKeys: true }).forEach((doc, i) => {
    const where = placeOf(i + 1);
    if (doc.errors.length > 0) {
      throw new ClusterFileError(`${source}: ${where}: ${errorLine(doc.errors[0])}`);
    }
    objectsOfDocument(prepare(jsonOf(doc, `${source}: ${where}`)), i + 1, source, out);
  });
}

/** `document`: its number in the file, from 1. */
function objectsOfDocument(value: unknown, document: number, source: string, out: ClusterFileObject[]): void {
  if (value === null || value === undefined) return; // an empty document, e.g. after a trailing `---`
  if (isRecord(value) && value['kind'] === 'List') {
    const items = value['items'];
    if (!Array.isArray(items)) throw new ClusterFileError(`${source}: ${placeOf(document)}: List without items`);
    items.forEach((item: unknown, j) => out.push(classify(item, document, j + 1, source)));
  } else {
    out.push(classify(value, document, undefined, source));
  }
}

/** `document 3`, or `document 1, item 4` for an object of a List. */
function placeOf(document: number, item?: number): string {
  return item === undefined ? `document ${document}` : `document ${document}, item ${item}`;
}

/** The document with its objects as a source holds them (held-object.ts). */
function holdDocument(value: unknown): unknown {
  if (!isRecord(value)) return value;
  if (value['kind'] === 'List' && Array.isArray(value['items'])) return { ...value, items: value['items'].map(holdDocument) };
  return holdObject(KINDS[`${text(value['apiVersion'])}/${text(value['kind'])}`], value as KubeObject);
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

function classify(value: unknown, document: number, item: number | undefined, source: string): ClusterFileObject {
  const where = placeOf(document, item);
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
  return new DocumentObject(kind, value as KubeObject, document, item);
}

/**
 * An object of the file with its place, spelled out only when asked (an error message): 21,000
 * places held as strings built from parts took 4 MiB at 10,000 Services, and even `document 1234`
 * alone is a rope of two parts (~3 MiB): the place is held as numbers.
 */
class DocumentObject implements ClusterFileObject {
  constructor(
    readonly kind: SourceObjectKind,
    readonly object: KubeObject,
    private readonly document: number,
    private readonly item: number | undefined,
  ) {}

  get where(): string {
    return `${placeOf(this.document, this.item)} (${this.kind} "${String(this.object.metadata?.name)}")`;
  }
}
