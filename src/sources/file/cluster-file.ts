// The cluster file: a YAML stream of Kubernetes-shaped objects as `kubectl get -o yaml` prints them
// (single objects, or `kind: List` documents holding them).
import { parseAllDocuments } from 'yaml';
import { errorLine } from '../../observability/first-line.js';
import { type KubeObject, isRecord } from '../objects.js';
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
  const out: ClusterFileObject[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const where = `document ${i + 1}`;
    if (doc.errors.length > 0) {
      throw new ClusterFileError(`${source}: ${where}: ${errorLine(doc.errors[0])}`);
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return; // an empty document, e.g. after a trailing `---`
    if (isRecord(value) && value['kind'] === 'List') {
      const items = value['items'];
      if (!Array.isArray(items)) throw new ClusterFileError(`${source}: ${where}: List without items`);
      items.forEach((item: unknown, j) => out.push(classify(item, `${where}, item ${j + 1}`, source)));
    } else {
      out.push(classify(value, where, source));
    }
  });
  return out;
}

function classify(value: unknown, where: string, source: string): ClusterFileObject {
  if (!isRecord(value)) throw new ClusterFileError(`${source}: ${where}: not an object`);
  const name = isRecord(value['metadata']) ? value['metadata']['name'] : undefined;
  const label = `${String(value['kind'] ?? 'object')} ${typeof name === 'string' ? `"${name}"` : '(no name)'}`;
  const kind = KINDS[`${String(value['apiVersion'])}/${String(value['kind'])}`];
  if (kind === undefined) {
    throw new ClusterFileError(
      `${source}: ${where} (${label}): unsupported apiVersion/kind ${String(value['apiVersion'])}/${String(value['kind'])}`,
    );
  }
  if (typeof name !== 'string' || name === '') throw new ClusterFileError(`${source}: ${where} (${label}): metadata.name is missing`);
  if (value['metadata'] !== undefined && !isRecord(value['metadata'])) {
    throw new ClusterFileError(`${source}: ${where} (${label}): metadata is not an object`);
  }
  return { kind, object: value as KubeObject, where: `${where} (${kind} "${name}")` };
}
