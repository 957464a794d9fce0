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
export function parseClusterFile(text: string, source = 'cluster file'): ClusterFileObject[] {
  return new ClusterFileReader().parse(text, source);
}

/**
 * Parses cluster files one after another, keeping each document of the last one: a document whose
 * text is unchanged is not parsed again and hands out the same objects, so nothing downstream decodes
 * it again (sources/decode-cache.ts). Documents that are JSON (as `kubectl get -o json` and the
 * harness write them, one per `---`) are read with JSON.parse, a hundred times faster than YAML; a
 * stream with any other document is read as YAML, whole, as before. The one difference: a key
 * repeated within a JSON object is read as JSON reads it (the last wins, as the API server's decoder
 * does), where YAML refuses the document.
 */
export class ClusterFileReader {
  /** The last file's JSON documents by their text's digest, as parsed (and trimmed) then. */
  #documents = new Map<string, unknown>();
  readonly #prepare: (value: unknown) => unknown;

  /** `trim`: objects come out without what no decoder reads (objects.ts), for a source that holds them. */
  constructor(options: { readonly trim?: boolean } = {}) {
    this.#prepare = options.trim === true ? trimDocument : (value) => value;
  }

  parse(text: string, source = 'cluster file'): ClusterFileObject[] {
    const out: ClusterFileObject[] = [];
    const values = this.#jsonDocuments(text);
    if (values === undefined) readYaml(text, source, this.#prepare, out);
    else values.forEach((value, i) => objectsOfDocument(value, `document ${i + 1}`, source, out));
    return out;
  }

  /** The documents' values when every one is JSON (undefined for an empty one); undefined when one is not. */
  #jsonDocuments(text: string): unknown[] | undefined {
    const chunks = text.split(DOCUMENT_START);
    // Text before the first `---` is a document only when there is some.
    if (chunks[0]!.trim() === '') chunks.shift();
    const next = new Map<string, unknown>();
    const values: unknown[] = [];
    for (const chunk of chunks) {
      const trimmed = chunk.trim();
      if (trimmed === '') {
        values.push(undefined);
        continue;
      }
      const digest = createHash('sha256').update(trimmed).digest('base64');
      let value = this.#documents.get(digest) ?? next.get(digest);
      if (value === undefined) {
        try {
          value = this.#prepare(JSON.parse(trimmed));
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

/** A line that starts a YAML document and holds nothing else. */
const DOCUMENT_START = /^---[ \t]*$/m;

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
  return { kind, object: value as KubeObject, where: `${where} (${kind} "${name}")` };
}
