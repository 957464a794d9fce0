// What the agents of a file-sourced cluster share at run time (tunnels-broken, discovered endpoints,
// WireGuard IPs): one file per node in the annotations directory, `<node>.json` holding
// `{"annotations": {...}}`, laid over that Node of the cluster file. Pure: parsing, checking and
// merging; annotations-dir.ts reads and writes the files.
import { PREFIX, SHARED_BY_FILE } from '../annotations.js';
import { DNS_SUBDOMAIN, type KubeObject, isRecord } from '../objects.js';
import type { SourceObject } from '../source.js';

const SUFFIX = '.json';
/** The annotations the directory carries, by full name. */
export const SHARED_ANNOTATIONS: readonly string[] = SHARED_BY_FILE.map((suffix) => PREFIX + suffix);
const SHARED = new Set(SHARED_ANNOTATIONS);
/** Far above what a node shares (a discovered endpoint per roaming node and Peer): anything bigger is not an agent's. */
export const MAX_OVERLAY_BYTES = 1 << 20;

export class OverlayError extends Error {
  override readonly name = 'OverlayError';
}

/** The file holding `node`'s shared annotations; throws for a name that is no Node name (it would leave the directory). */
export function overlayFileName(node: string): string {
  if (!DNS_SUBDOMAIN.test(node)) throw new OverlayError(`"${node}" is not a Node name: it has no annotations file`);
  return node + SUFFIX;
}

/** The node a directory entry holds the annotations of; undefined for anything else (a writer's temporary file). */
export function nodeOfOverlayFile(file: string): string | undefined {
  if (!file.endsWith(SUFFIX)) return undefined;
  const node = file.slice(0, -SUFFIX.length);
  return DNS_SUBDOMAIN.test(node) ? node : undefined;
}

/** Whether an annotation may come from the directory (SHARED_BY_FILE under our prefix). */
export function isSharedAnnotation(name: string): boolean {
  return SHARED.has(name);
}

export interface OverlayRead {
  /** The shared annotations the file holds. */
  readonly annotations: Readonly<Record<string, string>>;
  /** Annotations it holds that may not come from there (a key, an address): left out. */
  readonly refused: readonly string[];
}

/** Reads one file's text; throws OverlayError, naming `file`, when it is not an overlay at all. */
export function parseOverlay(text: string, file: string): OverlayRead {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new OverlayError(`${file}: not JSON (${(err as Error).message})`);
  }
  const annotations = isRecord(value) ? value['annotations'] : undefined;
  if (!isRecord(annotations)) throw new OverlayError(`${file}: want {"annotations": {NAME: VALUE, ...}}`);
  const shared: Record<string, string> = {};
  const refused: string[] = [];
  for (const [name, v] of Object.entries(annotations)) {
    if (typeof v !== 'string') throw new OverlayError(`${file}: annotation ${name} is not a string`);
    if (isSharedAnnotation(name)) shared[name] = v;
    else refused.push(name);
  }
  return { annotations: shared, refused };
}

/** A file's text for `annotations`, in name order: the same annotations always give the same text. */
export function formatOverlay(annotations: Readonly<Record<string, string>>): string {
  const names = Object.keys(annotations).sort();
  return `${JSON.stringify({ annotations: Object.fromEntries(names.map((n) => [n, annotations[n]])) })}\n`;
}

/**
 * The Node with the shared annotations over its own: for these the agent's run-time view wins over
 * what the file says; every other annotation is the operator's and stays.
 */
export function overlaid(node: KubeObject, annotations: Readonly<Record<string, string>>): KubeObject {
  const metadata = node.metadata ?? {};
  return { ...node, metadata: { ...metadata, annotations: { ...metadata.annotations, ...annotations } } };
}

/**
 * Remembers each overlaid Node by the file's object and the annotations laid over it: the same pair
 * gives the same object, which the decoders then do not decode again (decode-cache.ts).
 */
export type OverlaidNodes = WeakMap<KubeObject, { readonly annotations: Readonly<Record<string, string>>; readonly node: KubeObject }>;

/** The objects with each node's shared annotations laid over its Node; a node the objects have no Node of is left out. */
export function overlayNodes(
  objects: readonly SourceObject[],
  overlays: ReadonlyMap<string, Readonly<Record<string, string>>>,
  done: OverlaidNodes = new WeakMap(),
): readonly SourceObject[] {
  if (overlays.size === 0) return objects;
  return objects.map((o) => {
    const annotations = o.kind === 'Node' ? overlays.get(o.object.metadata?.name ?? '') : undefined;
    if (annotations === undefined) return o;
    let entry = done.get(o.object);
    if (entry?.annotations !== annotations) {
      entry = { annotations, node: overlaid(o.object, annotations) };
      done.set(o.object, entry);
    }
    return { kind: o.kind, object: entry.node, ...(o.where !== undefined && { where: o.where }) };
  });
}
